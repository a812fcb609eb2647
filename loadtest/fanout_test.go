package loadtest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a load-generator child: with JUMPLOAD_CHILD
// set it runs RunChild on its stdin and stdout instead of the tests.
func TestMain(m *testing.M) {
	if spec := os.Getenv("JUMPLOAD_CHILD"); spec != "" {
		os.Exit(childMain(spec))
	}
	os.Exit(m.Run())
}

type childSpec struct {
	Config Config
	Dialer *NetDialer
	Shard  int
	Shards int
}

func childMain(spec string) int {
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	defer s.Dialer.Close()
	if err := RunChild(context.Background(), s.Config, s.Dialer, s.Shard, s.Shards, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// TestSpawnedBrokerAcrossProcesses is the whole path: a jumpbroker child
// process on loopback, the fleet enrolled through the admin API and spread
// over two load processes speaking TLS, a rollout with signed packages, and
// the server's CPU read from /metrics.
func TestSpawnedBrokerAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sp := spawnBroker(ctx, t)
	// SourceAddrs: the load processes' connections leave from several
	// 127.1.0.x sources, as a large TLS fleet's do.
	d := &NetDialer{Addr: sp.Addr, Protocol: "tls", Pin: sp.Pin(), ReleaseKey: sp.Key.Public().(ed25519.PublicKey), DialTimeout: 10 * time.Second,
		SourceAddrs: 4}
	cfg := Config{Scenario: ScenarioRollout, Protocol: "tls", Active: 40, Jumpoints: 2, Passive: 10, MaxConcurrent: 6,
		UpgradeTime: 50 * time.Millisecond, PassivePeriod: time.Second, Timeout: 60 * time.Second, Seed: 4, Procs: 2}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Child = func(vc *Config, shard, n int) *exec.Cmd {
		spec, _ := json.Marshal(childSpec{Config: *vc, Dialer: d, Shard: shard, Shards: n})
		c := exec.Command(self)
		c.Env = append(os.Environ(), "JUMPLOAD_CHILD="+string(spec))
		return c
	}
	t.Logf("%d load processes, GOMAXPROCS %d", cfg.Procs, runtime.GOMAXPROCS(0))
	s := runScenario(t, cfg, Broker{Dialer: d, Control: NewAdmin(sp.Ctl, sp.Key), Restarter: sp})
	if s.Upgraded != 52 || s.Violations != 0 || s.GaveUp != 0 {
		t.Fatalf("upgraded %d of 52, %d violations, %d gave up", s.Upgraded, s.Violations, s.GaveUp)
	}
	// The passive clients' turns are judged in the broker's queue order,
	// read from its event stream, for every client.
	if !slices.ContainsFunc(s.Notes, func(n string) bool { return strings.Contains(n, "from the broker's queued events (52 of 52 clients)") }) {
		t.Fatalf("notes %q: want the passive lateness judged in the broker's queue order", s.Notes)
	}
	if s.ServerCPUusPerCheckin == nil || *s.ServerCPUusPerCheckin <= 0 || s.ServerRSSBytes == nil || *s.ServerRSSBytes <= 0 {
		t.Fatalf("server CPU %v, RSS %v: want both read from /metrics", s.ServerCPUusPerCheckin, s.ServerRSSBytes)
	}
	if s.ConnectS == nil || *s.ConnectS <= 0 || s.ConnectServerCPUusPerClient == nil || *s.ConnectServerCPUusPerClient <= 0 {
		t.Fatalf("connect phase %v s, %v µs of server CPU per client: want both measured", s.ConnectS, s.ConnectServerCPUusPerClient)
	}
	st, err := NewAdmin(sp.Ctl, sp.Key).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ByState["current"] != 52 || st.InFlight != 0 {
		t.Fatalf("broker status %v, in flight %d: want 52 current", st.ByState, st.InFlight)
	}
}

// spawnBroker builds jumpbroker and starts it on a temporary directory
// and loopback ports, closed at the end of the test.
func spawnBroker(ctx context.Context, t *testing.T) *Spawned {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts jumpbroker")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "jumpbroker")
	build := exec.Command("go", "build", "-o", bin, "./cmd/jumpbroker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build jumpbroker: %v\n%s", err, out)
	}
	sp, err := Spawn(ctx, SpawnConfig{Binary: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// TestSpawnedBrokerOverQUICWithRTT: a rollout over QUIC whose agents are
// AddedRTT away from the broker. Every check-in is a round trip, so none
// is answered sooner than the RTT (a lower bound: how much later is up to
// the machine), and the shared sockets are delayConns.
func TestSpawnedBrokerOverQUICWithRTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sp := spawnBroker(ctx, t)
	const rtt = 25 * time.Millisecond
	d := &NetDialer{Addr: sp.Addr, Protocol: "quic", Pin: sp.Pin(), ReleaseKey: sp.Key.Public().(ed25519.PublicKey), DialTimeout: 10 * time.Second,
		QUICSockets: 2, AddedRTT: rtt}
	defer d.Close()
	cfg := Config{Scenario: ScenarioRollout, Protocol: "quic", Active: 20, MaxConcurrent: 5,
		UpgradeTime: 50 * time.Millisecond, Timeout: 60 * time.Second, Seed: 6}
	s := runScenario(t, cfg, Broker{Dialer: d, Control: NewAdmin(sp.Ctl, sp.Key), Restarter: sp})
	if s.Upgraded != 20 || s.Violations != 0 || s.GaveUp != 0 {
		t.Fatalf("upgraded %d of 20, %d violations, %d gave up", s.Upgraded, s.Violations, s.GaveUp)
	}
	if s.LatencyP50ms < float64(rtt.Milliseconds()) {
		t.Fatalf("check-in latency p50 %.2f ms, below the added RTT of %v", s.LatencyP50ms, rtt)
	}
	d.qmu.Lock()
	for _, tr := range d.qts {
		if tr == nil {
			continue
		}
		if _, ok := tr.Conn.(*delayConn); !ok {
			t.Errorf("a shared socket is a %T, not a delayConn", tr.Conn)
		}
	}
	d.qmu.Unlock()
	if n := d.DelayDropped(); n != 0 {
		t.Fatalf("%d datagrams dropped by the delay queues", n)
	}
}

func TestParseMetrics(t *testing.T) {
	text := []byte("# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\n" +
		"process_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 1.048576e+07\ngo_goroutines{a=\"b\"} 7\n")
	m, err := ParseMetrics(text, "process_cpu_seconds_total", "process_resident_memory_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if m["process_cpu_seconds_total"] != 12.5 || m["process_resident_memory_bytes"] != 10485760 {
		t.Fatalf("parsed %v", m)
	}
	if _, err := ParseMetrics(text, "missing_metric"); err == nil {
		t.Fatal("a missing metric was not reported")
	}
}

func TestFlightMaxReplaysProcessesInTimeOrder(t *testing.T) {
	// Process A: starts at 1, 2; ends at 5, 6. Process B: start at 3, end
	// at 4; start at 5 (same instant as A's end: the end comes first).
	events := []int64{1, 2, -5, -6, 3, -4, 5}
	m, v := flightMax(events, 2)
	if m != 3 || v != 1 {
		t.Fatalf("flightMax = %d, %d violations; want 3 at once (at t=3) and 1 violation", m, v)
	}
	if m, v := flightMax([]int64{1, -2, 2, -3}, 1); m != 1 || v != 0 {
		t.Fatalf("back-to-back upgrades: max %d, %d violations; want 1, 0", m, v)
	}
}

// TestSnapshotLinesWithoutHistograms: a child's line without histograms
// carries nil ones, and the parent keeps the child's previous histograms
// for it, so a merge between two full lines sees the last ones sent.
func TestSnapshotLinesWithoutHistograms(t *testing.T) {
	rec := NewRecorder(1)
	rec.Latency.Record(3 * time.Millisecond)
	full := rec.snapshot(true)
	if full.Latency == nil || full.Connect == nil || len(full.Latency) != 1 {
		t.Fatalf("full snapshot histograms: latency %v connect %v", full.Latency, full.Connect)
	}
	rec.checkins.Add(5)
	rec.Latency.Record(3 * time.Millisecond)
	line := rec.snapshot(false)
	if line.Latency != nil || line.Connect != nil || line.Fetch != nil || line.Restart != nil || line.JumpLag != nil {
		t.Fatal("counters-only snapshot carries histograms")
	}
	// Through JSON, as between the processes.
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	var got Snapshot
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	keepHistograms(&got, &full)
	if got.Checkins != 5 || !maps.Equal(got.Latency, full.Latency) || got.Connect == nil {
		t.Fatalf("after keepHistograms: checkins %d latency %v", got.Checkins, got.Latency)
	}
	// A full line replaces them.
	next := rec.snapshot(true)
	keepHistograms(&next, &got)
	if n := Merge(next).Latency; n[bucketOf(t, 3*time.Millisecond)] != 2 {
		t.Fatalf("full line after: latency %v", n)
	}
}

func bucketOf(t *testing.T, d time.Duration) int {
	t.Helper()
	var h Histogram
	h.Record(d)
	for i := range h.Buckets() {
		return i
	}
	t.Fatal("no bucket")
	return 0
}
