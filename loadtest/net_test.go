package loadtest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"jumpfleet/transport/client"
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

// TestProcCPU: the /proc readers the storm's machine bound rests on parse
// a stat line whose command name holds spaces and parentheses, see this
// process and a child it starts, and count only what was spent between
// two readings.
func TestProcCPU(t *testing.T) {
	line := "4242 (jump (load) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 3 4 20 0 9 0 123 456 789"
	cpu, err := parseStatCPU(line)
	if err != nil || cpu != 3.25 {
		t.Fatalf("parseStatCPU = %v, %v; want 3.25 s (250+75 ticks)", cpu, err)
	}
	if _, err := parseStatCPU("4242 jumpload S 1"); err == nil {
		t.Fatal("a line without a command name parsed")
	}
	if _, err := parseStatCPU("4242 (x) S 1 2 3"); err == nil {
		t.Fatal("a short line parsed")
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep(1) to start a child: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	tree, err := treeCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tree[os.Getpid()]; !ok {
		t.Fatalf("treeCPU misses this process: %v", tree)
	}
	if _, ok := tree[cmd.Process.Pid]; !ok {
		t.Fatalf("treeCPU misses child %d: %v", cmd.Process.Pid, tree)
	}
	if m, err := machineBusy(); err != nil || m.Busy <= 0 || m.SoftIRQ < 0 || m.SoftIRQ > m.Busy {
		t.Fatalf("machineBusy = %+v, %v", m, err)
	}

	before := map[int]float64{1: 2, 2: 5}
	after := map[int]float64{1: 3.5, 2: 5, 3: 0.25} // 3 was born in between
	if got := cpuSince(before, after); got != 1.75 {
		t.Fatalf("cpuSince = %v, want 1.75", got)
	}
}

// TestStormBound: the ratio is judged against broker + load CPU over the
// cores, and the broker-only bound is kept beside it.
func TestStormBound(t *testing.T) {
	b := stormBound{Window: 3 * time.Second, Cores: 2, BrokerCPU: 1.5, LoadCPU: 2.5, Clients: 5000, Separate: true}
	if b.broker() != 0.75 || b.machine() != 2 || b.ratio() != 1.5 {
		t.Fatalf("broker %v machine %v ratio %v; want 0.75, 2, 1.5", b.broker(), b.machine(), b.ratio())
	}
	if s := b.String(); !strings.Contains(s, "= 1.50x") || !strings.Contains(s, "300 µs per client") {
		t.Fatalf("note %q", s)
	}
	zero := stormBound{Window: time.Second, Cores: 2}
	if zero.ratio() != 0 || !strings.Contains(zero.String(), "too short") {
		t.Fatalf("a bound of zero CPU gives ratio %v, note %q", zero.ratio(), zero.String())
	}
	if s := (stormBound{Window: time.Second, Cores: 2, LoadCPU: 2, Clients: 10}).String(); !strings.Contains(s, "= 1.00x") || !strings.Contains(s, "in this process") {
		t.Fatalf("in-process note %q", s)
	}
}

// TestNetDialerQUICTimers: the storm's QUIC keep-alive and idle timeout
// reach the client library's QUIC config, and unset they leave its
// defaults alone.
func TestNetDialerQUICTimers(t *testing.T) {
	d := &NetDialer{Addr: "127.0.0.1:1", Protocol: "quic", QUICSockets: 1, QUICIdleTimeout: 12 * time.Second}
	defer d.Close()
	cfg := d.config(wire.KindActive)
	if cfg.QUIC == nil || cfg.QUIC.KeepAlivePeriod != client.DefaultQUICKeepAlive || cfg.QUIC.MaxIdleTimeout != 12*time.Second {
		t.Fatalf("quic config %+v; want the default keep-alive and a 12s idle timeout", cfg.QUIC)
	}
	d.QUICKeepAlive = 4 * time.Second
	if cfg := d.config(wire.KindActive); cfg.QUIC.KeepAlivePeriod != 4*time.Second {
		t.Fatalf("keep-alive %v, want 4s", cfg.QUIC.KeepAlivePeriod)
	}
	plain := &NetDialer{Addr: "127.0.0.1:1", Protocol: "quic", QUICSockets: 1}
	defer plain.Close()
	if cfg := plain.config(wire.KindActive); cfg.QUIC != nil {
		t.Fatalf("no timers set, yet QUIC config %+v", cfg.QUIC)
	}
}

// TestStormNotesItsBounds: a storm (in process: the broker's CPU is this
// process's, so only the machine bound exists) says how long the restart
// took, when each tenth of the fleet was back, and its machine bound.
func TestStormNotesItsBounds(t *testing.T) {
	const seed = 11
	t.Logf("seed %d", seed)
	b, err := NewInProc(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := Config{Scenario: ScenarioStorm, Active: 100, Timeout: 30 * time.Second,
		ReconnectBase: 5 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, Seed: seed}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Run(ctx, cfg, Broker{Dialer: b, Control: b, Restarter: b})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(s.Notes, "\n")
	t.Logf("notes:\n%s", notes)
	for _, want := range []string{"the restart took", "100%=", "machine bound", "core-seconds", "softirq"} {
		if !strings.Contains(notes, want) {
			t.Fatalf("storm notes lack %q", want)
		}
	}
	if strings.Contains(notes, "broker-only bound ") {
		t.Fatalf("an in-process broker has no CPU of its own to bound by: %s", notes)
	}
}

// A recycled download target starts zeroed, so a download that skipped a
// chunk cannot pass verification with an earlier download's bytes.
func TestMemFileRecycledZeroed(t *testing.T) {
	for i := range 8 {
		f := newMemFile(16)
		if len(f.b) != 16 {
			t.Fatalf("round %d: %d bytes, want 16", i, len(f.b))
		}
		for j, c := range f.b {
			if c != 0 {
				t.Fatalf("round %d: byte %d is %#x, want 0", i, j, c)
			}
		}
		if _, err := f.WriteAt([]byte("previous package"), 0); err != nil {
			t.Fatal(err)
		}
		f.recycle()
	}
	if f := newMemFile(32); len(f.b) != 32 {
		t.Fatalf("larger file: %d bytes, want 32", len(f.b))
	}
}
