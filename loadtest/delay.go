package loadtest

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// delayConn is a load process's QUIC socket whose outgoing datagrams wait
// d before they are sent: the round-trip time of a network between the
// agents and the broker, which loopback does not have.
//
// Why: on loopback a QUIC connection measures a round-trip of a fraction
// of a millisecond, and its probe timeout (RTT + 4·RTTvar + the peer's
// max ACK delay) comes to ~25 ms. The broker and 100,000 simulated agents
// share two cores here, and any scheduling delay longer than that makes
// connections on both sides send probes and retransmissions for data
// that was never lost; the extra packets cost CPU, which delays more
// ACKs. In the field an agent is tens of milliseconds away and the same
// delay passes unnoticed. Holding back one direction is enough for both
// ends to measure the RTT (the broker's ACKs and answers come back at
// once, the agents' arrive d late).
//
// Reads are not wrapped (quic-go reads batches through the socket
// itself); writes keep the socket's GSO and ECN control data. The queue
// is FIFO (every datagram waits the same d) and bounded: beyond
// maxDelayed datagrams or maxDelayedBytes waiting, more are dropped as a
// full router queue would. A write that fails after its delay counts as
// dropped too: quic-go's reactions to some send errors (EIO on a GSO
// batch, which turns GSO off) do not happen behind the delay, which is
// fine on loopback (it does GSO) and why this is a test tool only.
type delayConn struct {
	*net.UDPConn
	d time.Duration

	mu     sync.Mutex
	q      []delayed // FIFO, owned by mu
	qbytes int       // bytes in q, owned by mu
	closed bool      // owned by mu
	wake   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	dropped atomic.Int64 // queue full, or the delayed write failed
}

type delayed struct {
	due  time.Time
	b    []byte
	oob  []byte
	addr *net.UDPAddr
}

// maxDelayed and maxDelayedBytes bound a socket's queue (a GSO batch is
// up to ~20 KB): 20 ms of a socket's share of the full-size QUIC
// rollout's traffic is a few hundred datagrams.
const (
	maxDelayed      = 1 << 14
	maxDelayedBytes = 4 << 20
)

func newDelayConn(uc *net.UDPConn, d time.Duration) *delayConn {
	c := &delayConn{UDPConn: uc, d: d, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.wg.Go(c.run)
	return c
}

// WriteMsgUDP is how quic-go writes on an OOB-capable socket.
func (c *delayConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	c.push(delayed{b: append([]byte{}, b...), oob: append([]byte(nil), oob...), addr: copyAddr(addr)})
	return len(b), len(oob), nil
}

// WriteTo is the plain path (quic-go uses it if the socket cannot do
// OOB).
func (c *delayConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return c.UDPConn.WriteTo(b, addr)
	}
	c.push(delayed{b: append([]byte{}, b...), addr: copyAddr(ua)})
	return len(b), nil
}

// copyAddr keeps the destination the caller may reuse after the write.
func copyAddr(a *net.UDPAddr) *net.UDPAddr {
	if a == nil {
		return nil
	}
	c := *a
	c.IP = append(net.IP(nil), a.IP...)
	return &c
}

func (c *delayConn) push(p delayed) {
	size := len(p.b) + len(p.oob)
	c.mu.Lock()
	if c.closed || len(c.q) >= maxDelayed || c.qbytes+size > maxDelayedBytes {
		c.mu.Unlock()
		c.dropped.Add(1)
		return
	}
	p.due = time.Now().Add(c.d) // under mu: due times in queue order
	c.q = append(c.q, p)
	c.qbytes += size
	first := len(c.q) == 1
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// run sends each datagram when it is due. It owns the one timer.
func (c *delayConn) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		c.mu.Lock()
		var p delayed
		var wait time.Duration
		have := len(c.q) > 0
		if have {
			p = c.q[0]
			if wait = time.Until(p.due); wait <= 0 {
				c.q[0] = delayed{}
				c.q = c.q[1:]
				c.qbytes -= len(p.b) + len(p.oob)
				if len(c.q) == 0 {
					c.q = c.q[:0:0] // let the drained backing array go
				}
			}
		}
		c.mu.Unlock()
		switch {
		case have && wait <= 0:
			var err error
			if p.oob != nil {
				_, _, err = c.UDPConn.WriteMsgUDP(p.b, p.oob, p.addr)
			} else {
				_, err = c.UDPConn.WriteTo(p.b, p.addr)
			}
			if err != nil {
				c.dropped.Add(1)
			}
			continue
		case have:
			t.Reset(wait)
			select {
			case <-t.C:
			case <-c.done:
				return
			}
		default:
			select {
			case <-c.wake:
			case <-c.done:
				return
			}
		}
	}
}

// Close stops the sender, drops what waits and closes the socket. Safe
// to call twice.
func (c *delayConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.dropped.Add(int64(len(c.q)))
	c.q, c.qbytes = nil, 0
	c.mu.Unlock()
	close(c.done)
	c.wg.Wait()
	return c.UDPConn.Close()
}
