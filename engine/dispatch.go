package engine

import (
	"time"
)

// Tick advances the engine to now: it expires leases, brings clients whose
// retry backoff is over back into the queue, continues a release sweep, and
// starts as many upgrades as free slots and start tokens allow. The driver
// calls it at the end of every turn and at NextDeadline.
func (e *Engine) Tick(now time.Time) {
	t := ms(now)
	for {
		it, ok := e.leases.Peek()
		if !ok || it.key > t {
			break
		}
		e.leases.Pop()
		en := &e.ents[it.idx]
		if en.state != StateUpgrading || en.deadline != it.key {
			continue // renewed or finished since: stale
		}
		ev := e.event(EvLeaseExpired, t, en)
		e.emit(ev)
		e.failAttempt(t, it.idx, "lease expired: no progress within "+e.settings.LeaseTime.String())
	}
	for {
		it, ok := e.delayed.Peek()
		if !ok || it.key > t {
			break
		}
		e.delayed.Pop()
		en := &e.ents[it.idx]
		if en.state != StatePending || en.flags&flagDelayed == 0 || en.deadline != it.key {
			continue
		}
		en.flags &^= flagDelayed
		en.deadline = 0
		e.markDirty(it.idx)
		e.makeReady(it.idx)
	}
	if e.sweepAt >= 0 {
		e.sweep(t)
	}
	e.dispatch(now)
}

// sweep examines the next SweepBatch clients after a site release: it
// queues the persistent clients (active, Jumpoints) that are online and
// outdated, so that a release published while they are connected reaches
// them without waiting for a check-in, and makes current the pending or
// failed clients whose version the release made the target.
//
// A passive client is queued by its own check-in, whose answer tells it
// so. One that is online at the sweep has just been answered "current"
// and is leaving: queued then, near the front, its turn would come as it
// left and it would hear of it only at its next check-in, a period after
// the last, i.e. start right at the edge of a period after its turn. (And
// a load generator judging turns by the clients' own account saw such a
// client as queued a period late, so that its early start made thousands
// of clients queued before it look late: bench/RESULTS.md, sixth pass.)
func (e *Engine) sweep(t int64) {
	end := min(e.sweepAt+e.cfg.SweepBatch, len(e.ents))
	for i := e.sweepAt; i < end; i++ {
		en := &e.ents[i]
		switch {
		case en.state == StateCurrent && en.flags&flagOnline != 0 && en.kind.Persistent() && e.outdated(en):
			e.enqueue(t, int32(i), LaneNormal)
			ev := e.event(EvQueued, t, en)
			ev.Lane, ev.Position = en.lane, e.position(en)
			e.emit(ev)
		case (en.state == StatePending || en.state == StateFailed) && !e.outdated(en):
			// The release made the version it runs the target.
			e.makeCurrent(t, int32(i))
		}
	}
	e.sweepAt = end
	if end >= len(e.ents) {
		e.sweepAt = -1
	}
}

// dispatch starts upgrades while a slot is free, a token is available and a
// dispatchable client waits (work conserving: invariant 6).
func (e *Engine) dispatch(now time.Time) {
	if e.settings.Paused {
		return
	}
	t := ms(now)
	for e.inFlight < e.settings.MaxConcurrent {
		i, h, ok := e.candidate()
		if !ok {
			return
		}
		if !e.lim.AllowN(now, 1) {
			return
		}
		h.Pop()
		e.start(t, i)
	}
}

// candidate returns the best dispatchable client, the heap it heads, and
// whether there is one. Invalid heap tops (dequeued, offline, re-queued) are
// dropped on the way.
func (e *Engine) candidate() (int32, *minHeap, bool) {
	for _, l := range [2]Lane{LaneJump, LaneNormal} {
		_, h := e.laneOf(l)
		for {
			it, ok := h.Peek()
			if !ok {
				break
			}
			en := &e.ents[it.idx]
			member := en.state == StatePending && en.lane == l && int64(en.seq) == it.key
			// A client a newer release no longer finds outdated is not
			// dispatched; the release sweep makes it current.
			if member && en.flags&flagOnline != 0 && en.flags&flagDelayed == 0 && e.outdated(en) {
				return it.idx, h, true
			}
			h.Pop()
			if member {
				en.flags &^= flagInHeap // offline: pushed again when it is back
			}
		}
	}
	return 0, nil, false
}

// start gives client i a slot under a lease and emits its dispatch.
func (e *Engine) start(t int64, i int32) {
	if en := &e.ents[i]; en.lane == LaneNormal {
		e.front.dispatched(t, en.seq, e.normal.epoch)
	}
	e.dequeue(i)
	en := &e.ents[i]
	en.flags &^= flagBack
	en.attempts++
	en.startedAt = t
	en.deadline = t + e.settings.LeaseTime.Milliseconds()
	e.setState(i, StateUpgrading)
	e.leases.Push(item{en.deadline, i})
	d := Dispatch{Client: en.id, Kind: en.kind, Platform: en.platform, Target: e.site[en.platform],
		Release: e.siteRel[en.platform], Lease: fromMS(en.deadline), Attempt: int(en.attempts)}
	e.out.Dispatches = append(e.out.Dispatches, d)
	ev := e.event(EvStarted, t, en)
	ev.Release = d.Release
	e.emit(ev)
}

// NextDeadline returns when the engine next needs a Tick without any input:
// a lease or backoff ends, a sweep continues, or a start token arrives for a
// waiting client. ok is false when nothing is scheduled.
func (e *Engine) NextDeadline(now time.Time) (time.Time, bool) {
	var next int64
	consider := func(t int64) {
		if next == 0 || t < next {
			next = t
		}
	}
	if it, ok := e.leases.Peek(); ok {
		consider(it.key)
	}
	if it, ok := e.delayed.Peek(); ok {
		consider(it.key)
	}
	if e.sweepAt >= 0 {
		consider(ms(now))
	}
	if !e.settings.Paused && e.inFlight < e.settings.MaxConcurrent {
		if _, _, ok := e.candidate(); ok {
			tokens := e.lim.TokensAt(now)
			wait := time.Duration(0)
			if tokens < 1 {
				wait = time.Duration((1 - tokens) / e.settings.StartsPerSec * float64(time.Second))
			}
			consider(now.Add(wait).UnixMilli() + boolMS(wait > 0))
		}
	}
	if next == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(next), true
}

// boolMS rounds a token wait up to the next millisecond so that the driver
// does not wake a hair early and spin.
func boolMS(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
