package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// sessionGoroutines counts goroutines running a session's read loop.
func sessionGoroutines() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "jumpfleet/transport/server.(*session).loop(")
}

// waitSessionGoroutines waits until exactly want session goroutines run.
func waitSessionGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := sessionGoroutines()
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d session goroutines, want %d", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleTLSSessionsHaveNoGoroutine: an idle TLS session waits in the
// poller, not on a goroutine of its own, and wakes when its client sends.
// With NoPoller every idle session keeps one (which also shows the count
// sees them).
func TestIdleTLSSessionsHaveNoGoroutine(t *testing.T) {
	const n = 30
	for _, noPoller := range []bool{false, true} {
		name := map[bool]string{false: "poller", true: "no-poller"}[noPoller]
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, 51, func(c *server.Config, _ *engine.Settings) { c.NoPoller = noPoller })
			var conns []*client.Conn
			for range n {
				_, c := h.enroll("tls", wire.KindActive, v1, "")
				conns = append(conns, c)
			}
			want := 0
			if noPoller {
				want = n
			}
			for round := range 3 {
				for i, c := range conns {
					ans, err := c.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
					if err != nil || ans.State != wire.StateCurrent {
						t.Fatalf("round %d client %d: %+v %v", round, i, ans, err)
					}
				}
				waitSessionGoroutines(t, want)
			}
		})
	}
}

// TestParkedSessionDeadlines: a session parked without a goroutine still
// keeps its deadlines: the first frame's, and the idle timeout of an
// authenticated client that goes quiet.
func TestParkedSessionDeadlines(t *testing.T) {
	h := newHarness(t, 52, func(c *server.Config, _ *engine.Settings) {
		c.FirstFrameTimeout = 300 * time.Millisecond
		c.Heartbeat = 100 * time.Millisecond
		c.IdleTimeout = 400 * time.Millisecond
	})
	silent := h.raw()
	silent.expectTimeoutAfter(time.Now(), 0, "first-frame timeout")

	cred, c := h.enroll("tls", wire.KindActive, v1, "")
	_ = c.Close()
	quiet := h.raw()
	quiet.hello(wire.KindActive)
	quiet.auth(cred)
	quiet.expectTimeoutAfter(time.Now(), 300*time.Millisecond, "idle timeout")
}

// TestCloseEndsParkedSessions: Close ends sessions that are parked (no
// goroutine to notice the close) and returns; their clients see the end.
func TestCloseEndsParkedSessions(t *testing.T) {
	h := newHarness(t, 53, nil)
	var conns []*client.Conn
	for range 10 {
		_, c := h.enroll("tls", wire.KindActive, v1, "")
		if _, err := c.CheckIn(ctx(t), checkIn(wire.KindActive, v1)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitSessionGoroutines(t, 0)
	done := make(chan error, 1)
	go func() { done <- h.srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung on parked sessions")
	}
	for i, c := range conns {
		select {
		case <-c.Closed():
		case <-time.After(5 * time.Second):
			t.Fatalf("client %d still connected after Close", i)
		}
	}
}
