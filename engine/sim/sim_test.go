package sim

import (
	"math"
	"testing"
	"time"
)

// TestRolloutInvariantsEveryStep runs small rollouts with the full
// invariant check after every engine turn.
func TestRolloutInvariantsEveryStep(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"active", Config{Clients: 600, MaxConcurrent: 20}},
		{"mixed", Config{Clients: 600, MaxConcurrent: 20, PassiveFrac: 0.5, JumpointFrac: 0.05, PassivePeriod: 6 * time.Hour}},
		{"failures+jumps", Config{Clients: 600, MaxConcurrent: 20, FailRate: 0.1, JumpRate: 0.2, UpgradeJitter: 0.3}},
		{"start-rate-bound", Config{Clients: 400, MaxConcurrent: 100, StartsPerSec: 2, StartBurst: 5}},
		{"durable", Config{Clients: 300, MaxConcurrent: 20, Durable: true, FailRate: 0.05}},
		{"crash-restart", Config{Clients: 400, MaxConcurrent: 20, Durable: true, FailRate: 0.05, JumpRate: 0.2,
			PassiveFrac: 0.2, UpgradeJitter: 0.2, RestartAt: 10 * time.Minute}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Seed = 42
			c.cfg.CheckEvery = 1
			t.Logf("seed %d", c.cfg.Seed)
			r, err := Run(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Violations != 0 {
				t.Fatalf("%d violations, first: %s", r.Violations, r.FirstViolation)
			}
			if r.Upgraded+r.Failed != c.cfg.Clients {
				t.Fatalf("upgraded %d + failed %d != %d", r.Upgraded, r.Failed, c.cfg.Clients)
			}
			if r.MaxInFlight > c.cfg.MaxConcurrent {
				t.Fatalf("max in flight %d > %d", r.MaxInFlight, c.cfg.MaxConcurrent)
			}
			if c.cfg.PassiveFrac == 0 && c.cfg.FailRate == 0 && r.MakespanRatio > 1.02 {
				t.Fatalf("makespan ratio %.4f > 1.02 (makespan %.0fs, bound %.0fs)", r.MakespanRatio, r.MakespanS, r.BoundS)
			}
			if r.PassiveLate != 0 {
				t.Fatalf("%d passive clients upgraded more than one period after their turn", r.PassiveLate)
			}
			if r.JumpOvertaken != 0 {
				t.Fatalf("%d normal-lane starts overtook a waiting jumped client", r.JumpOvertaken)
			}
			if c.cfg.RestartAt > 0 && r.Restarts != 1 {
				t.Fatalf("%d restarts, want 1", r.Restarts)
			}
			if c.cfg.JumpRate > 0 && r.Jumps == 0 {
				t.Fatal("no jumps happened")
			}
		})
	}
}

// TestDeterministic checks that one seed gives one result.
func TestDeterministic(t *testing.T) {
	cfg := Config{Clients: 1000, MaxConcurrent: 30, FailRate: 0.1, JumpRate: 0.5, PassiveFrac: 0.3, UpgradeJitter: 0.2, Seed: 7}
	a, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.WallS, b.WallS = 0, 0
	if a != b {
		t.Fatalf("same seed, different results:\n%+v\n%+v", a, b)
	}
}

func TestIdealMakespan(t *testing.T) {
	// Slot-bound: F·D/N.
	if got := IdealMakespan(1000, 10, time.Minute, 0, 1e9, 1e6, 0); got != 6000 {
		t.Fatalf("slot-bound bound %v, want 6000", got)
	}
	// Rate-bound: (F−burst)/rate + D.
	if got := IdealMakespan(100, 1000, time.Minute, 0, 2, 1, 0); got != 99.0/2+60 {
		t.Fatalf("rate-bound bound %v, want %v", got, 99.0/2+60)
	}
}

// TestIdealMakespanSchedules pins hand-computed schedules, and spread
// upgrades (the floor jumpload reports).
func TestIdealMakespanSchedules(t *testing.T) {
	const unpaced = 1e9
	for _, c := range []struct {
		name                string
		n, slots            int
		mean                time.Duration
		jitter, rate        float64
		burst               int
		want                time.Duration
		wantAtLeast, within time.Duration
	}{
		// Equal installs, starts unpaced: whole waves, exactly the bound.
		{name: "waves", n: 10, slots: 5, mean: time.Minute, rate: unpaced, burst: 5, want: 2 * time.Minute},
		{name: "partial last wave", n: 11, slots: 5, mean: time.Minute, rate: unpaced, burst: 5, want: 3 * time.Minute},
		{name: "fewer clients than slots", n: 3, slots: 5, mean: time.Minute, rate: unpaced, burst: 5, want: time.Minute},
		// One start a second, burst 1: the first wave starts at 0..4 s,
		// each slot's second install right after its first.
		{name: "paced", n: 10, slots: 5, mean: time.Minute, rate: 1, burst: 1, want: 124 * time.Second},
		// A burst of 3 starts three at once, then one a second.
		{name: "burst", n: 5, slots: 5, mean: time.Minute, rate: 1, burst: 3, want: 62 * time.Second},
		// The bucket binds after the first wave too when it is slower
		// than the slots free: 8 installs of 1 s on 4 slots at 1 start/s.
		{name: "rate binds", n: 8, slots: 4, mean: time.Second, rate: 1, burst: 1, want: 8 * time.Second},
		// Spread installs: the last installs, started as the queue runs
		// dry, end up to mean·(1+jitter) later: above the bound, by less
		// than an install.
		{name: "jitter", n: 100_000, slots: 5000, mean: time.Minute, jitter: 0.1, rate: unpaced, burst: 5000,
			wantAtLeast: 20 * time.Minute, within: 50 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := time.Duration(IdealMakespan(c.n, c.slots, c.mean, c.jitter, c.rate, c.burst, 1) * float64(time.Second))
			if c.want != 0 {
				if d := got - c.want; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("floor %v, want %v", got, c.want)
				}
				return
			}
			if got < c.wantAtLeast || got > c.wantAtLeast+c.within {
				t.Fatalf("floor %v, want within %v of %v", got, c.within, c.wantAtLeast)
			}
			if again := time.Duration(IdealMakespan(c.n, c.slots, c.mean, c.jitter, c.rate, c.burst, 1) * float64(time.Second)); again != got {
				t.Fatalf("same seed, floor %v then %v", got, again)
			}
		})
	}
	if got := IdealMakespan(0, 5, time.Minute, 0, 1, 1, 1); got != 0 {
		t.Fatalf("empty fleet: floor %v, want 0", got)
	}
}

// TestPassiveBurstLateness shows when passive clients are served more
// than a period after their turn. A passive fleet that checks in in one
// burst queues more than a period's work (here 425 s against 240 s); its
// clients leave after a short linger, and the clients that are there take
// the free slots (invariant 6), so every passive client's turn comes early.
// If they may then stay away as long as their retry-after says (capped
// only at the engine's default hour, far above this period), the last of
// them are served more than a period later. With the retry-after capped
// in proportion to the period, as the product's 1 h of 24 h is, they come
// back in time and none is late; none is late either at random phases of
// the period, or when they can wait connected.
func TestPassiveBurstLateness(t *testing.T) {
	base := Config{Clients: 2000, PassiveFrac: 0.85, MaxConcurrent: 40, UpgradeTime: 10 * time.Second,
		PassivePeriod: 240 * time.Second, PassiveLinger: 16 * time.Second, Seed: 1, CheckEvery: 50}
	cases := []struct {
		name     string
		burst    time.Duration
		linger   time.Duration
		maxRetry time.Duration
		wantLate bool
	}{
		{"burst, short linger, retry-after up to an hour", 30 * time.Second, 16 * time.Second, 0, true},
		{"burst, short linger, retry-after up to period/24", 30 * time.Second, 16 * time.Second, 10 * time.Second, false},
		{"random phases, short linger", 0, 16 * time.Second, 0, false},
		{"burst, waits connected", 30 * time.Second, 300 * time.Second, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base
			cfg.PassiveBurst, cfg.PassiveLinger, cfg.MaxRetryAfter = c.burst, c.linger, c.maxRetry
			t.Logf("seed %d", cfg.Seed)
			r, err := Run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Violations != 0 || r.Upgraded != cfg.Clients {
				t.Fatalf("%d violations (%s), %d of %d upgraded", r.Violations, r.FirstViolation, r.Upgraded, cfg.Clients)
			}
			if late := r.PassiveLate > 0; late != c.wantLate {
				t.Fatalf("%d passive clients later than a period (worst %.0f s), want late: %v", r.PassiveLate, r.PassiveLateMaxS, c.wantLate)
			}
			t.Logf("%d later than a period, worst %.0f s after its turn", r.PassiveLate, r.PassiveLateMaxS)
		})
	}
}

// TestIdealMakespanRolloutSchedules pins the floors of the 100,000-client
// rollout schedules that bench/RESULTS.md (eighteenth pass) compares: the
// same bound F·D/N = 1,200 s and start pacing 2N/D (burst one second of
// it), seed 1 as jumpload's default. Run with -v for the table.
func TestIdealMakespanRolloutSchedules(t *testing.T) {
	for _, c := range []struct {
		slots  int
		d      time.Duration
		jitter float64
		rate   float64 // 0: unpaced
		want   float64 // floor ÷ bound
	}{
		{5000, 60 * time.Second, 0.1, 166.7, 1.0411},
		{5000, 60 * time.Second, 0.1, 0, 1.0292},
		{2500, 30 * time.Second, 0.1, 166.7, 1.0200},
		{2000, 24 * time.Second, 0.1, 166.7, 1.0159},
		{1000, 12 * time.Second, 0.1, 166.7, 1.0074},
		{1000, 12 * time.Second, 0.2, 166.7, 1.0083},
		{500, 6 * time.Second, 0.1, 166.7, 1.0034},
	} {
		rate, burst := c.rate, int(math.Ceil(c.rate)) // as jumpload's startBurst
		if rate == 0 {
			rate, burst = 1e6, c.slots
		}
		bound := 100000 * c.d.Seconds() / float64(c.slots)
		got := IdealMakespan(100000, c.slots, c.d, c.jitter, rate, max(burst, 1), 1) / bound
		t.Logf("%5d slots × %v ±%.0f%%, starts %v/s: floor %.4f × the bound", c.slots, c.d, c.jitter*100, c.rate, got)
		if math.Abs(got-c.want) > 0.00005 {
			t.Errorf("%d slots × %v ±%.0f%%: floor %.5f × the bound, want %.4f", c.slots, c.d, c.jitter*100, got, c.want)
		}
	}
}
