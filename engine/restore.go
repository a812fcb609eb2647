package engine

import (
	"time"

	"golang.org/x/time/rate"

	"jumpfleet/store"
)

// Restore adds a client from its durable record. Call it for every record
// (recovery scan), then FinishRestore. Every client starts offline: the
// connections did not survive the restart.
func (e *Engine) Restore(r *store.ClientRecord) error {
	en := entry{
		id: ClientID(r.ID), seq: r.Seq, lastCheckIn: r.LastCheckIn, queuedAt: r.QueuedAt,
		startedAt: r.StartedAt, finishedAt: r.FinishedAt,
		ver:  Version{r.Version[0], r.Version[1], r.Version[2], r.Revision},
		kind: Kind(r.Kind), platform: Platform(r.Platform), state: State(r.State), lane: Lane(r.Lane),
		attempts: r.Attempts,
	}
	if !en.kind.Valid() || !en.platform.Valid() || en.state < StateCurrent || en.state >= numStates || en.lane > LaneNormal {
		return Errorf(CodeStorage, "client %s: record has kind %d platform %d state %d lane %d", en.id, r.Kind, r.Platform, r.State, r.Lane)
	}
	if _, dup := e.byID[en.id]; dup {
		return Errorf(CodeStorage, "client %s restored twice", en.id)
	}
	if (en.state == StatePending) != (en.lane != LaneNone) {
		return Errorf(CodeStorage, "client %s: record is %s with lane %s", en.id, en.state, en.lane)
	}
	// Sequence numbers restart whenever a lane empties, so a live one is
	// below the fleet size; a huge one is corruption (and would size the
	// position index by it).
	if r.Seq > maxSeq {
		return Errorf(CodeStorage, "client %s: queue sequence %d out of range", en.id, r.Seq)
	}
	switch en.state {
	case StateUpgrading:
		en.deadline = r.LeaseDeadline
	case StatePending:
		if r.NotBefore != 0 {
			en.deadline = r.NotBefore
			en.flags |= flagDelayed
		}
		if en.lane == LaneNone {
			return Errorf(CodeStorage, "client %s: pending but not queued", en.id)
		}
	}
	i := int32(len(e.ents))
	e.ents = append(e.ents, en)
	e.byID[en.id] = i
	e.count(&e.ents[i])
	if r.LastError != "" {
		e.lastErr[i] = r.LastError
	}
	return nil
}

// RestoreMeta restores settings and releases read from the store.
func (e *Engine) RestoreMeta(now time.Time, s *Settings, rels []Release) error {
	if s != nil {
		if err := s.Validate(); err != nil {
			return err
		}
		e.settings = *s
		e.lim.SetLimitAt(now, rate.Limit(s.StartsPerSec))
		e.lim.SetBurstAt(now, s.StartBurst)
	}
	e.releases = rels
	for i := range rels {
		e.applyRelease(&rels[i])
	}
	return nil
}

// FinishRestore rebuilds the queue lanes and lease and backoff schedules
// from the restored records.
func (e *Engine) FinishRestore(now time.Time) {
	var maxSeq [3]uint64
	var any [3]bool
	for i := range e.ents {
		en := &e.ents[i]
		switch en.state {
		case StateUpgrading:
			e.leases.Push(item{en.deadline, int32(i)})
		case StatePending:
			ln, _ := e.laneOf(en.lane)
			ln.count++
			ln.pos.add(int(en.seq), 1)
			if !any[en.lane] || en.seq > maxSeq[en.lane] {
				maxSeq[en.lane], any[en.lane] = en.seq, true
			}
			if en.flags&flagDelayed != 0 {
				e.delayed.Push(item{en.deadline, int32(i)})
			}
		}
	}
	for _, l := range [2]Lane{LaneJump, LaneNormal} {
		if any[l] {
			ln, _ := e.laneOf(l)
			ln.next = maxSeq[l] + 1
		}
	}
	// Anything that was mid-sweep is caught at check-in; sweep again to
	// be sure online clients are found once they reconnect.
	e.sweepAt = 0
	e.Tick(now)
}
