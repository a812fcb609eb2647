package quic

import (
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go/internal/protocol"
)

type sender interface {
	Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN)
	SendProbe(*packetBuffer, net.Addr, packetInfo)
	Run() error
	WouldBlock() bool
	Available() <-chan struct{}
	Close()
}

type queueEntry struct {
	buf     *packetBuffer
	gsoSize uint16
	ecn     protocol.ECN
}

type sendQueue struct {
	queue       chan queueEntry
	closeCalled chan struct{} // runStopped when Close() is called
	runStopped  chan struct{} // runStopped when the run loop returns
	available   chan struct{}
	conn        sendConn

	// jumpfleet: a packet sent while nothing is queued or being written
	// is written on the caller's goroutine (the connection's run loop),
	// not handed to Run's. See JUMPFLEET.md, third patch.
	wmu       sync.Mutex   // held around every write to conn
	pending   atomic.Int32 // packets queued and not yet written by Run
	closing   atomic.Bool  // Close was called: Run drains the queue and stops
	directErr chan error   // a direct write's error, for Run to return
}

var _ sender = &sendQueue{}

const sendQueueCapacity = 8

func newSendQueue(conn sendConn) sender {
	return &sendQueue{
		conn:        conn,
		runStopped:  make(chan struct{}),
		closeCalled: make(chan struct{}),
		available:   make(chan struct{}, 1),
		queue:       make(chan queueEntry, sendQueueCapacity),
		directErr:   make(chan error, 1),
	}
}

// Send sends out a packet. It's guaranteed to not block.
// Callers need to make sure that there's actually space in the send queue by calling WouldBlock.
// Otherwise Send will panic.
func (h *sendQueue) Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN) {
	if h.sendDirect(p, gsoSize, ecn) {
		return
	}
	h.pending.Add(1)
	select {
	case h.queue <- queueEntry{buf: p, gsoSize: gsoSize, ecn: ecn}:
		// clear available channel if we've reached capacity
		if len(h.queue) == sendQueueCapacity {
			select {
			case <-h.available:
			default:
			}
		}
	case <-h.runStopped:
		h.pending.Add(-1)
	default:
		panic("sendQueue.Send would have blocked")
	}
}

// sendDirect writes p at once if no packet is queued or being written, so
// that packets still leave in order, and reports whether it did. A
// write's error goes to Run, which returns it as it would its own.
func (h *sendQueue) sendDirect(p *packetBuffer, gsoSize uint16, ecn protocol.ECN) bool {
	if h.closing.Load() || !h.wmu.TryLock() {
		return false // closing, or a write in progress: the queue, as upstream
	}
	defer h.wmu.Unlock()
	if h.pending.Load() != 0 {
		return false // Run has packets to write first
	}
	if err := h.conn.Write(p.Data, gsoSize, ecn); err != nil && !isSendMsgSizeErr(err) {
		select {
		case h.directErr <- err:
		default:
		}
		return true
	}
	p.Release()
	return true
}

func (h *sendQueue) SendProbe(p *packetBuffer, addr net.Addr, info packetInfo) {
	h.conn.WriteTo(p.Data, addr, info)
}

func (h *sendQueue) WouldBlock() bool {
	return len(h.queue) == sendQueueCapacity
}

func (h *sendQueue) Available() <-chan struct{} {
	return h.available
}

func (h *sendQueue) Run() error {
	defer close(h.runStopped)
	var shouldClose bool
	for {
		if shouldClose && len(h.queue) == 0 {
			return nil
		}
		select {
		case <-h.closeCalled:
			h.closeCalled = nil // prevent this case from being selected again
			// make sure that all queued packets are actually sent out
			shouldClose = true
		case err := <-h.directErr:
			return err
		case e := <-h.queue:
			h.wmu.Lock()
			err := h.conn.Write(e.buf.Data, e.gsoSize, e.ecn)
			h.wmu.Unlock()
			h.pending.Add(-1)
			if err != nil {
				// This additional check enables:
				// 1. Checking for "datagram too large" message from the kernel, as such,
				// 2. Path MTU discovery,and
				// 3. Eventual detection of loss PingFrame.
				if !isSendMsgSizeErr(err) {
					return err
				}
			}
			e.buf.Release()
			select {
			case h.available <- struct{}{}:
			default:
			}
		}
	}
}

func (h *sendQueue) Close() {
	h.closing.Store(true)
	close(h.closeCalled)
	// wait until the run loop returned
	<-h.runStopped
}
