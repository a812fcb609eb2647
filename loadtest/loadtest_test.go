package loadtest

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/engine/sim"
)

// These tests run whole scenarios against InProc: a real engine on a real
// Pebble store, real time, short upgrade times. They assert outcomes
// (everyone upgraded, no violation, jumps measured), never speed.

func inproc(t *testing.T) (*InProc, Broker) {
	t.Helper()
	b, err := NewInProc(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, Broker{Dialer: b, Control: b, Restarter: b}
}

func runScenario(t *testing.T, cfg Config, b Broker) Summary {
	t.Helper()
	t.Logf("seed %d", cfg.Seed)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	s, err := Run(ctx, cfg, b)
	js, _ := json.Marshal(s)
	t.Logf("summary: %s", js)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRolloutConvergesWithinTheLimit(t *testing.T) {
	b, br := inproc(t)
	cfg := Config{Scenario: ScenarioRollout, Protocol: "inproc", Active: 60, Passive: 30, Jumpoints: 4,
		MaxConcurrent: 8, UpgradeTime: 40 * time.Millisecond, UpgradeJitter: 0.25,
		PassivePeriod: 400 * time.Millisecond, ExtraCheckIns: 1, Timeout: 30 * time.Second, Seed: 3}
	s := runScenario(t, cfg, br)
	if s.Upgraded != 94 || s.Violations != 0 || s.MaxInFlight > 8 || s.MaxInFlight < 1 {
		t.Fatalf("upgraded %d of 94, violations %d, max in flight %d (limit 8)", s.Upgraded, s.Violations, s.MaxInFlight)
	}
	if s.MakespanS == nil || s.BoundS == nil || *s.BoundS <= 0 || *s.MakespanS <= 0 {
		t.Fatalf("makespan %v bound %v: want both measured", s.MakespanS, s.BoundS)
	}
	if s.FloorS != nil {
		t.Fatalf("floor %v with passive clients: an ideal schedule cannot model their check-ins", *s.FloorS)
	}
	if s.SlotFetchMeanS == nil || s.SlotRestartMeanS == nil || s.SlotRestartP99S == nil || *s.SlotRestartP99S <= 0 {
		t.Fatalf("slot phases not measured: fetch %v, restart %v / %v", s.SlotFetchMeanS, s.SlotRestartMeanS, s.SlotRestartP99S)
	}
	// Lateness is real time here, so only its presence is asserted
	// (TestPassiveLateness checks the figure itself).
	if s.PassiveLateMaxS == nil || s.PassiveLateBeyondPeriod == nil || s.PassivePeriodS == nil || *s.PassivePeriodS != 0.4 {
		t.Fatalf("passive lateness not measured: max %v beyond %v period %v", s.PassiveLateMaxS, s.PassiveLateBeyondPeriod, s.PassivePeriodS)
	}
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.ByState["current"] != 94 || st.InFlight != 0 {
		t.Fatalf("broker says %v, in flight %d: want all 94 current", st.ByState, st.InFlight)
	}
	if b.Dropped() != 0 {
		t.Fatalf("%d pushes dropped", b.Dropped())
	}
}

func TestRolloutRetriesFailedAttempts(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioRollout, Active: 40, MaxConcurrent: 5, UpgradeTime: 20 * time.Millisecond,
		FailRate: 0.2, Timeout: 30 * time.Second, Seed: 11}
	// The engine's default retry backoff (30 s) is longer than a test:
	// shorten it through the engine the InProc broker runs.
	b := br.Control.(*InProc)
	if _, err := b.node.UpdateSettings(context.Background(), func(s *engine.Settings) error {
		s.RetryBase, s.RetryMax, s.RetryLimit = 10*time.Millisecond, 50*time.Millisecond, 20
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s := runScenario(t, cfg, br)
	if s.Upgraded != 40 || s.Failed == 0 || s.Violations != 0 {
		t.Fatalf("upgraded %d of 40 with %d failed attempts and %d violations: want all, some, none", s.Upgraded, s.Failed, s.Violations)
	}
}

// A rollout stopped before every client upgraded reports no makespan: the
// time of its last upgrade so far is not one, and its ratio would read as
// a success.
func TestRolloutIncompleteHasNoMakespan(t *testing.T) {
	_, br := inproc(t)
	// 40 installs of 100 ms behind one slot take at least 4 s: a 2 s
	// timeout cuts the rollout short on any machine.
	cfg := Config{Scenario: ScenarioRollout, Active: 40, MaxConcurrent: 1, UpgradeTime: 100 * time.Millisecond,
		Timeout: 2 * time.Second, Seed: 13}
	t.Logf("seed %d", cfg.Seed)
	s, err := Run(context.Background(), cfg, br)
	if err == nil || s.Upgraded >= 40 {
		t.Fatalf("upgraded %d of 40 (err %v): want the rollout cut short", s.Upgraded, err)
	}
	if s.MakespanS != nil || s.MakespanRatio != nil || s.FloorS != nil {
		t.Fatalf("makespan %v ratio %v floor %v after %d of 40: want none", s.MakespanS, s.MakespanRatio, s.FloorS, s.Upgraded)
	}
	// The note names the last upgrade so far; a machine too slow to
	// finish one install in 2 s has none to name.
	if s.Upgraded > 0 && !strings.Contains(strings.Join(s.Notes, "\n"), "rollout incomplete: ") {
		t.Fatalf("notes %q: want the incomplete rollout named", s.Notes)
	}
}

func TestJumpStartsJumpedClientsFirst(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioJump, Active: 150, Consoles: 2, MaxConcurrent: 4,
		UpgradeTime: 100 * time.Millisecond, Duration: 1500 * time.Millisecond, JumpEvery: 60 * time.Millisecond, Seed: 5}
	s := runScenario(t, cfg, br)
	if s.Jumps == 0 || s.JumpToStartP99s == nil {
		t.Fatalf("jumps %d, p99 %v: want jumps measured", s.Jumps, s.JumpToStartP99s)
	}
	if s.Violations != 0 {
		t.Fatalf("%d violations", s.Violations)
	}
	// 150 clients behind 4 slots of 100 ms: a normal client waits seconds,
	// a jumped one at most the jump lane ahead of it. The p50 must be far
	// below the normal lane's wait (a loose, speed-independent bound).
	normalWait := float64(cfg.Active) / float64(cfg.MaxConcurrent) * cfg.UpgradeTime.Seconds()
	if *s.JumpToStartP50s > normalWait/2 {
		t.Fatalf("jump-to-start p50 %.3fs, not far below the normal lane's %.1fs", *s.JumpToStartP50s, normalWait)
	}
}

// With equal installs the floor is a true lower bound: no broker starts
// the k-th install before the ideal schedule does.
func TestRolloutFloorBelowMakespan(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioRollout, Protocol: "inproc", Active: 40, Jumpoints: 2,
		MaxConcurrent: 6, StartsPerSec: 100, UpgradeTime: 40 * time.Millisecond, Timeout: 30 * time.Second, Seed: 5}
	s := runScenario(t, cfg, br)
	if s.Upgraded != 42 || s.Violations != 0 {
		t.Fatalf("upgraded %d of 42, violations %d", s.Upgraded, s.Violations)
	}
	want := sim.IdealMakespan(42, 6, cfg.UpgradeTime, 0, 100, 6, cfg.Seed)
	if s.FloorS == nil || s.FloorRatio == nil || *s.FloorS != want || *s.FloorRatio != want / *s.BoundS {
		t.Fatalf("floor %v (ratio %v), want %v", s.FloorS, s.FloorRatio, want)
	}
	if *s.FloorS < *s.BoundS || *s.FloorS > *s.MakespanS {
		t.Fatalf("floor %.3fs outside [bound %.3fs, makespan %.3fs]", *s.FloorS, *s.BoundS, *s.MakespanS)
	}
}

func TestStormReconnectsEveryClient(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioStorm, Active: 200, Jumpoints: 10, Passive: 10, Timeout: 30 * time.Second,
		ReconnectBase: 5 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, Seed: 9}
	s := runScenario(t, cfg, br)
	if s.ReconnectS == nil || s.GaveUp != 0 {
		t.Fatalf("reconnect %v, gave up %d", s.ReconnectS, s.GaveUp)
	}
	if s.Handshakes < 210 {
		t.Fatalf("%d handshakes in the storm window: want every persistent client (210) to reconnect", s.Handshakes)
	}
}

func TestSteadyCountsCheckIns(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioSteady, Active: 50, Interval: 20 * time.Millisecond, Duration: 500 * time.Millisecond, Seed: 2}
	s := runScenario(t, cfg, br)
	if s.Checkins == 0 || s.CheckinsPerS <= 0 || s.LatencyP50ms <= 0 || s.LatencyP99ms < s.LatencyP50ms {
		t.Fatalf("check-ins %d (%.0f/s), p50 %.3f ms, p99 %.3f ms", s.Checkins, s.CheckinsPerS, s.LatencyP50ms, s.LatencyP99ms)
	}
	if s.ServerCPUusPerCheckin != nil || s.ConnectServerCPUusPerClient != nil || !strings.Contains(strings.Join(s.Notes, " "), "not measured") {
		t.Fatalf("in-process broker: server CPU must be null with a note, got %v, %v, %v", s.ServerCPUusPerCheckin, s.ConnectServerCPUusPerClient, s.Notes)
	}
	if s.ConnectS == nil || *s.ConnectS <= 0 {
		t.Fatalf("connect phase %v s: want it measured with any broker", s.ConnectS)
	}
	js, _ := json.Marshal(s)
	for _, k := range []string{"clients", "active", "passive", "jumpoints", "checkins_per_s", "handshakes_per_s",
		"latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "upgraded", "failed", "makespan_s", "bound_s",
		"makespan_ratio", "max_concurrent", "max_in_flight", "violations", "jump_to_start_p50_s",
		"jump_to_start_p99_s", "reconnect_s", "errors", "server_cpu_us_per_checkin", "server_rss_bytes"} {
		if !strings.Contains(string(js), `"`+k+`":`) {
			t.Errorf("summary JSON lacks key %q", k)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Scenario: "nope", Active: 1},
		{Scenario: ScenarioRollout},
		{Scenario: ScenarioSteady, Passive: 3},
		{Scenario: ScenarioRollout, Active: 1, MaxConcurrent: -1},
		{Scenario: ScenarioRollout, Active: 1, FailRate: 1},
		{Scenario: ScenarioRollout, Active: 1, UpgradeJitter: 2},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
	c := Config{Scenario: ScenarioJump, Active: 3}
	if err := c.Validate(); err != nil || c.Consoles != 1 || c.MaxConcurrent != 100 || c.Release == "" {
		t.Fatalf("defaults: %v %+v", err, c)
	}
}

// TestPassiveLateness: a passive client's turn is the first start of any
// client queued after it; lateness is how long after that it started.
func TestPassiveLateness(t *testing.T) {
	const s = int64(time.Second)
	turns := []Turn{
		{Queued: 0, Start: 1 * s},                      // active, queued at publish
		{Queued: 0, Start: 2 * s},                      // active, queued at publish
		{Queued: 10 * s, Start: 50 * s, Passive: true}, // its turn: 20 s (queued at 11 s) -> 30 s late
		{Queued: 11 * s, Start: 20 * s},
		{Queued: 12 * s, Start: 25 * s, Passive: true}, // its turn: 22 s -> 3 s late
		{Queued: 13 * s, Start: 22 * s, Passive: true}, // nobody after it started earlier: on time
		{Queued: 14 * s, Start: 23 * s},
		{Queued: 14 * s, Start: 60 * s, Passive: true}, // queued at the same instant as the one above: not after it
	}
	l := passiveLateness(turns, 10*time.Second, nil)
	worst, beyond, judged := l.Worst, l.Beyond, l.Judged
	if worst != 30*time.Second || beyond != 1 || judged != 4 {
		t.Fatalf("worst %v, beyond %d, judged %d: want 30s, 1, 4", worst, beyond, judged)
	}
	l = passiveLateness(turns, time.Second, nil)
	worst, beyond, judged = l.Worst, l.Beyond, l.Judged
	if worst != 30*time.Second || beyond != 2 || judged != 4 {
		t.Fatalf("period 1s: worst %v, beyond %d, judged %d: want 30s, 2, 4", worst, beyond, judged)
	}
	if l := passiveLateness(nil, time.Second, nil); l.Worst != 0 || l.Beyond != 0 || l.Judged != 0 {
		t.Fatalf("no turns: %+v", l)
	}
}

// scriptConn is an AgentConn whose check-ins follow a script: each call
// takes the next answer or error. It records what the agent sent.
type scriptConn struct {
	answers []error // nil: answer current; else fail with it
	sent    *[]string
	closed  chan struct{}
}

func (c *scriptConn) CheckIn(_ context.Context, v engine.Version, _ uint8) (Answer, error) {
	*c.sent = append(*c.sent, "checkin")
	if len(c.answers) > 0 {
		err := c.answers[0]
		c.answers = c.answers[1:]
		if err != nil {
			return Answer{}, err
		}
	}
	return Answer{State: engine.StateCurrent, Target: v}, nil
}
func (c *scriptConn) Heartbeat(context.Context) error {
	*c.sent = append(*c.sent, "heartbeat")
	return nil
}
func (c *scriptConn) Offers() <-chan Offer { return nil }
func (c *scriptConn) Fetch(context.Context, Offer) error {
	*c.sent = append(*c.sent, "fetch")
	return nil
}
func (c *scriptConn) Done(context.Context) error {
	*c.sent = append(*c.sent, "done")
	return nil
}
func (c *scriptConn) Fail(context.Context, uint16, string) error {
	*c.sent = append(*c.sent, "fail")
	return nil
}
func (c *scriptConn) Closed() <-chan struct{}   { return c.closed }
func (c *scriptConn) RetryAfter() time.Duration { return 0 }
func (c *scriptConn) Close() error              { return nil }

// scriptDialer hands out the scripted connections in order.
type scriptDialer struct{ conns []*scriptConn }

func (d *scriptDialer) Enroll(context.Context, string, AgentSpec) (Identity, AgentConn, error) {
	return Identity{}, nil, &codedError{code: "auth_failed"}
}
func (d *scriptDialer) Dial(context.Context, Identity) (AgentConn, error) {
	if len(d.conns) == 0 {
		return nil, &codedError{code: "refused", msg: "script exhausted"}
	}
	c := d.conns[0]
	d.conns = d.conns[1:]
	return c, nil
}
func (d *scriptDialer) DialConsole(context.Context, string) (ConsoleConn, error) {
	return nil, &codedError{code: "auth_failed"}
}

// TestLostCompletionAnswerDoesNotReopenTheInterval: an agent whose
// post-install check-in answer is lost (the broker may have freed the slot
// and started someone else) must not count the upgrade in flight again.
// Its interval runs from the offer to just before Done, once.
func TestLostCompletionAnswerDoesNotReopenTheInterval(t *testing.T) {
	var sent []string
	lost := &codedError{code: "closed", msg: "answer lost"}
	d := &scriptDialer{conns: []*scriptConn{
		{answers: []error{lost}, sent: &sent, closed: make(chan struct{})}, // answer lost
		{sent: &sent, closed: make(chan struct{})},                         // lands
	}}
	cfg := Config{Scenario: ScenarioRollout, Active: 1, MaxConcurrent: 1, UpgradeTime: time.Millisecond,
		ReconnectBase: time.Millisecond, ReconnectMax: time.Millisecond, GiveUpAfter: 50 * time.Millisecond, Seed: 1}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(1)
	rec.trackFlight()
	f := newFleet(&cfg, d, rec, 0, 1)
	defer f.stop()
	a := &agent{spec: AgentSpec{Kind: engine.KindActive}, version: cfg.FromVersion, rng: rand.New(rand.NewPCG(1, 1))}
	first := &scriptConn{sent: &sent, closed: make(chan struct{})}
	nc, ok := f.upgrade(f.ctx, a, first, Offer{Target: cfg.ToVersion}, nil)
	if !ok || nc == nil {
		t.Fatalf("upgrade: conn %v ok %v", nc, ok)
	}
	if got := strings.Join(sent, " "); got != "fetch done checkin checkin" {
		t.Fatalf("agent sent %q", got)
	}
	ev := rec.takeFlight()
	if len(ev) != 2 || ev[0] <= 0 || ev[1] >= 0 {
		t.Fatalf("in-flight changes %v: want one start and one end", ev)
	}
	s := rec.Snapshot()
	if s.InFlight != 0 || s.MaxInFlight != 1 || s.Upgraded != 1 || a.flying {
		t.Fatalf("in flight %d, max %d, upgraded %d, still flying %v", s.InFlight, s.MaxInFlight, s.Upgraded, a.flying)
	}
	// A genuinely new offer opens a new interval.
	if _, ok := f.upgrade(f.ctx, a, &scriptConn{sent: &sent, closed: make(chan struct{})}, Offer{Target: cfg.ToVersion}, nil); ok {
		t.Fatal("second upgrade: the script has no connection left, want ok false")
	}
	if ev := rec.takeFlight(); len(ev) != 2 || ev[0] <= 0 || ev[1] >= 0 {
		t.Fatalf("second offer: in-flight changes %v, want one start and one end", ev)
	}
}

// TestFlightMergesProcesses replays the in-flight changes of several load
// processes: one slot handed from an agent of one process to an agent of
// another is never two in flight, and real overlaps are counted.
func TestFlightMergesProcesses(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	const procs, slots, rounds = 3, 4, 200
	// Each slot passes from one agent to the next: the previous holder's
	// end (its Done) strictly precedes the next offer, which goes to an
	// agent of a random process.
	events := make([][]int64, procs)
	base := int64(1_000_000_000)
	for s := range slots {
		t0 := base + int64(s)
		for range rounds {
			p := rng.IntN(procs)
			start := t0 + 1 + rng.Int64N(5)
			end := start + 1 + rng.Int64N(50)
			events[p] = append(events[p], start, -end)
			t0 = end
		}
	}
	var all []int64
	for _, e := range events {
		all = append(all, e...)
	}
	if m, v := flightMax(all, slots); m != slots || v != 0 {
		t.Fatalf("max %d, violations %d: want %d, 0", m, v, slots)
	}
	// An end and a start at the same instant are a hand-over, not overlap.
	if m, v := flightMax([]int64{10, -20, 20, -30}, 1); m != 1 || v != 0 {
		t.Fatalf("hand-over at one instant: max %d, violations %d", m, v)
	}
	// A start before the previous end is one.
	if m, v := flightMax([]int64{10, -20, 19, -30}, 1); m != 2 || v != 1 {
		t.Fatalf("overlap: max %d, violations %d, want 2, 1", m, v)
	}
}

// TestPassiveLatenessIgnoresOverlappingCheckIns: two passive clients whose
// check-ins overlapped may have been queued by the broker in either order,
// so neither is late for the other; one that sent its check-in after the
// other's answer was queued after it.
func TestPassiveLatenessIgnoresOverlappingCheckIns(t *testing.T) {
	const s = int64(time.Second)
	turns := []Turn{
		{Queued: 10 * s, Acked: 12 * s, Start: 90 * s, Passive: true},
		{Queued: 11 * s, Acked: 11*s + s/2, Start: 20 * s, Passive: true}, // overlapped the first
	}
	if l := passiveLateness(turns, 60*time.Second, nil); l.Worst != 0 || l.Beyond != 0 || l.Judged != 2 {
		t.Fatalf("overlapping check-ins: %+v", l)
	}
	turns = append(turns, Turn{Queued: 13 * s, Acked: 13 * s, Start: 25 * s, Passive: true}) // after both
	turns[0].History = "its history"
	l := passiveLateness(turns, 60*time.Second, nil)
	if l.Worst != 65*time.Second || l.Beyond != 1 {
		t.Fatalf("%+v: want worst 65s, beyond 1", l)
	}
	// The worst client's turn came 65 s and its queueing 80 s before its
	// start; its history is the one reported.
	if l.Worst != 65*time.Second || l.WorstQueued != 80*time.Second || l.WorstHistory != "its history" || l.WorstBy != turns[2] {
		t.Fatalf("worst client: %+v", l)
	}
}

// TestWatchBrokerSamplesTheBrokersCount reads the broker's own in-flight
// count while a rollout runs on InProc.
func TestWatchBrokerSamplesTheBrokersCount(t *testing.T) {
	_, br := inproc(t)
	cfg := Config{Scenario: ScenarioRollout, Active: 40, MaxConcurrent: 3, UpgradeTime: 100 * time.Millisecond, Seed: 4}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &run{cfg: &cfg, b: br, rec: NewRecorder(cfg.MaxConcurrent)}
	ctx := context.Background()
	if err := br.Control.Configure(ctx, cfg.MaxConcurrent, cfg.StartsPerSec, time.Minute, false); err != nil {
		t.Fatal(err)
	}
	tok, err := br.Control.Installer(ctx, engine.KindActive)
	if err != nil {
		t.Fatal(err)
	}
	fl := newFleet(&cfg, br.Dialer, r.rec, 0, 1)
	r.fl = fl
	defer fl.stop()
	if err := fl.start(ctx, map[engine.Kind]string{engine.KindActive: tok}); err != nil {
		t.Fatal(err)
	}
	if err := r.until(ctx, 20*time.Second, func() bool { return fl.snapshot().Enrolled == 40 }); err != nil {
		t.Fatal(err)
	}
	stop := r.watchBroker(ctx)
	if err := br.Control.PublishSite(ctx, cfg.Release, cfg.Platform, cfg.ToVersion, 1024); err != nil {
		t.Fatal(err)
	}
	if err := r.until(ctx, 30*time.Second, func() bool { return fl.snapshot().Upgraded == 40 }); err != nil {
		t.Fatal(err)
	}
	stop()
	stop() // idempotent
	s := r.sum
	if s.BrokerMaxInFlight == nil || s.BrokerOverLimitSamples == nil || s.BrokerSamples == nil {
		t.Fatalf("not sampled: %+v", s)
	}
	if *s.BrokerSamples < 2 || *s.BrokerMaxInFlight < 1 || *s.BrokerMaxInFlight > 3 || *s.BrokerOverLimitSamples != 0 {
		t.Fatalf("%d samples, broker max in flight %d, over the limit %d: want ≥2, 1..3, 0",
			*s.BrokerSamples, *s.BrokerMaxInFlight, *s.BrokerOverLimitSamples)
	}
}

// TestStartRate: a run leaves upgrade starts unthrottled unless told a
// rate (its burst is then one second of starts, within max_concurrent),
// and the broker gets exactly that.
func TestStartRate(t *testing.T) {
	for _, c := range []struct {
		conc  int
		rate  float64
		want  float64
		burst int
	}{
		{5000, 0, engine.MaxStartsPerSec, 5000},
		{5000, 5000.0 / 30, 5000.0 / 30, 167},
		{100, 1000, 1000, 100},
		{1, 10, 10, 1},
	} {
		cfg := Config{Scenario: ScenarioRollout, Active: 10, MaxConcurrent: c.conc, StartsPerSec: c.rate}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		if math.Abs(cfg.StartsPerSec-c.want) > 1e-9 || startBurst(cfg.StartsPerSec, c.conc) != c.burst {
			t.Errorf("max_concurrent %d, rate %v: rate %v burst %d, want %v and %d",
				c.conc, c.rate, cfg.StartsPerSec, startBurst(cfg.StartsPerSec, c.conc), c.want, c.burst)
		}
	}
	bad := Config{Scenario: ScenarioRollout, Active: 10, StartsPerSec: -1}
	if err := bad.Validate(); err == nil {
		t.Error("a negative start rate was accepted")
	}
	_, br := inproc(t)
	if err := br.Control.Configure(context.Background(), 50, 25, time.Minute, false); err != nil {
		t.Fatal(err)
	}
	st, err := br.Control.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.StartsPerSec != 25 || st.MaxConcurrent != 50 {
		t.Errorf("broker settings: starts_per_sec %v max_concurrent %d, want 25 and 50", st.StartsPerSec, st.MaxConcurrent)
	}
}

// TestAgentHeartbeatsWhileInstalling: an agent keeps heartbeating on its
// connection through the install (a silent one outlived the broker's idle
// timeout mid-upgrade), then says Done and restarts on a new connection.
func TestAgentHeartbeatsWhileInstalling(t *testing.T) {
	var sent []string
	d := &scriptDialer{conns: []*scriptConn{{sent: &sent, closed: make(chan struct{})}}}
	cfg := Config{Scenario: ScenarioRollout, Active: 1, MaxConcurrent: 1, UpgradeTime: 200 * time.Millisecond, Seed: 1}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f := newFleet(&cfg, d, NewRecorder(1), 0, 1)
	defer f.stop()
	a := &agent{spec: AgentSpec{Kind: engine.KindActive}, version: cfg.FromVersion, rng: rand.New(rand.NewPCG(1, 1))}
	tick := make(chan time.Time, 3)
	for range 3 {
		tick <- time.Now()
	}
	nc, ok := f.upgrade(f.ctx, a, &scriptConn{sent: &sent, closed: make(chan struct{})}, Offer{Target: cfg.ToVersion}, tick)
	if !ok || nc == nil {
		t.Fatalf("upgrade: conn %v ok %v", nc, ok)
	}
	if got := strings.Join(sent, " "); got != "fetch heartbeat heartbeat heartbeat done checkin" {
		t.Fatalf("agent sent %q", got)
	}
}

// TestHistoryKeepsTheLastEvents checks the bounded ring of a passive
// agent's contacts and its rendering, oldest first, relative to a time.
func TestHistoryKeepsTheLastEvents(t *testing.T) {
	var h history
	for i := range histLen + 3 {
		h.add(histCheckIn, engine.StatePending, i+1, time.Duration(i)*time.Second)
	}
	h.add(histBye, 0, 0, 8*time.Second)
	ref := h.ev[(h.n-1)%histLen].at
	got := h.format(ref)
	if !strings.HasPrefix(got, "(4 earlier) ") {
		t.Fatalf("history %q: want the 4 oldest events dropped", got)
	}
	if strings.Contains(got, "pos 4 ") || !strings.Contains(got, "pending pos 5 retry 4.0s") {
		t.Fatalf("history %q: want the oldest kept event to be position 5", got)
	}
	if !strings.HasSuffix(got, "+0.0s bye retry 8.0s") {
		t.Fatalf("history %q: want the goodbye last, at the reference time", got)
	}
	var none *history
	none.add(histOffer, 0, 0, 0) // an agent without a history records nothing
	if none.format(0) != "" {
		t.Fatal("nil history formatted as non-empty")
	}
}

// TestPassiveLatenessInBrokerOrder: a client the broker queued without
// telling it (a release's sweep while it was connected) seems, by its own
// account, queued a period later. In client-observed order its start is the
// turn of a client truly queued after it, which looks late; in the
// broker's order that client is on time and the swept one is judged from
// its true queue time.
func TestPassiveLatenessInBrokerOrder(t *testing.T) {
	const s = int64(time.Second)
	swept, later := engine.ClientID{1}, engine.ClientID{2}
	turns := []Turn{
		// Queued by the sweep at 0 s; first told so at 240 s, started at 241 s.
		{ID: swept, Queued: 240 * s, Acked: 240 * s, Start: 241 * s, Passive: true},
		// Queued by its own check-in at 100 s, started at 400 s.
		{ID: later, Queued: 100 * s, Acked: 100 * s, Start: 400 * s, Passive: true},
	}
	// Client-observed, the swept client seems queued after the other, and
	// its start looks like the other's turn: 159 s late.
	if l := passiveLateness(turns, 240*time.Second, nil); l.Worst != 159*time.Second || l.BrokerOrder != 0 {
		t.Fatalf("client-observed order: %+v: want the later client 159 s late", l)
	}
	queued := map[engine.ClientID]int64{swept: 0, later: 100 * s}
	l := passiveLateness(turns, 240*time.Second, queued)
	if l.BrokerOrder != 2 || l.Judged != 2 || l.Worst != 0 || l.Beyond != 0 {
		t.Fatalf("broker order: %+v: want both ordered by the broker and nobody late", l)
	}
	// An active client queued after the swept one (at 50 s) and started at
	// 60 s was the swept client's turn: it started 181 s after it.
	third := engine.ClientID{3}
	turns = append(turns, Turn{ID: third, Queued: 50 * s, Acked: 50 * s, Start: 60 * s})
	queued[third] = 50 * s
	l = passiveLateness(turns, 120*time.Second, queued)
	if l.Worst != 181*time.Second || l.Beyond != 1 || l.WorstBy.ID != third || l.BrokerOrder != 3 {
		t.Fatalf("%+v: want the swept client 181 s late, the third's start its turn", l)
	}
}

// TestErrorSamples: each code keeps its count and the first message seen
// under it, across processes too, and a long message is clipped.
func TestErrorSamples(t *testing.T) {
	a, b := NewRecorder(1), NewRecorder(1)
	a.Err(&codedError{code: "other", msg: "first"})
	a.Err(&codedError{code: "other", msg: "second"})
	b.Err(&codedError{code: "other", msg: "from b"})
	b.Err(&codedError{code: "net_timeout", msg: strings.Repeat("é", 500)})
	m := Merge(a.Snapshot(), b.Snapshot())
	if m.Errors["other"] != 3 || m.Errors["net_timeout"] != 1 {
		t.Fatalf("counts %v", m.Errors)
	}
	if got := m.ErrorSamples["other"]; got != "other: first" {
		t.Fatalf("other's sample %q, want the first process's first message", got)
	}
	long := m.ErrorSamples["net_timeout"]
	if len(long) > maxSampleLen+len("…") || !strings.HasPrefix(long, "net_timeout: é") || !strings.HasSuffix(long, "…") {
		t.Fatalf("long sample not clipped on a rune boundary: %d bytes, %q…", len(long), long[:20])
	}
	for i := range 2 * maxErrorSamples {
		a.Err(&codedError{code: "c" + string(rune('A'+i)), msg: "x"})
	}
	if n := len(a.Snapshot().ErrorSamples); n != maxErrorSamples {
		t.Fatalf("%d samples kept, want the bound %d", n, maxErrorSamples)
	}
}
