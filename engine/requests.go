package engine

import (
	"time"

	"golang.org/x/time/rate"
)

// CheckIn is a client's report of who and what it is.
type CheckIn struct {
	ID       ClientID
	Kind     Kind
	Platform Platform
	Version  Version
}

// Answer is the engine's reply to a check-in.
type Answer struct {
	State    State
	Target   Version // zero when no site release names the platform
	Lane     Lane
	Position int // 1-based place in the queue; 0 when not queued
	// RetryAfter tells a pending passive client when its turn is likely to
	// come, so that it checks in again then rather than a day later. For a
	// pending passive client it is 0 only when its turn has already come
	// (overdue): it should stay connected, the next free slot is its.
	RetryAfter time.Duration
	// Rejoin is, for an overdue pending passive client (RetryAfter 0),
	// when to come back if it cannot stay connected (the transport may be
	// short of descriptors): about when the clients ahead of it, every one
	// overdue longer, will have had their slots. The longest overdue come
	// back soonest, so their turns are not left to chance.
	Rejoin time.Duration
	New    bool // first check-in of this client
}

// Overdue reports whether the answer tells a pending passive client that
// its turn has already come (RetryAfter 0): it should stay for the next
// free slot, or come back at Rejoin if it cannot.
func (a Answer) Overdue() bool { return a.State == StatePending && a.RetryAfter == 0 }

// CheckIn records a check-in: the client is online from now until
// Disconnect. It queues an outdated client (once), completes an upgrade
// when the client comes back with a new version, and answers the client's
// state as of the request; a pending answer is brought up to date by
// Settle after the turn's Tick. A current client's check-in changes
// nothing durable and is the hot path.
func (e *Engine) CheckIn(now time.Time, in CheckIn) (Answer, error) {
	if !in.Kind.Valid() {
		return Answer{}, Errorf(CodeBadKind, "unknown client kind %d", in.Kind)
	}
	if !in.Platform.Valid() {
		return Answer{}, Errorf(CodeBadPlatform, "unknown platform %d", in.Platform)
	}
	if in.Version.IsZero() {
		return Answer{}, Errorf(CodeBadVersion, "version 0.0.0 is not a version")
	}
	t := ms(now)
	i, ok := e.byID[in.ID]
	isNew := !ok
	if isNew {
		i = int32(len(e.ents))
		e.ents = append(e.ents, entry{id: in.ID, kind: in.Kind, platform: in.Platform, ver: in.Version, state: StateCurrent})
		e.byID[in.ID] = i
		e.count(&e.ents[i])
		e.markDirty(i)
	}
	en := &e.ents[i]
	if en.kind != in.Kind {
		return Answer{}, Errorf(CodeKindMismatch, "client %s enrolled as %s, checked in as %s", in.ID, en.kind, in.Kind)
	}
	en.lastCheckIn = t
	changed := en.platform != in.Platform || en.ver != in.Version
	if changed {
		e.uncount(en)
		en.platform, en.ver = in.Platform, in.Version
		e.count(en)
		e.markDirty(i)
	}
	e.setOnline(i, true)

	switch en.state {
	case StateUpgrading:
		if changed {
			// The client came back on another version: this attempt is over.
			e.finish(t, i)
		} else {
			// Back on the same version mid-upgrade (its offer was lost, or
			// its connection broke): the transport offers again, and the
			// client's install starts only now. Without a renewal a late
			// re-offer ran past the lease, which then gave the slot to
			// someone else while this client was still installing.
			e.renewLease(t, i)
			en.flags |= flagBack // it has heard of its upgrade: no undo
		}
	case StatePending, StateFailed:
		if !e.outdated(en) {
			e.makeCurrent(t, i)
		}
	case StateCurrent:
		if e.outdated(en) {
			e.enqueue(t, i, LaneNormal)
			ev := e.event(EvQueued, t, en)
			ev.Lane, ev.Position = en.lane, e.position(en)
			e.emit(ev)
		}
	}
	return e.answer(t, i, isNew), nil
}

// answer is client i's answer as the engine stands now.
func (e *Engine) answer(t int64, i int32, isNew bool) Answer {
	en := &e.ents[i]
	a := Answer{State: en.state, Target: e.site[en.platform], Lane: en.lane, Position: e.position(en), New: isNew}
	if en.state == StatePending && en.kind == KindPassive {
		a.RetryAfter = e.retryAfter(t, en, a.Position)
		if a.Overdue() {
			a.Rejoin = e.queueWait(a.Position)
		}
	}
	return a
}

// Settle brings a pending answer given earlier in this turn up to date
// after the turn's Tick: the dispatch at the end of the turn may have
// started the client (the answer then says upgrading) or moved it up. The
// driver settles every check-in's answer before giving it, so that a
// client whose slot came in its own turn hears so: a passive client told
// "pending, come back in a minute" left, and a start made for it at the
// end of the turn reached a closed connection. Dispatching inside CheckIn
// instead answered the same but broke lane order within a turn (a
// normal-lane client started before a jumped client's check-in later in
// the turn). Other answers are returned as they are.
func (e *Engine) Settle(now time.Time, id ClientID, a Answer) Answer {
	if a.State != StatePending {
		return a
	}
	i, ok := e.byID[id]
	if !ok {
		return a
	}
	return e.answer(ms(now), i, a.New)
}

// finish ends an upgrade attempt whose client came back with a new version.
func (e *Engine) finish(t int64, i int32) {
	en := &e.ents[i]
	en.finishedAt = t
	if en.startedAt != 0 && t > en.startedAt {
		d := float64(t-en.startedAt) / 1000
		e.meanDur += (d - e.meanDur) / 16
	}
	e.done.add(t)
	en.attempts = 0
	delete(e.lastErr, i)
	if e.outdated(en) {
		// Upgraded, but not to what is wanted now (a newer release was
		// published meanwhile): queue again, with fresh attempts, in the
		// jump lane if a console is still waiting for it.
		e.setState(i, StateCurrent)
		e.enqueue(t, i, e.laneFor(i))
		return
	}
	e.setState(i, StateCurrent)
	e.notifyCurrent(t, i)
}

// laneFor is the lane a client re-enters: the jump lane while it has been
// jumped to and has not yet become current, else the normal lane.
func (e *Engine) laneFor(i int32) Lane {
	if _, jumped := e.waiters[i]; jumped {
		return LaneJump
	}
	return LaneNormal
}

// makeCurrent ends whatever a client that is no longer outdated was
// waiting for (a release made its version the target): it leaves the
// queue, becomes current, and its waiting consoles are told.
func (e *Engine) makeCurrent(t int64, i int32) {
	e.dequeue(i)
	e.ents[i].attempts = 0
	delete(e.lastErr, i)
	e.setState(i, StateCurrent)
	e.notifyCurrent(t, i)
}

// notifyCurrent publishes that a client became current and wakes the
// consoles waiting to jump to it.
func (e *Engine) notifyCurrent(t int64, i int32) {
	en := &e.ents[i]
	e.emit(e.event(EvUpgraded, t, en))
	if ws, ok := e.waiters[i]; ok {
		delete(e.waiters, i)
		e.out.JumpReady = append(e.out.JumpReady, JumpReady{Client: en.id, Version: en.ver, Waiters: ws})
		e.emit(e.event(EvJumpReady, t, en))
	}
}

// retryAfter estimates when a pending passive client's turn comes, so that
// it checks in again then rather than a day later. In the normal lane the
// estimate follows the dispatch frontier: how fast the sequence number of
// dispatched clients advances (which already accounts for offline clients
// skipped on the way); before that is measured, or in the jump lane, it is
// the place over the slots times the mean upgrade time (or over the start
// rate if that binds). It aims a little early (×0.8, so a client near its
// turn comes back often and catches it), with ±10% jitter, within
// [1s, 24h].
func (e *Engine) retryAfter(t int64, en *entry, pos int) time.Duration {
	if e.overdue(en) {
		return 0 // its turn has come: stay connected, the next free slot is its
	}
	if f := &e.front; en.lane == LaneNormal && f.speed > 0 && f.epoch == e.normal.epoch && en.seq >= f.seq {
		return e.jitterWait(float64(en.seq-f.seq) / f.speed)
	}
	return e.queueWait(pos)
}

// queueWait estimates the wait of the client at queue position pos from
// the slots and the mean upgrade time (or the start rate, if that binds).
func (e *Engine) queueWait(pos int) time.Duration {
	wait := float64(pos-1) / float64(e.settings.MaxConcurrent) * e.meanDur
	if byRate := float64(pos-1) / e.settings.StartsPerSec; byRate > wait {
		wait = byRate
	}
	return e.jitterWait(wait)
}

// jitterWait turns an estimated wait in seconds into a retry-after: ×0.8
// so that the client comes back early, ±10 % jitter, within [1 s,
// MaxRetryAfter].
func (e *Engine) jitterWait(wait float64) time.Duration {
	wait *= 0.8
	wait *= 0.9 + 0.2*e.rng.Float64()
	d := time.Duration(wait * float64(time.Second))
	return min(max(d, time.Second), e.cfg.MaxRetryAfter)
}

// overdue reports whether a queued client's turn has already come: it is
// in the jump lane, or dispatch has moved past its place in the normal lane
// (clients queued after it have started, because it was offline). Online,
// such a client is ahead of every online client whose turn has not come,
// so it is served within a few slot turnovers if it stays connected.
func (e *Engine) overdue(en *entry) bool {
	switch en.lane {
	case LaneJump:
		return true
	case LaneNormal:
		return e.front.sampling && e.front.epoch == e.normal.epoch && en.seq < e.front.seq
	}
	return false
}

// frontier tracks how far and how fast dispatch has moved through the
// normal lane, in sequence numbers per second, sampled at least 10 s
// apart. It only moves forward within a numbering epoch: when an overdue
// client (offline at its turn, so passed by newer ones) is served late, the
// clients between it and the frontier are still overdue. (It used to start
// over whenever a lower seq was dispatched, as if the lane had been
// renumbered, which made every overdue client "not overdue" again and sent
// it away with a retry-after: passive clients missed their turn again and
// again in fleets where most of them are offline.)
type frontier struct {
	epoch    uint64  // the lane numbering epoch of seq
	seq      uint64  // highest seq dispatched from the normal lane in epoch
	sampleT  int64   // Unix ms of the last sample
	sampleQ  uint64  // seq at the last sample
	speed    float64 // EWMA, seqs per second; 0 until measured
	sampling bool
}

func (f *frontier) dispatched(t int64, seq, epoch uint64) {
	if epoch != f.epoch {
		*f = frontier{epoch: epoch} // the lane restarted its numbering: start over
	}
	if f.sampling && seq <= f.seq {
		return // a client served after newer ones: the frontier stays ahead
	}
	f.seq = seq
	if !f.sampling {
		f.sampleT, f.sampleQ, f.sampling = t, seq, true
		return
	}
	if dt := t - f.sampleT; dt >= 10_000 {
		v := float64(seq-f.sampleQ) / (float64(dt) / 1000)
		if f.speed == 0 {
			f.speed = v
		} else {
			f.speed += (v - f.speed) * 0.3
		}
		f.sampleT, f.sampleQ = t, seq
	}
}

// lookup finds a client's index, or fails with CodeUnknownClient.
func (e *Engine) lookup(id ClientID) (int32, error) {
	i, ok := e.byID[id]
	if !ok {
		return 0, Errorf(CodeUnknownClient, "unknown client %s", id)
	}
	return i, nil
}

// Disconnect marks a client offline (its connection closed, or a passive
// client finished its check-in).
func (e *Engine) Disconnect(now time.Time, id ClientID) error {
	i, err := e.lookup(id)
	if err != nil {
		return err
	}
	e.setOnline(i, false)
	return nil
}

// Unreached undoes the start of client id's upgrade when its offer
// reached no connection: the client left (a passive client's linger ran
// out) in the moment its slot came, and the slot would otherwise wait for
// it until it came back or the lease ended, after which it was counted a
// failed attempt and held back by a backoff. The slot is freed at once,
// the attempt not counted, and the client goes to the tail of the jump
// lane: its turn had come, so it is first in line when it is back (and is
// told it is overdue). The undo applies only while the client is
// upgrading on d's very start (its attempt, its lease) and has not
// checked in since (flagBack): a client that came back heard of its
// upgrade with its check-in's answer and may be installing.
//
// gone says the offer was for a connection the transport saw close. The
// client may then still count as online: the transport reports the offer
// it could not deliver and the end of the connection separately, and the
// Disconnect can come second; so the start is undone and the client taken
// offline all the same. (The undo used to require the client offline,
// which lost that race: the start held its slot until the lease ran out,
// failed, and after the backoff the client went to the back of the queue:
// the 4 late passive clients of tls26.) Without gone (no connection
// known: a client checking in over HTTPS stays online without one while
// it upgrades) an online client keeps its start.
func (e *Engine) Unreached(now time.Time, d Dispatch, gone bool) error {
	i, err := e.lookup(d.Client)
	if err != nil {
		return err
	}
	en := &e.ents[i]
	if en.state != StateUpgrading || en.flags&flagBack != 0 || int(en.attempts) != d.Attempt || en.deadline != d.Lease.UnixMilli() {
		return nil
	}
	if en.flags&flagOnline != 0 && !gone {
		return nil
	}
	e.setOnline(i, false)
	t := ms(now)
	en.attempts--
	en.deadline = 0 // its lease heap entry is stale from here
	e.enqueue(t, i, LaneJump)
	ev := e.event(EvQueued, t, en)
	ev.Lane, ev.Position = en.lane, e.position(en)
	e.emit(ev)
	return nil
}

// Progress renews the lease of an upgrade in flight.
func (e *Engine) Progress(now time.Time, id ClientID, bytesDone uint64) error {
	i, err := e.lookup(id)
	if err != nil {
		return err
	}
	en := &e.ents[i]
	if en.state != StateUpgrading {
		return Errorf(CodeNotUpgrading, "client %s is %s, not upgrading", id, en.state)
	}
	t := ms(now)
	e.renewLease(t, i)
	ev := e.event(EvProgress, t, en)
	ev.Bytes = bytesDone
	e.emit(ev)
	return nil
}

// renewLease gives upgrading client i a full lease from t, at most four
// times per lease: each renewal is a durable write.
func (e *Engine) renewLease(t int64, i int32) {
	en := &e.ents[i]
	lease := e.settings.LeaseTime.Milliseconds()
	if nd := t + lease; nd-en.deadline >= lease/4 {
		en.deadline = nd
		e.leases.Push(item{nd, i})
		e.markDirty(i)
	}
}

// Fail records a failed upgrade attempt reported by the client.
func (e *Engine) Fail(now time.Time, id ClientID, reason string) error {
	i, err := e.lookup(id)
	if err != nil {
		return err
	}
	if e.ents[i].state != StateUpgrading {
		return Errorf(CodeNotUpgrading, "client %s is %s, not upgrading", id, e.ents[i].state)
	}
	e.failAttempt(ms(now), i, reason)
	return nil
}

// failAttempt frees the slot of a failed attempt at once and either
// schedules a retry with backoff or, past the limit, marks the client failed.
func (e *Engine) failAttempt(t int64, i int32, reason string) {
	en := &e.ents[i]
	en.finishedAt = t
	if !e.outdated(en) {
		// A release made the version it runs the target meanwhile:
		// nothing left to retry.
		e.makeCurrent(t, i)
		return
	}
	e.lastErr[i] = truncate(reason, 256)
	if int(en.attempts) >= e.settings.RetryLimit {
		e.setState(i, StateFailed)
		ev := e.event(EvFailed, t, en)
		ev.Error = e.lastErr[i]
		e.emit(ev)
		return
	}
	d := e.backoff(int(en.attempts))
	en.deadline = t + d.Milliseconds()
	en.flags |= flagDelayed
	e.enqueue(t, i, e.laneFor(i))
	e.delayed.Push(item{en.deadline, i})
	ev := e.event(EvRetryScheduled, t, en)
	ev.Error = e.lastErr[i]
	ev.Lane = en.lane
	e.emit(ev)
}

// backoff is RetryBase·2^(attempt-1), capped at RetryMax, with equal jitter
// (half fixed, half random) so that a burst of failures does not come back
// as a burst.
func (e *Engine) backoff(attempt int) time.Duration {
	d := e.settings.RetryBase
	for k := 1; k < attempt && d < e.settings.RetryMax; k++ {
		d *= 2
	}
	d = min(d, e.settings.RetryMax)
	half := d / 2
	return half + time.Duration(e.rng.Int64N(int64(half)+1))
}

// JumpResult is the answer to a console's jump attempt.
type JumpResult uint8

const (
	JumpAllowed        JumpResult = 1 // current and online: go ahead
	JumpUpgradePending JumpResult = 2 // outdated: refused; now at the front of the queue
	JumpOffline        JumpResult = 3 // current but not connected
)

func (r JumpResult) String() string {
	switch r {
	case JumpAllowed:
		return "allowed"
	case JumpUpgradePending:
		return "upgrade_pending"
	case JumpOffline:
		return "offline"
	}
	return "unknown"
}

// MarshalText names the result in JSON.
func (r JumpResult) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses a result name.
func (r *JumpResult) UnmarshalText(b []byte) error {
	for _, x := range []JumpResult{JumpAllowed, JumpUpgradePending, JumpOffline} {
		if x.String() == string(b) {
			*r = x
			return nil
		}
	}
	return Errorf(CodeBadRequest, "unknown jump result %q", b)
}

// JumpAnswer is what a console is told.
type JumpAnswer struct {
	Result   JumpResult
	State    State
	Lane     Lane
	Position int
	Version  Version
	Target   Version
}

// Jump handles a console's attempt to jump to a client. An outdated client
// is never jumpable: the attempt is refused with "upgrade pending" and the
// client moves to the jump lane (ahead of every normal entry, FIFO among
// jumps). waiter (non-zero) is told through Output.JumpReady when the client
// becomes current.
func (e *Engine) Jump(now time.Time, id ClientID, waiter uint64) (JumpAnswer, error) {
	i, err := e.lookup(id)
	if err != nil {
		return JumpAnswer{}, err
	}
	t := ms(now)
	en := &e.ents[i]
	if (en.state == StatePending || en.state == StateFailed) && !e.outdated(en) {
		e.makeCurrent(t, i) // a release made its version the target
	}
	if en.state == StateCurrent && !e.outdated(en) {
		r := JumpOffline
		if en.flags&flagOnline != 0 {
			r = JumpAllowed
		}
		return JumpAnswer{Result: r, State: en.state, Version: en.ver, Target: e.site[en.platform]}, nil
	}
	switch en.state {
	case StateCurrent: // outdated, not yet seen since the release
		e.enqueue(t, i, LaneJump)
	case StateFailed:
		en.attempts = 0
		delete(e.lastErr, i)
		e.enqueue(t, i, LaneJump)
	case StatePending:
		if en.lane != LaneJump {
			delayed := en.flags & flagDelayed
			e.dequeue(i)
			en.flags |= delayed
			e.enqueue(t, i, LaneJump)
		}
	}
	// The client is marked as jumped even without a waiter (an admin's
	// jump), so that its retries stay in the jump lane and jump_ready is
	// published when it becomes current.
	ws := e.waiters[i]
	if waiter != 0 && len(ws) < e.cfg.MaxJumpWaiters {
		ws = append(ws, waiter)
	}
	e.waiters[i] = ws
	en = &e.ents[i]
	ev := e.event(EvJumpRequested, t, en)
	ev.Lane, ev.Position = en.lane, e.position(en)
	e.emit(ev)
	return JumpAnswer{Result: JumpUpgradePending, State: en.state, Lane: en.lane, Position: ev.Position,
		Version: en.ver, Target: e.site[en.platform]}, nil
}

// SetSettings replaces the settings. Lowering MaxConcurrent cancels nothing:
// no upgrade starts until in-flight falls below the new value.
func (e *Engine) SetSettings(now time.Time, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s == e.settings {
		return nil // nothing changed: nothing to write or announce
	}
	e.settings = s
	e.lim.SetLimitAt(now, rate.Limit(s.StartsPerSec))
	e.lim.SetBurstAt(now, s.StartBurst)
	e.putMeta(MetaSettings, s)
	e.emit(Event{Type: EvSettingsChanged, At: now, Settings: &s})
	return nil
}

// Meta names under which the engine persists its metadata.
const (
	MetaSettings = "settings"
	MetaReleases = "releases"
)

func (e *Engine) putMeta(name string, v any) {
	if e.out.Meta == nil {
		e.out.Meta = make(map[string]any)
	}
	e.out.Meta[name] = v
}

// PublishRelease installs a release. A site release sets new targets; the
// fleet is not rewritten: clients are queued at their next check-in, and
// online ones are found by a sweep that examines SweepBatch clients per
// tick. A base-software release changes nothing for clients.
func (e *Engine) PublishRelease(now time.Time, r Release) error {
	if err := r.validate(); err != nil {
		return err
	}
	found := r.Requires == ""
	for _, old := range e.releases {
		if old.ID == r.ID {
			return Errorf(CodeDuplicateRelease, "release %s is already installed", r.ID)
		}
		if old.ID == r.Requires {
			found = true
		}
	}
	if !found {
		return Errorf(CodeDependencyMissing, "release %s requires %s, which is not installed", r.ID, r.Requires)
	}
	r.PublishedAt = now.UTC()
	e.releases = append(e.releases, r)
	e.applyRelease(&r)
	if r.Kind == ReleaseSite {
		e.sweepAt = 0
	}
	e.putMeta(MetaReleases, e.releases)
	e.emit(Event{Type: EvReleasePublished, At: now, Release: r.ID})
	return nil
}

func (e *Engine) applyRelease(r *Release) {
	if r.Kind != ReleaseSite {
		return
	}
	// Re-key the current-version histogram is unnecessary: it is keyed by
	// version, and staleness is judged against the target when read.
	for _, t := range r.Targets {
		e.site[t.Platform] = t.Version
		e.siteRel[t.Platform] = r.ID
	}
}

// Retry gives a failed client a fresh set of attempts.
func (e *Engine) Retry(now time.Time, id ClientID) error {
	i, err := e.lookup(id)
	if err != nil {
		return err
	}
	if e.ents[i].state != StateFailed {
		return Errorf(CodeBadRequest, "client %s is %s, not failed", id, e.ents[i].state)
	}
	e.retry(ms(now), i)
	return nil
}

func (e *Engine) retry(t int64, i int32) {
	en := &e.ents[i]
	en.attempts = 0
	delete(e.lastErr, i)
	if e.outdated(en) {
		e.enqueue(t, i, e.laneFor(i))
	} else {
		e.makeCurrent(t, i)
	}
	e.emit(e.event(EvRetried, t, &e.ents[i]))
}

// RetryFailed retries up to limit failed clients and returns how many.
func (e *Engine) RetryFailed(now time.Time, limit int) int {
	t, n := ms(now), 0
	for i := range e.ents {
		if n >= limit {
			break
		}
		if e.ents[i].state == StateFailed {
			e.retry(t, int32(i))
			n++
		}
	}
	return n
}
