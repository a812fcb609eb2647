package server

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestDeadlineWheelModel drives the QUIC deadline wheel (quicstream.go)
// with random deadlines, moves, closes and sweeps, and checks after every
// step against a model: a sweep returns only streams whose deadline has
// passed, leaves filed no stream whose deadline's tick has started
// (nothing is missed), never returns a closed stream, and the wheel's
// lists and each stream's tick and slot agree.
func TestDeadlineWheelModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const width = 10
	w := newDeadlineWheel(width, time.Unix(0, 1000))
	now := int64(1000)
	type model struct {
		waiting bool // its last deadline was in the future and no sweep has returned it since
	}
	qs := make([]*quicStream, 200)
	ms := make([]model, len(qs))
	for i := range qs {
		qs[i] = &quicStream{wheel: w}
	}
	setDeadline := func(i int, d int64) { // as SetReadDeadline does
		q := qs[i]
		if d > now {
			fileAt(q, d)
		} else {
			q.rdl.Store(d)
		}
		ms[i].waiting = d > now && !q.gone
	}
	returned := 0
	for step := range 20000 {
		i := rng.IntN(len(qs))
		switch op := rng.IntN(10); {
		case op < 5: // a read: the idle deadline moves, mostly later
			setDeadline(i, now+1+rng.Int64N(200))
		case op == 5:
			setDeadline(i, 0)
		case op == 6:
			setDeadline(i, now-rng.Int64N(20)) // already passed: set on the stream at once, not filed
		case op == 7:
			w.remove(qs[i])
			ms[i].waiting = false
		default: // a sweep, usually one tick later, sometimes after a long pause
			if rng.IntN(20) == 0 {
				now += rng.Int64N(2000)
			} else {
				now += rng.Int64N(2 * width)
			}
			for _, q := range w.take(now, nil) {
				j := indexOf(qs, q)
				if q.gone {
					t.Fatalf("step %d: sweep returned closed stream %d", step, j)
				}
				if d := q.rdl.Load(); d == 0 || d > now {
					t.Fatalf("step %d: sweep at %d returned stream %d with deadline %d", step, now, j, d)
				}
				ms[j].waiting = false
				returned++
			}
			for j, q := range qs {
				if ms[j].waiting && w.tickOf(q.rdl.Load())*width <= now {
					t.Fatalf("step %d: stream %d's deadline %d passed at sweep %d and was missed", step, j, q.rdl.Load(), now)
				}
			}
		}
		checkWheel(t, step, w, qs)
	}
	if returned == 0 {
		t.Fatal("no sweep returned a stream: the test exercised nothing")
	}
}

// fileAt records deadline d on q and files it, as SetReadDeadline does
// with a deadline still to come.
func fileAt(q *quicStream, d int64) {
	q.rdl.Store(d)
	q.wheel.file(q, d)
}

func indexOf(qs []*quicStream, q *quicStream) int {
	for i := range qs {
		if qs[i] == q {
			return i
		}
	}
	return -1
}

// checkWheel: every filed stream is in its tick's list at its slot, every
// listed stream says so, no list is empty, and no closed stream is filed.
func checkWheel(t *testing.T, step int, w *deadlineWheel, qs []*quicStream) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	listed := 0
	for tk, l := range w.ticks {
		if len(l) == 0 {
			t.Fatalf("step %d: tick %d has an empty list", step, tk)
		}
		for i, q := range l {
			if q.tick.Load() != tk || q.slot != i {
				t.Fatalf("step %d: stream %d listed at tick %d slot %d says tick %d slot %d", step, indexOf(qs, q), tk, i, q.tick.Load(), q.slot)
			}
		}
		listed += len(l)
	}
	filed := 0
	for i, q := range qs {
		if q.tick.Load() != 0 {
			filed++
			if q.gone {
				t.Fatalf("step %d: closed stream %d is filed", step, i)
			}
		}
	}
	if filed != listed {
		t.Fatalf("step %d: %d streams say they are filed, %d listed", step, filed, listed)
	}
}

// TestDeadlineWheelMovesLaterLazily: a deadline that moves later leaves the
// stream under its tick (no lock, no list change); the sweep at that tick
// files it again under its new deadline's tick instead of returning it.
// An earlier deadline moves it at once.
func TestDeadlineWheelMovesLaterLazily(t *testing.T) {
	w := newDeadlineWheel(10, time.Unix(0, 0))
	q := &quicStream{wheel: w}
	tickIs := func(want int64, after string) {
		t.Helper()
		if got := q.tick.Load(); got != want {
			t.Fatalf("after %s the stream is under tick %d, want %d", after, got, want)
		}
	}
	fileAt(q, 25)
	tickIs(3, "deadline 25")
	fileAt(q, 95)
	tickIs(3, "a later deadline (95)") // left where it was
	if due := w.take(30, nil); len(due) != 0 {
		t.Fatalf("sweep at 30 returned %d streams; the deadline is 95", len(due))
	}
	tickIs(10, "the sweep at 30")
	fileAt(q, 41)
	tickIs(5, "an earlier deadline (41)")
	if due := w.take(50, nil); len(due) != 1 || due[0] != q {
		t.Fatalf("sweep at 50 returned %v, want the stream", due)
	}
	if q.tick.Load() != 0 || len(w.ticks) != 0 {
		t.Fatalf("a returned stream stays filed (tick %d, %d lists)", q.tick.Load(), len(w.ticks))
	}
}

// TestDeadlineWheelConcurrent runs sessions setting deadlines and closing
// against a sweeper, for the race detector, then checks that closed
// streams are all out of the wheel.
func TestDeadlineWheelConcurrent(t *testing.T) {
	w := newDeadlineWheel(time.Millisecond, time.Now())
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		var due []*quicStream
		for {
			select {
			case <-stop:
				return
			default:
			}
			due = w.take(time.Now().UnixNano(), due[:0])
		}
	})
	qs := make([]*quicStream, 8)
	var sessions sync.WaitGroup
	for i := range qs {
		q := &quicStream{wheel: w}
		qs[i] = q
		sessions.Go(func() {
			for range 2000 {
				fileAt(q, time.Now().Add(time.Duration(rand.IntN(5000))*time.Microsecond).UnixNano())
			}
			w.remove(q)
		})
	}
	sessions.Wait()
	close(stop)
	wg.Wait()
	for i, q := range qs {
		if q.tick.Load() != 0 {
			t.Errorf("closed stream %d still filed under tick %d", i, q.tick.Load())
		}
	}
	if len(w.ticks) != 0 {
		t.Errorf("%d tick lists left after every stream closed", len(w.ticks))
	}
}
