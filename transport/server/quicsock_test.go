package server_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// TestQUICSocketsShareThePort: the broker binds QUICSockets UDP sockets
// to its one QUIC port; clients hashed onto any of them enroll and check
// in, and no other socket can join the port behind the broker's back.
func TestQUICSocketsShareThePort(t *testing.T) {
	const sockets, clients = 4, 24
	h := newHarness(t, 41, func(c *server.Config, _ *engine.Settings) { c.QUICSockets = sockets })
	_, udp := h.srv.Addrs()
	port := udp.(*net.UDPAddr).Port

	if n := udpSocketsOn(t, port); n != sockets {
		t.Fatalf("%d UDP sockets on port %d, want %d", n, port, sockets)
	}
	// Each client has its own UDP socket, so its own source port: the
	// kernel spreads them over the broker's sockets.
	for i := range clients {
		_, c := h.enroll("quic", wire.KindActive, v1, "")
		ans, err := c.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
		if err != nil || ans.State != wire.StateCurrent {
			t.Fatalf("client %d: %+v %v", i, ans, err)
		}
	}
	// A plain bind (no SO_REUSEPORT) must fail: the port is the broker's.
	if pc, err := net.ListenPacket("udp", udp.String()); err == nil {
		_ = pc.Close()
		t.Fatal("another socket could bind the broker's QUIC port")
	}
}

// udpSocketsOn counts IPv4 UDP sockets bound to port (/proc/net/udp).
func udpSocketsOn(t *testing.T, port int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		t.Skipf("no /proc/net/udp: %v", err)
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			n++
		}
	}
	return n
}

// TestQUICAcceptRateBeforeHandshake: a QUIC connection over the accept
// bucket is refused before its handshake (no handshake counted), quickly,
// and counted as an accept-rate drop.
func TestQUICAcceptRateBeforeHandshake(t *testing.T) {
	h := newHarness(t, 42, func(c *server.Config, _ *engine.Settings) {
		c.AcceptRate, c.AcceptBurst = 0.001, 1 // one connection, then none for ~17 minutes
	})
	h.dial("quic", wire.KindActive) // takes the one token
	start := time.Now()
	if c, err := client.Dial(ctx(t), h.cfg("quic", wire.KindActive)); err == nil {
		_ = c.Close()
		t.Fatal("a second QUIC connection got past an empty accept bucket")
	} else {
		t.Logf("refused after %v: %v", time.Since(start), err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("refusal took %v: the client waited for a timeout", d)
	}
	// At least one: a client Initial retransmitted before the refusal
	// arrives is refused (and counted) again.
	if n := h.counter("jumpfleet_transport_drops_total", map[string]string{"reason": "accept_rate"}); n < 1 {
		t.Fatalf("accept_rate drops = %v, want at least 1", n)
	}
	if n := h.counter("jumpfleet_transport_handshakes_total", map[string]string{"proto": "quic", "result": "ok"}); n != 1 {
		t.Fatalf("QUIC handshakes = %v, want 1 (the refused one must not handshake)", n)
	}
}
