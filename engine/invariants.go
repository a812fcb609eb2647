package engine

import "fmt"

// CheckInvariants verifies the engine's internal consistency against the
// invariants of DESIGN.md that can be judged from the state alone. It is
// O(fleet): tests and the simulator call it on every step of small runs and
// periodically on large ones.
//
//   - every client is in exactly one state, and the counters agree;
//   - a client is queued (has a lane) iff it is pending, at most once, with
//     a sequence number unique within its lane;
//   - in-flight equals the number of upgrading clients, and each of them has
//     a lease;
//   - an outdated client is never in state current... unless it has not
//     checked in since the release (then it is counted as outdated_not_seen);
//     a client that is not outdated is never queued.
func (e *Engine) CheckInvariants() error {
	var counts [numStates][numKinds]int
	var online [numKinds]int
	inFlight := 0
	laneCount := [3]int{}
	seen := [3]map[uint64]int32{nil, {}, {}}
	for i := range e.ents {
		en := &e.ents[i]
		if en.state < StateCurrent || en.state >= numStates {
			return fmt.Errorf("client %s: bad state %d", en.id, en.state)
		}
		counts[en.state][en.kind]++
		if en.flags&flagOnline != 0 {
			online[en.kind]++
		}
		if j, ok := e.byID[en.id]; !ok || j != int32(i) {
			return fmt.Errorf("client %s: index mismatch", en.id)
		}
		switch en.state {
		case StatePending:
			if en.lane != LaneJump && en.lane != LaneNormal {
				return fmt.Errorf("client %s: pending but in lane %d", en.id, en.lane)
			}
			if j, dup := seen[en.lane][en.seq]; dup {
				return fmt.Errorf("clients %s and %s share seq %d in lane %s", e.ents[j].id, en.id, en.seq, en.lane)
			}
			seen[en.lane][en.seq] = int32(i)
			laneCount[en.lane]++
			// A release may have made its version the target: allowed only
			// until the release sweep reaches it.
			if !e.outdated(en) && (e.sweepAt < 0 || i < e.sweepAt) {
				return fmt.Errorf("client %s: queued but not outdated (version %s, target %s)", en.id, en.ver, e.site[en.platform])
			}
		default:
			if en.lane != LaneNone {
				return fmt.Errorf("client %s: %s but queued in lane %s", en.id, en.state, en.lane)
			}
		}
		if en.state == StateUpgrading {
			inFlight++
			if en.deadline == 0 {
				return fmt.Errorf("client %s: upgrading without a lease", en.id)
			}
		}
	}
	if counts != e.counts {
		return fmt.Errorf("state counters %v, recount %v", e.counts, counts)
	}
	if online != e.online {
		return fmt.Errorf("online counters %v, recount %v", e.online, online)
	}
	if inFlight != e.inFlight {
		return fmt.Errorf("in flight %d, recount %d", e.inFlight, inFlight)
	}
	if laneCount[LaneJump] != e.jump.count || laneCount[LaneNormal] != e.normal.count {
		return fmt.Errorf("lane counts jump %d normal %d, recount %d %d", e.jump.count, e.normal.count, laneCount[LaneJump], laneCount[LaneNormal])
	}
	for _, l := range [2]Lane{LaneJump, LaneNormal} {
		ln, _ := e.laneOf(l)
		if got := ln.pos.prefix(len(ln.pos.t)); got != ln.count {
			return fmt.Errorf("lane %s position index holds %d, lane has %d", l, got, ln.count)
		}
		for seq := range seen[l] {
			if seq >= ln.next {
				return fmt.Errorf("lane %s: seq %d at or past next %d", l, seq, ln.next)
			}
		}
	}
	return nil
}
