package quic

// Tests of jumpfleet's fifth patch (JUMPFLEET.md): the run loop writes
// each packet itself, in order; a write's error closes the connection
// once; and a connection has no send goroutine.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// recConn is a sendConn that records what is written (on the test's
// goroutine: Send writes on its caller's).
type recConn struct {
	written [][]byte
	err     error
}

func (c *recConn) Write(b []byte, _ uint16, _ protocol.ECN) error {
	c.written = append(c.written, append([]byte(nil), b...))
	return c.err
}
func (c *recConn) WriteTo([]byte, net.Addr, packetInfo) error { return nil }
func (c *recConn) Close() error                               { return nil }
func (c *recConn) LocalAddr() net.Addr                        { return nil }
func (c *recConn) RemoteAddr() net.Addr                       { return nil }
func (c *recConn) ChangeRemoteAddr(net.Addr, packetInfo)      {}
func (c *recConn) capabilities() connCapabilities             { return connCapabilities{} }

// packet is a one-byte packet carrying b.
func packet(b byte) *packetBuffer {
	p := getPacketBuffer()
	p.Data = append(p.Data[:0], b)
	return p
}

// TestSendWritesAtOnce: Send has written the packet before it returns,
// packets leave in the order sent, and the queue never reports itself full.
func TestSendWritesAtOnce(t *testing.T) {
	c := &recConn{}
	q := newSendQueue(c, func(err error) { t.Errorf("onError(%v) with no error", err) })
	for b := byte(1); b <= 20; b++ { // more than upstream's queue of 8
		q.Send(packet(b), 0, protocol.ECNNon)
		if got := c.written; len(got) != int(b) || got[b-1][0] != b {
			t.Fatalf("after Send(%d): written %v", b, got)
		}
		if q.WouldBlock() {
			t.Fatalf("WouldBlock after %d packets", b)
		}
	}
	if q.Available() != nil {
		t.Fatal("Available is a channel the run loop could wait on")
	}
}

// TestSendErrorClosesOnce: a write's error reaches onError once (the
// connection closes, as upstream's Run returning it did), and later
// packets are dropped, not written.
func TestSendErrorClosesOnce(t *testing.T) {
	boom := errors.New("boom")
	c := &recConn{err: boom}
	var errs []error
	q := newSendQueue(c, func(err error) { errs = append(errs, err) })
	q.Send(packet(1), 0, protocol.ECNNon)
	q.Send(packet(2), 0, protocol.ECNNon)
	if len(errs) != 1 || !errors.Is(errs[0], boom) {
		t.Fatalf("onError got %v, want the write's error once", errs)
	}
	if got := c.written; len(got) != 1 {
		t.Fatalf("%d writes, want 1 (nothing after the error)", len(got))
	}
}

// TestSendAfterCloseDropped: after Close (twice is safe) nothing is
// written; the connection writes its CONNECTION_CLOSE to the socket itself.
func TestSendAfterCloseDropped(t *testing.T) {
	c := &recConn{}
	q := newSendQueue(c, func(err error) { t.Errorf("onError(%v)", err) })
	q.Close()
	q.Close()
	q.Send(packet(1), 0, protocol.ECNNon)
	if n := len(c.written); n != 0 {
		t.Fatalf("%d packets written after Close", n)
	}
}

// TestNoSendGoroutine: on loopback, each connection costs its client and
// its server one goroutine each (their run loops), where upstream's also
// had a send goroutine on each side (four). Counted as the difference
// between n and 2n open connections, so the transports' own goroutines and
// the test's cancel out.
func TestNoSendGoroutine(t *testing.T) {
	tlsConf := selfSigned(t)
	ln, err := ListenAddr("127.0.0.1:0", tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Conn: udp}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cconf := &tls.Config{InsecureSkipVerify: true, NextProtos: tlsConf.NextProtos}

	var conns []*Conn
	defer func() {
		for _, c := range conns {
			_ = c.CloseWithError(0, "")
		}
	}()
	open := func(n int) {
		for range n {
			cc, err := tr.Dial(ctx, ln.Addr(), cconf, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, cc, sc)
		}
	}
	// settled is the goroutine count once it stops falling (the handshake's
	// short-lived goroutines gone), read up to a deadline far above what
	// that takes.
	settled := func() int {
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return n
			}
			n = m
		}
		return n
	}
	const n = 10
	open(n)
	before := settled()
	open(n)
	after := settled()
	// 2 per pair, and upstream's 4; the margin is for a handshake
	// goroutine (the server's handleNewConn) still on its way out.
	if per := float64(after-before) / n; per > 2.5 {
		t.Fatalf("%.1f goroutines per connection pair, want 2 (one run loop each side; 4 with send goroutines)", per)
	}
}
