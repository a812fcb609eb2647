package quic

// Tests of jumpfleet's third patch (JUMPFLEET.md): a packet sent while
// nothing is queued or being written goes out on the caller's goroutine;
// otherwise it is queued behind the others, so packets leave in the order
// they were sent, and a direct write's error ends Run as a queued one's
// would.

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// recConn is a sendConn that records what is written and can hold writes
// back until released.
type recConn struct {
	mu      sync.Mutex
	written [][]byte
	gate    chan struct{} // if not nil, each Write waits for a receive
	entered chan struct{} // gets a value when a Write starts
	err     error
}

func (c *recConn) Write(b []byte, _ uint16, _ protocol.ECN) error {
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.written = append(c.written, append([]byte(nil), b...))
	return c.err
}
func (c *recConn) WriteTo([]byte, net.Addr, packetInfo) error { return nil }
func (c *recConn) Close() error                               { return nil }
func (c *recConn) LocalAddr() net.Addr                        { return nil }
func (c *recConn) RemoteAddr() net.Addr                       { return nil }
func (c *recConn) ChangeRemoteAddr(net.Addr, packetInfo)      {}
func (c *recConn) capabilities() connCapabilities             { return connCapabilities{} }

func (c *recConn) got() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}

// packet is a one-byte packet carrying b.
func packet(b byte) *packetBuffer {
	p := getPacketBuffer()
	p.Data = append(p.Data[:0], b)
	return p
}

// waitWritten waits until n packets are written and returns them.
func (c *recConn) waitWritten(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // far above what the writes need
	for len(c.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets written, want %d", len(c.got()), n)
		}
		time.Sleep(time.Millisecond)
	}
	return c.got()
}

// TestSendDirectWhenIdle: with nothing queued, Send has written the packet
// before it returns, and Run is not needed for it.
func TestSendDirectWhenIdle(t *testing.T) {
	c := &recConn{}
	q := newSendQueue(c).(*sendQueue)
	q.Send(packet(1), 0, protocol.ECNNon)
	q.Send(packet(2), 0, protocol.ECNNon)
	if got := c.got(); len(got) != 2 || got[0][0] != 1 || got[1][0] != 2 {
		t.Fatalf("written %v, want packets 1 and 2 at once, in order", got)
	}
	if q.pending.Load() != 0 || len(q.queue) != 0 {
		t.Fatalf("pending %d, queued %d; want none", q.pending.Load(), len(q.queue))
	}
}

// TestSendQueuesBehindAWrite: while Run writes a queued packet, later
// packets queue behind it and leave after it, in order.
func TestSendQueuesBehindAWrite(t *testing.T) {
	c := &recConn{gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	q := newSendQueue(c).(*sendQueue)
	done := make(chan error, 1)
	go func() { done <- q.Run() }()

	// Hold the socket as a concurrent writer would, so packet 1 queues.
	q.wmu.Lock()
	q.Send(packet(1), 0, protocol.ECNNon)
	q.wmu.Unlock()
	<-c.entered // Run is writing packet 1, held at the gate
	for b := byte(2); b <= 4; b++ {
		q.Send(packet(b), 0, protocol.ECNNon) // pending: queued, not direct
	}
	for range 4 {
		c.gate <- struct{}{} // entered has room for every Write's signal
	}
	got := c.waitWritten(t, 4)
	for i, p := range got {
		if p[0] != byte(i+1) {
			t.Fatalf("written %v, want packets 1..4 in order", got)
		}
	}
	c.gate = nil
	c.entered = nil
	q.Send(packet(5), 0, protocol.ECNNon) // idle again: direct
	if got := c.got(); len(got) != 5 || got[4][0] != 5 {
		t.Fatalf("after the queue drained, packet 5 not written at once: %v", got)
	}
	q.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestSendDirectErrorEndsRun: a direct write's error is returned by Run.
func TestSendDirectErrorEndsRun(t *testing.T) {
	boom := errors.New("boom")
	c := &recConn{err: boom}
	q := newSendQueue(c).(*sendQueue)
	done := make(chan error, 1)
	go func() { done <- q.Run() }()
	q.Send(packet(1), 0, protocol.ECNNon)
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run returned %v, want the write's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return the direct write's error")
	}
}

// TestSendAfterCloseIsQueued: once Close is called, Send leaves packets to
// Run's draining path, as upstream does.
func TestSendAfterCloseIsQueued(t *testing.T) {
	c := &recConn{}
	q := newSendQueue(c).(*sendQueue)
	q.closing.Store(true)
	q.Send(packet(1), 0, protocol.ECNNon)
	if len(c.got()) != 0 || len(q.queue) != 1 {
		t.Fatalf("after Close: %d written, %d queued; want 0 and 1", len(c.got()), len(q.queue))
	}
}
