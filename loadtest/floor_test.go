package loadtest

import (
	"testing"
	"time"
)

func TestScheduleFloor(t *testing.T) {
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
			got := scheduleFloor(c.n, c.slots, c.mean, c.jitter, c.rate, c.burst, 1)
			if c.want != 0 {
				if d := got - c.want; d < -time.Millisecond || d > time.Millisecond {
					t.Fatalf("floor %v, want %v", got, c.want)
				}
				return
			}
			if got < c.wantAtLeast || got > c.wantAtLeast+c.within {
				t.Fatalf("floor %v, want within %v of %v", got, c.within, c.wantAtLeast)
			}
			if again := scheduleFloor(c.n, c.slots, c.mean, c.jitter, c.rate, c.burst, 1); again != got {
				t.Fatalf("same seed, floor %v then %v", got, again)
			}
		})
	}
	if got := scheduleFloor(0, 5, time.Minute, 0, 1, 1, 1); got != 0 {
		t.Fatalf("empty fleet: floor %v, want 0", got)
	}
}
