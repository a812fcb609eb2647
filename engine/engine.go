// Package engine is jumpfleet's fleet-upgrade state machine.
//
// The Engine is synchronous and deterministic, in the style of etcd's raft:
// every input carries an explicit now, nothing reads a clock, sleeps, does
// I/O or starts a goroutine. Inputs (check-ins, progress, failures, jumps,
// admin changes, ticks) mutate the in-memory index and accumulate an Output:
// the client records and metadata to write, the upgrades to push and the
// events to publish. The Node (node.go) is the thin driver around it: it
// batches requests, commits each turn's Output to Pebble with one synced
// batch, and only then answers requests and performs the effects.
//
// Queue discipline: two FIFO lanes, jump before normal. A client is queued
// the first time it checks in while outdated, at most once. Dispatch gives a
// free slot (in-flight < MaxConcurrent) and a start token to the first online,
// due client of the jump lane, else of the normal lane.
package engine

import (
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"

	"jumpfleet/store"
)

// Config configures a new Engine.
type Config struct {
	Settings Settings
	// Seed seeds the retry jitter so that runs are reproducible.
	Seed uint64
	// MaxJumpWaiters caps the consoles waiting on one client (default 16).
	MaxJumpWaiters int
	// SweepBatch is how many clients a tick examines when a new release
	// has made online clients outdated (default 4096): publishing never does
	// O(fleet) work in one turn.
	SweepBatch int
	// MaxRetryAfter caps the retry-after told to a pending passive client
	// (default 1h). Estimates go stale when the dispatch frontier speeds up
	// (it races through clients that are offline), and a check-in costs
	// microseconds while a missed turn costs hours: 600,000 passive
	// clients at a 1h cap are ~170 check-ins/s.
	MaxRetryAfter time.Duration
}

// entry is the compact in-memory form of a client: what the hot path needs
// and enough to rewrite its record without reading it back. Keep it small;
// it is multiplied by the fleet size.
type entry struct {
	id          ClientID
	seq         uint64 // position key inside lane
	deadline    int64  // Unix ms: lease deadline (upgrading) or not-before (pending)
	lastCheckIn int64  // Unix ms
	queuedAt    int64
	startedAt   int64
	finishedAt  int64
	ver         Version
	kind        Kind
	platform    Platform
	state       State
	lane        Lane
	attempts    uint8
	flags       uint8
}

const (
	flagOnline  uint8 = 1 << iota
	flagDirty         // in Output.records
	flagInHeap        // has an entry in its lane's ready heap
	flagDelayed       // pending, waiting for its not-before time
	flagBack          // upgrading, and checked in since the start (Unreached)
)

// Engine is the state machine. It is not safe for concurrent use: one
// goroutine (the Node's loop) owns it.
type Engine struct {
	cfg      Config
	settings Settings
	lim      *rate.Limiter
	rng      *rand.Rand

	releases []Release
	site     [NumPlatforms]Version // target per platform; zero: none
	siteRel  [NumPlatforms]string

	byID map[ClientID]int32
	ents []entry

	jump, normal lane
	// ready heaps hold online queued clients by seq (lazy; see item).
	readyJump, readyNormal minHeap
	leases                 minHeap // upgrading clients by lease deadline
	delayed                minHeap // pending clients by not-before

	waiters  map[int32][]uint64 // consoles waiting for a client to be current
	lastErr  map[int32]string   // only clients with an error
	inFlight int

	counts  [numStates][numKinds]int
	online  [numKinds]int
	current map[verKey]int // current-state clients by (platform, version)

	sweepAt int // next entry the release sweep examines; -1 when idle

	done    doneRing
	meanDur float64 // EWMA of upgrade durations, seconds
	front   frontier

	out Output
}

type verKey struct {
	p Platform
	v Version
}

// New returns an empty engine. Restore records into it before use.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Settings.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxJumpWaiters <= 0 {
		cfg.MaxJumpWaiters = 16
	}
	if cfg.SweepBatch <= 0 {
		cfg.SweepBatch = 4096
	}
	if cfg.MaxRetryAfter <= 0 || cfg.MaxRetryAfter > 24*time.Hour {
		cfg.MaxRetryAfter = time.Hour
	}
	e := &Engine{
		cfg:      cfg,
		settings: cfg.Settings,
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		byID:     make(map[ClientID]int32),
		waiters:  make(map[int32][]uint64),
		lastErr:  make(map[int32]string),
		current:  make(map[verKey]int),
		sweepAt:  -1,
		meanDur:  cfg.Settings.LeaseTime.Seconds() / 2,
	}
	e.lim = rate.NewLimiter(rate.Limit(e.settings.StartsPerSec), e.settings.StartBurst)
	return e, nil
}

// Settings returns the settings in force.
func (e *Engine) Settings() Settings { return e.settings }

// Releases returns the published releases, oldest first.
func (e *Engine) Releases() []Release {
	out := make([]Release, len(e.releases))
	for i, r := range e.releases {
		r.Targets = append([]Target(nil), r.Targets...)
		out[i] = r
	}
	return out
}

// Target returns the site version clients of platform p must run (zero if
// no site release names p).
func (e *Engine) Target(p Platform) Version {
	if !p.Valid() {
		return Version{}
	}
	return e.site[p]
}

// InFlight is the number of upgrades holding a slot.
func (e *Engine) InFlight() int { return e.inFlight }

// Len is the number of known clients.
func (e *Engine) Len() int { return len(e.ents) }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

func (e *Engine) outdated(en *entry) bool {
	t := e.site[en.platform]
	return !t.IsZero() && en.ver != t
}

// markDirty schedules en's record for this turn's batch.
func (e *Engine) markDirty(i int32) {
	en := &e.ents[i]
	if en.flags&flagDirty == 0 {
		en.flags |= flagDirty
		e.out.dirty = append(e.out.dirty, i)
	}
}

// setState moves a client between states, keeping the counters true.
func (e *Engine) setState(i int32, s State) {
	en := &e.ents[i]
	if en.state == s {
		return
	}
	e.uncount(en)
	en.state = s
	e.count(en)
	e.markDirty(i)
}

func (e *Engine) count(en *entry) {
	e.counts[en.state][en.kind]++
	if en.state == StateCurrent {
		e.current[verKey{en.platform, en.ver}]++
	}
	if en.state == StateUpgrading {
		e.inFlight++
	}
}

func (e *Engine) uncount(en *entry) {
	e.counts[en.state][en.kind]--
	if en.state == StateCurrent {
		k := verKey{en.platform, en.ver}
		if e.current[k]--; e.current[k] == 0 {
			delete(e.current, k)
		}
	}
	if en.state == StateUpgrading {
		e.inFlight--
	}
}

func (e *Engine) setOnline(i int32, on bool) {
	en := &e.ents[i]
	if (en.flags&flagOnline != 0) == on {
		return
	}
	if on {
		en.flags |= flagOnline
		e.online[en.kind]++
		e.makeReady(i)
	} else {
		en.flags &^= flagOnline
		e.online[en.kind]--
	}
}

// laneOf returns the lane structure and ready heap of l.
func (e *Engine) laneOf(l Lane) (*lane, *minHeap) {
	if l == LaneJump {
		return &e.jump, &e.readyJump
	}
	return &e.normal, &e.readyNormal
}

// enqueue appends a client to the tail of lane l and makes it pending.
func (e *Engine) enqueue(now int64, i int32, l Lane) {
	en := &e.ents[i]
	ln, _ := e.laneOf(l)
	en.lane = l
	en.seq = ln.push()
	en.flags &^= flagInHeap
	if en.queuedAt == 0 || en.state != StatePending {
		en.queuedAt = now
	}
	e.setState(i, StatePending)
	e.markDirty(i)
	e.makeReady(i)
}

// dequeue removes a client from its lane.
func (e *Engine) dequeue(i int32) {
	en := &e.ents[i]
	if en.lane == LaneNone {
		return
	}
	ln, _ := e.laneOf(en.lane)
	ln.remove(en.seq)
	en.lane = LaneNone
	en.seq = 0
	en.flags &^= flagInHeap | flagDelayed
	e.markDirty(i)
}

// makeReady puts a queued, online, due client into its lane's ready heap
// (once). Clients still in backoff go to the delayed heap instead.
func (e *Engine) makeReady(i int32) {
	en := &e.ents[i]
	if en.state != StatePending || en.lane == LaneNone || en.flags&flagOnline == 0 || en.flags&flagInHeap != 0 {
		return
	}
	if en.flags&flagDelayed != 0 {
		return // the delayed heap will bring it back
	}
	_, h := e.laneOf(en.lane)
	h.Push(item{int64(en.seq), i})
	en.flags |= flagInHeap
}

// position is the client's 1-based place in the whole queue (0 if it is
// not queued).
func (e *Engine) position(en *entry) int {
	switch en.lane {
	case LaneJump:
		return e.jump.ahead(en.seq) + 1
	case LaneNormal:
		return e.jump.count + e.normal.ahead(en.seq) + 1
	}
	return 0
}

func (e *Engine) emit(ev Event) { e.out.Events = append(e.out.Events, ev) }

func (e *Engine) event(t EventType, now int64, en *entry) Event {
	return Event{Type: t, At: fromMS(now), Client: en.id, Kind: en.kind, Platform: en.platform,
		State: en.state, Version: en.ver, Target: e.site[en.platform], Attempt: int(en.attempts)}
}

// record builds the durable record of entry i.
func (e *Engine) record(i int32, r *store.ClientRecord) {
	en := &e.ents[i]
	*r = store.ClientRecord{
		ID: en.id, Kind: uint8(en.kind), Platform: uint8(en.platform), State: uint8(en.state),
		Lane: uint8(en.lane), Version: [3]uint16{en.ver.Major, en.ver.Minor, en.ver.Patch},
		Revision: en.ver.Revision, Attempts: en.attempts, Seq: en.seq,
		LastCheckIn: en.lastCheckIn, QueuedAt: en.queuedAt, StartedAt: en.startedAt,
		FinishedAt: en.finishedAt, LastError: e.lastErr[i],
	}
	switch en.state {
	case StateUpgrading:
		r.LeaseDeadline = en.deadline
	case StatePending:
		if en.flags&flagDelayed != 0 {
			r.NotBefore = en.deadline
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
