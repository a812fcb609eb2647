package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// backend is one queue under comparison. Dispatch is held from open until
// Run releases it, and held again when Run returns.
type backend interface {
	// Enqueue puts job i of iteration round in the normal lane.
	Enqueue(ctx context.Context, round, i int) error
	// Jump moves job i of iteration round (enqueued, not dispatched) to the
	// front.
	Jump(ctx context.Context, round, i int) error
	// Run releases dispatch and returns once every job of the round has
	// reached a worker (tr.Start, tr.Finish) and its completion has been
	// durably acknowledged by the queue.
	Run(ctx context.Context, round int, tr *Tracker) error
}

// roundTimeout bounds one iteration so that a wedged queue fails the
// benchmark with a reason instead of hanging CI.
const roundTimeout = 2 * time.Minute

// runMix runs rounds iterations of m against be and checks each one.
func runMix(tb testing.TB, m Mix, be backend, rounds int) (maxInFlight int) {
	for r := range rounds {
		ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
		err := runRound(ctx, m, be, r, &maxInFlight)
		cancel()
		if err != nil {
			tb.Fatalf("round %d (seed %d): %v", r, m.Seed, err)
		}
	}
	return maxInFlight
}

func runRound(ctx context.Context, m Mix, be backend, r int, maxInFlight *int) error {
	tr := NewTracker(m.N, m.Limit)
	if err := m.Spread(m.N, func(i int) error { return be.Enqueue(ctx, r, i) }); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	jumped := m.Jumped(r)
	if err := m.Spread(len(jumped), func(k int) error { return be.Jump(ctx, r, jumped[k]) }); err != nil {
		return fmt.Errorf("jump: %w", err)
	}
	if err := be.Run(ctx, r, tr); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w after %d of %d jobs finished", err, tr.finished.Load(), m.N)
		}
		return fmt.Errorf("dispatch: %w", err)
	}
	*maxInFlight = max(*maxInFlight, tr.MaxInFlight())
	return tr.Check(jumped)
}

// benchMix is the body of every queue benchmark: setup is excluded from the
// timing, the rounds are not.
func benchMix(b *testing.B, m Mix, open func(testing.TB, Mix) backend) {
	if err := m.Validate(); err != nil {
		b.Fatal(err)
	}
	b.Logf("mix: N=%d jobs, K=%d jumped, limit %d in flight, %d producers, seed %d",
		m.N, m.K, m.Limit, m.Producers, m.Seed)
	be := open(b, m)
	b.ResetTimer()
	maxIF := runMix(b, m, be, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N*m.N)/b.Elapsed().Seconds(), "ops/s")
	b.Logf("at most %d jobs held by workers at once (limit %d)", maxIF, m.Limit)
}

// testMix is the small, checked version of a benchmark that `go test` runs.
var testMix = Mix{N: 600, K: 40, Limit: 16, Producers: 32, Seed: 7}

func testBackend(t *testing.T, open func(testing.TB, Mix) backend) {
	t.Logf("mix %+v", testMix)
	be := open(t, testMix)
	if got := runMix(t, testMix, be, 2); got < 1 || got > testMix.Limit {
		t.Fatalf("max in flight %d, want 1..%d", got, testMix.Limit)
	}
}

// waitDone waits for the tracker or the context.
func waitDone(ctx context.Context, tr *Tracker) error {
	select {
	case <-tr.Done():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
