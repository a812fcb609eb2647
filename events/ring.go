package events

import (
	"context"
	"sync"

	"jumpfleet/engine"
)

// Ring is a bounded in-memory log of the most recent events. Readers keep
// their own cursor (a sequence number, counted from the broker's start) and
// wait for more; a reader that falls further behind than the ring holds is
// told it missed some (a gap) and continues from the oldest event held.
// Memory is fixed at the ring size whatever the readers do, so a slow
// dashboard costs nothing but its own gap.
type Ring struct {
	mu     sync.Mutex
	buf    []slot        // guarded by mu; buf[seq % len(buf)]
	next   uint64        // guarded by mu; sequence number of the next event
	notify chan struct{} // guarded by mu; closed (and replaced) on every Add
	closed bool          // guarded by mu
	// evicted is the newest event overwritten (the one just before the
	// oldest held), so that Since can tell a reader it missed nothing.
	evicted slot // guarded by mu
}

// slot is one held event. Records (with their id strings) are made by
// readers, so Add stays a plain copy on the engine goroutine.
type slot struct {
	ev    engine.Event
	turn  uint64
	index int
}

func (s *slot) after(turn uint64, index int) bool {
	return s.turn > turn || (s.turn == turn && s.index > index)
}

func (s *slot) record() Record { return MakeRecord(s.turn, s.index, s.ev) }

// NewRing returns a ring holding the last size events (size ≥ 1).
func NewRing(size int) *Ring {
	return &Ring{buf: make([]slot, max(size, 1)), notify: make(chan struct{})}
}

// Add appends the events of a committed turn. It copies and returns at once:
// it runs on the engine goroutine.
func (r *Ring) Add(turn uint64, evs []engine.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	for i, ev := range evs {
		sl := &r.buf[r.next%uint64(len(r.buf))]
		if r.next >= uint64(len(r.buf)) {
			r.evicted = *sl
		}
		*sl = slot{ev: ev, turn: turn, index: i}
		r.next++
	}
	close(r.notify)
	r.notify = make(chan struct{})
}

// Close wakes every waiting reader; Wait returns false from then on. Safe to
// call twice.
func (r *Ring) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.notify)
	}
}

// oldestLocked is the sequence number of the oldest event still held.
func (r *Ring) oldestLocked() uint64 {
	if n := uint64(len(r.buf)); r.next > n {
		return r.next - n
	}
	return 0
}

// Head returns the sequence number the next event will get: a reader that
// wants only new events starts there.
func (r *Ring) Head() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

// Since returns the sequence number of the first held event after the event
// id, and whether the ring still held everything after it (false means
// events were evicted: the reader has a gap). An id newer than anything held
// (e.g. from before a restart with a reset ring) starts at the head.
func (r *Ring) Since(id string) (uint64, bool) {
	turn, index, ok := ParseID(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	oldest := r.oldestLocked()
	if !ok {
		return r.next, false
	}
	// Records are in id order: binary search the first one after id.
	lo, hi := oldest, r.next
	for lo < hi {
		m := lo + (hi-lo)/2
		if r.buf[m%uint64(len(r.buf))].after(turn, index) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	// Nothing was missed if the event just before lo is at or before id:
	// either it is held, or it is the last evicted one, or there is none.
	complete := lo > oldest || oldest == 0 || !r.evicted.after(turn, index)
	return lo, complete
}

// Read copies up to len(dst) events starting at sequence from into dst. It
// returns how many it copied, the cursor to read from next, and gap=true if
// events between from and the oldest held were evicted (they are skipped).
func (r *Ring) Read(from uint64, dst []Record) (n int, next uint64, gap bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if oldest := r.oldestLocked(); from < oldest {
		from, gap = oldest, true
	}
	for from < r.next && n < len(dst) {
		dst[n] = r.buf[from%uint64(len(r.buf))].record()
		n++
		from++
	}
	return n, from, gap
}

// Wait blocks until an event with sequence ≥ from exists, the ring is
// closed (false) or ctx is done (false).
func (r *Ring) Wait(ctx context.Context, from uint64) bool {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return false
		}
		if from < r.next {
			r.mu.Unlock()
			return true
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// Client returns the held events of one client, oldest first, at most max.
func (r *Ring) Client(id engine.ClientID, max int) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for s := r.next; s > r.oldestLocked() && len(out) < max; s-- {
		sl := &r.buf[(s-1)%uint64(len(r.buf))]
		if sl.ev.Client == id {
			out = append(out, sl.record())
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Closed reports whether Close was called.
func (r *Ring) Closed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}
