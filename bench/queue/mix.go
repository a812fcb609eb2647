package queue

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Mix is the operation mix every queue benchmark runs per iteration.
type Mix struct {
	N         int    // jobs enqueued per iteration
	K         int    // jobs moved to the front (jumped) per iteration
	Limit     int    // jobs in flight at most (the concurrency throttle)
	Producers int    // concurrent goroutines enqueueing and jumping
	Seed      uint64 // chooses which jobs jump
}

// DefaultMix is sized so that one iteration of the slowest backend (asynq
// with every write fsynced) takes a few seconds: CI runs each benchmark once.
var DefaultMix = Mix{N: 5000, K: 250, Limit: 64, Producers: 64, Seed: 1}

// Validate checks the mix once, before a benchmark uses it.
func (m Mix) Validate() error {
	switch {
	case m.N < 1:
		return fmt.Errorf("queue: mix N must be at least 1, got %d", m.N)
	case m.K < 0 || m.K > m.N:
		return fmt.Errorf("queue: mix K must be in 0..N (%d), got %d", m.N, m.K)
	case m.Limit < 1:
		return fmt.Errorf("queue: mix Limit must be at least 1, got %d", m.Limit)
	case m.Producers < 1:
		return fmt.Errorf("queue: mix Producers must be at least 1, got %d", m.Producers)
	}
	return nil
}

// Jumped returns the K job indexes (in 0..N) that iteration round jumps, in
// the order the jumps are issued. The choice depends only on Seed and round.
func (m Mix) Jumped(round int) []int {
	r := rand.New(rand.NewPCG(m.Seed, uint64(round)))
	return r.Perm(m.N)[:m.K]
}

// Spread runs fn(i) for every i in 0..n with m.Producers goroutines and
// returns the first error. It is how every backend enqueues and jumps: a
// broker has many sessions submitting at once.
func (m Mix) Spread(n int, fn func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for range min(m.Producers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// Tracker watches one iteration from the workers' side: the order in which
// jobs were handed to workers, how many were held at once, and when all of
// them are done. Workers call Start when a job reaches them and Finish when
// they let go of it (just before acknowledging its completion to the queue,
// which is the moment the queue may hand out the slot again). Safe for
// concurrent use.
type Tracker struct {
	n, limit int

	inFlight    atomic.Int64
	maxInFlight atomic.Int64
	finished    atomic.Int64
	done        chan struct{}

	mu      sync.Mutex
	order   []int  // job indexes in the order they started
	started []bool // by job index
	dup     int    // jobs started more than once
	bad     int    // indexes out of range
}

// NewTracker returns a tracker for n jobs under a limit of limit in flight.
func NewTracker(n, limit int) *Tracker {
	return &Tracker{n: n, limit: limit, done: make(chan struct{}),
		order: make([]int, 0, n), started: make([]bool, n)}
}

// Start records that job i reached a worker.
func (t *Tracker) Start(i int) {
	f := t.inFlight.Add(1)
	for {
		m := t.maxInFlight.Load()
		if f <= m || t.maxInFlight.CompareAndSwap(m, f) {
			break
		}
	}
	t.mu.Lock()
	switch {
	case i < 0 || i >= t.n:
		t.bad++
	case t.started[i]:
		t.dup++
	default:
		t.started[i] = true
		t.order = append(t.order, i)
	}
	t.mu.Unlock()
}

// Finish records that a worker let go of job i. The n-th call closes Done.
func (t *Tracker) Finish(int) {
	t.inFlight.Add(-1)
	if t.finished.Add(1) == int64(t.n) {
		close(t.done)
	}
}

// Done is closed when every job has finished.
func (t *Tracker) Done() <-chan struct{} { return t.done }

// MaxInFlight is the most jobs the workers held at once.
func (t *Tracker) MaxInFlight() int { return int(t.maxInFlight.Load()) }

// LateJumps counts jumped jobs that started after a normal job which was
// already waiting when they jumped. All jumps of an iteration are issued
// while dispatch is held, so every jumped job must start before every
// normal one; the first Limit starts are let off, since a queue may have
// handed those out in the instant dispatch was released.
func (t *Tracker) LateJumps(jumped []int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	isJump := make(map[int]bool, len(jumped))
	for _, j := range jumped {
		isJump[j] = true
	}
	late, normalsSeen := 0, 0
	for _, i := range t.order {
		if isJump[i] {
			if normalsSeen > t.limit {
				late++
			}
		} else {
			normalsSeen++
		}
	}
	return late
}

// Check returns an error describing every broken rule of the iteration:
// jobs lost, started twice or unknown, more than the limit in flight, or
// jumps served late.
func (t *Tracker) Check(jumped []int) error {
	t.mu.Lock()
	lost := t.n - len(t.order)
	dup, bad := t.dup, t.bad
	t.mu.Unlock()
	var errs []string
	if lost != 0 {
		errs = append(errs, fmt.Sprintf("%d of %d jobs never started", lost, t.n))
	}
	if dup != 0 {
		errs = append(errs, fmt.Sprintf("%d jobs started twice", dup))
	}
	if bad != 0 {
		errs = append(errs, fmt.Sprintf("%d unknown jobs started", bad))
	}
	if m := t.MaxInFlight(); m > t.limit {
		errs = append(errs, fmt.Sprintf("%d jobs in flight at once, limit %d", m, t.limit))
	}
	if late := t.LateJumps(jumped); late != 0 {
		errs = append(errs, fmt.Sprintf("%d of %d jumped jobs started after waiting normal jobs", late, len(jumped)))
	}
	if errs == nil {
		return nil
	}
	return fmt.Errorf("queue: %v", errs)
}
