package server_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"jumpfleet/engine"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// rawQUICConn is a QUIC connection's one stream as a rawConn.
type rawQUICConn struct {
	*quic.Stream
	qc *quic.Conn
}

func (c rawQUICConn) ConnectionState() tls.ConnectionState { return c.qc.ConnectionState().TLS }
func (c rawQUICConn) CloseWrite() error                    { return c.Stream.Close() }
func (c rawQUICConn) Close() error                         { return c.qc.CloseWithError(0, "") }

// rawQUIC is raw over QUIC.
func (h *harness) rawQUIC() *raw {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, h.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{server.ALPNJumpfleet}}, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	c := rawQUICConn{Stream: st, qc: qc}
	h.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{t: h.t, c: c, r: wire.NewReader(c, wire.MaxFrameLimit)}
}

// TestQUICSessionDeadlines: the deadline sweeper (quicdeadline.go) keeps a
// QUIC session's deadlines: the first frame's, the idle timeout of an
// authenticated client that goes quiet, and never a client that keeps
// talking past its idle timeout.
func TestQUICSessionDeadlines(t *testing.T) {
	const first, idle = 300 * time.Millisecond, 400 * time.Millisecond
	h := newHarness(t, 54, func(c *server.Config, _ *engine.Settings) {
		c.FirstFrameTimeout = first
		c.Heartbeat = 100 * time.Millisecond
		c.IdleTimeout = idle
	})
	silent := h.rawQUIC()
	start := time.Now()
	silent.send(&wire.Hello{Magic: wire.Magic, MinVersion: 1, MaxVersion: 1, Role: wire.KindActive, MaxFrame: 65536})
	if m, err := silent.r.ReadMsg(); err != nil || m.Type() != wire.TypeHelloAck {
		t.Fatalf("HelloAck: %v %v", m, err)
	}
	e := silent.expectError(wire.CodeTimeout)
	if d := time.Since(start); d < first {
		t.Fatalf("no Auth: closed after %v, before the first-frame timeout %v", d, first)
	}
	t.Logf("first-frame timeout after %v: %s", time.Since(start), e.Msg)

	cred, c := h.enroll("quic", wire.KindActive, v1, "")
	_ = c.Close()
	talker := h.rawQUIC()
	talker.hello(wire.KindActive)
	talker.auth(cred)
	quiet := h.rawQUIC()
	quiet.hello(wire.KindActive)
	quiet.auth(cred) // the same client twice: the newer session replaces the older
	_ = talker.c.Close()

	start = time.Now()
	e = quiet.expectError(wire.CodeTimeout)
	if d := time.Since(start); d < idle*3/4 {
		t.Fatalf("idle session closed after %v, before its idle timeout %v", d, idle)
	}
	t.Logf("idle timeout after %v: %s", time.Since(start), e.Msg)

	busy := h.rawQUIC()
	busy.hello(wire.KindActive)
	busy.auth(cred)
	for end := time.Now().Add(3 * idle); time.Now().Before(end); time.Sleep(idle / 4) {
		busy.send(&wire.Heartbeat{})
		if m, err := busy.r.ReadMsg(); err != nil || m.Type() != wire.TypeHeartbeatAck {
			t.Fatalf("a client heartbeating every %v was cut off: %v %v", idle/4, m, err)
		}
	}
}
