package quic

import (
	"net"
	"sync/atomic"

	"github.com/quic-go/quic-go/internal/protocol"
)

type sender interface {
	Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN)
	SendProbe(*packetBuffer, net.Addr, packetInfo)
	WouldBlock() bool
	Available() <-chan struct{}
	Close()
}

// sendQueue writes each packet on the caller's goroutine, the connection's
// run loop, which is the only goroutine that sends.
//
// jumpfleet: upstream queues packets for a goroutine of the connection's
// own (sendQueue.Run). Our third patch wrote a packet at once when nothing
// was queued, and since the run loop is the only sender, nothing ever was:
// the goroutine only waited, one per connection, its stack scanned at
// every collection. The fifth patch takes it out (JUMPFLEET.md).
type sendQueue struct {
	conn sendConn
	// onError closes the connection (its destroyImpl, which does not
	// block): what upstream's Run goroutine did with a write's error.
	onError func(error)
	closed  atomic.Bool // Close was called or a write failed: drop packets
}

var _ sender = &sendQueue{}

func newSendQueue(conn sendConn, onError func(error)) sender {
	return &sendQueue{conn: conn, onError: onError}
}

// Send writes p. It blocks only while the socket's send buffer is full
// (the runtime parks the goroutine until the socket is writable), which
// upstream's queue of 8 packets also came to.
func (h *sendQueue) Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN) {
	defer p.Release()
	if h.closed.Load() {
		return // upstream: a packet sent after Run stopped is dropped
	}
	err := h.conn.Write(p.Data, gsoSize, ecn)
	// A message-size error is how the kernel reports a datagram too large
	// for the path: MTU discovery and loss detection deal with it, as
	// upstream's Run did by going on.
	if err != nil && !isSendMsgSizeErr(err) {
		h.closed.Store(true)
		h.onError(err)
	}
}

func (h *sendQueue) SendProbe(p *packetBuffer, addr net.Addr, info packetInfo) {
	h.conn.WriteTo(p.Data, addr, info)
}

// WouldBlock is always false: Send has written the packet before it
// returns, so there is never a queue to fill.
func (h *sendQueue) WouldBlock() bool { return false }

// Available is never ready; the run loop waits on it only after
// WouldBlock, which is never true.
func (h *sendQueue) Available() <-chan struct{} { return nil }

// Close drops the packets sent after it (the connection writes its
// CONNECTION_CLOSE to the socket itself). Safe to call twice.
func (h *sendQueue) Close() { h.closed.Store(true) }
