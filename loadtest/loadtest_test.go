package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"jumpfleet/engine"
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
	if s.ServerCPUusPerCheckin != nil || !strings.Contains(strings.Join(s.Notes, " "), "not measured") {
		t.Fatalf("in-process broker: server CPU must be null with a note, got %v %v", s.ServerCPUusPerCheckin, s.Notes)
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
	worst, beyond, judged := passiveLateness(turns, 10*time.Second)
	if worst != 30*time.Second || beyond != 1 || judged != 4 {
		t.Fatalf("worst %v, beyond %d, judged %d: want 30s, 1, 4", worst, beyond, judged)
	}
	worst, beyond, judged = passiveLateness(turns, time.Second)
	if worst != 30*time.Second || beyond != 2 || judged != 4 {
		t.Fatalf("period 1s: worst %v, beyond %d, judged %d: want 30s, 2, 4", worst, beyond, judged)
	}
	if w, b, j := passiveLateness(nil, time.Second); w != 0 || b != 0 || j != 0 {
		t.Fatalf("no turns: %v %d %d", w, b, j)
	}
}
