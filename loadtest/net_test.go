package loadtest

import (
	"net"
	"testing"

	"jumpfleet/transport/wire"
)

// TestNetDialerSpreadsSources: TLS connections leave round-robin from
// SourceAddrs distinct 127.1.x.y addresses (a large TLS fleet needs more
// than one source's ~64k ports), QUIC connections share the dialer's
// QUICSockets sockets, and Close releases them.
func TestNetDialerSpreadsSources(t *testing.T) {
	d := &NetDialer{Addr: "127.0.0.1:1", Protocol: "tls", SourceAddrs: 300}
	seen := map[string]int{}
	for range 600 {
		cfg := d.config(wire.KindActive)
		a, ok := cfg.LocalAddr.(*net.TCPAddr)
		if !ok {
			t.Fatalf("LocalAddr %v", cfg.LocalAddr)
		}
		ip := a.IP.To4()
		if ip == nil || ip[0] != 127 || ip[1] != 1 || ip[3] == 0 || ip[3] == 255 {
			t.Fatalf("source %v outside 127.1.0.0/16 or on .0/.255", a.IP)
		}
		seen[a.IP.String()]++
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct sources, want 300", len(seen))
	}
	for ip, n := range seen {
		if n != 2 {
			t.Fatalf("source %s used %d times, want 2 (round-robin)", ip, n)
		}
	}
	if cfg := (&NetDialer{Addr: "127.0.0.1:1", Protocol: "tls"}).config(wire.KindActive); cfg.LocalAddr != nil {
		t.Fatalf("no SourceAddrs: LocalAddr %v", cfg.LocalAddr)
	}

	q := &NetDialer{Addr: "127.0.0.1:1", Protocol: "quic", QUICSockets: 3}
	socks := map[any]int{}
	for range 9 {
		cfg := q.config(wire.KindActive)
		if cfg.QUICTransport == nil || cfg.LocalAddr != nil {
			t.Fatalf("quic config: transport %v, local %v", cfg.QUICTransport, cfg.LocalAddr)
		}
		socks[cfg.QUICTransport]++
	}
	if len(socks) != 3 {
		t.Fatalf("%d QUIC sockets, want 3", len(socks))
	}
	_ = q.Close()
	_ = q.Close() // idempotent
	if cfg := q.config(wire.KindActive); cfg.QUICTransport != nil {
		t.Fatal("a closed dialer still hands out a shared socket")
	}
}
