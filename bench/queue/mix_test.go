package queue

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestTrackerAcceptsAGoodRound(t *testing.T) {
	tr := NewTracker(6, 2)
	for _, i := range []int{4, 1, 0, 2, 3, 5} { // jumps 4 and 1 first
		tr.Start(i)
		tr.Finish(i)
	}
	select {
	case <-tr.Done():
	default:
		t.Fatal("Done not closed after every job finished")
	}
	if err := tr.Check([]int{4, 1}); err != nil {
		t.Fatal(err)
	}
}

func TestTrackerFindsEveryBrokenRule(t *testing.T) {
	tr := NewTracker(8, 1)
	// Two held at once (limit 1), job 0 twice, job 9 unknown, job 7 never,
	// and jumped job 6 after normal jobs 0..3 (more than the limit's slack).
	for _, i := range []int{0, 1} {
		tr.Start(i)
	}
	for _, i := range []int{2, 3, 0, 9, 4, 5, 6} {
		tr.Start(i)
	}
	err := tr.Check([]int{6})
	if err == nil {
		t.Fatal("Check passed a broken round")
	}
	for _, want := range []string{"1 of 8 jobs never started", "1 jobs started twice", "1 unknown jobs started",
		"limit 1", "1 of 1 jumped jobs started after waiting normal jobs"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not say %q", err, want)
		}
	}
}

func TestJumpedIsDeterministicAndDistinct(t *testing.T) {
	m := Mix{N: 100, K: 10, Limit: 4, Producers: 3, Seed: 42}
	t.Logf("seed %d", m.Seed)
	a, b := m.Jumped(3), m.Jumped(3)
	if !slices.Equal(a, b) {
		t.Fatalf("Jumped(3) differs between calls: %v vs %v", a, b)
	}
	if slices.Equal(a, m.Jumped(4)) {
		t.Fatalf("rounds 3 and 4 jump the same jobs %v", a)
	}
	s := slices.Clone(a)
	slices.Sort(s)
	if len(slices.Compact(s)) != m.K {
		t.Fatalf("Jumped(3) = %v: want %d distinct jobs", a, m.K)
	}
}

func TestSpreadRunsEachIndexOnceAndStopsOnError(t *testing.T) {
	m := Mix{N: 1, Producers: 7}
	seen := make([]int, 1000)
	if err := m.Spread(len(seen), func(i int) error { seen[i]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("index %d ran %d times", i, n)
		}
	}
	if err := m.Spread(10, func(i int) error {
		if i == 5 {
			return errBoom
		}
		return nil
	}); err != errBoom {
		t.Fatalf("Spread returned %v, want %v", err, errBoom)
	}
	if err := (Mix{N: 1, K: 2, Limit: 1, Producers: 1}).Validate(); err == nil {
		t.Fatal("Validate accepted K > N")
	}
}

var errBoom = errors.New("boom")
