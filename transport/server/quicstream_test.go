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

// TestQUICSessionDeadlines: the deadline sweeper (quicstream.go) keeps a
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
	silent.hello(wire.KindActive)
	silent.expectTimeoutAfter(start, first, "first-frame timeout (no Auth)")

	cred, c := h.enroll("quic", wire.KindActive, v1, "")
	_ = c.Close()
	quiet := h.rawQUIC()
	quiet.hello(wire.KindActive)
	quiet.auth(cred)
	quiet.expectTimeoutAfter(time.Now(), idle*3/4, "idle timeout")

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
