// Package sim rolls a release out over a simulated fleet, in process, on
// virtual time: no sockets, no sleeps, one seed. It drives the real engine
// (and, with Durable, the real store on Pebble's in-memory file system) and
// checks the invariants of DESIGN.md as it goes.
package sim

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"jumpfleet/engine"
	"jumpfleet/internal/heapq"
	"jumpfleet/store"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Config describes a simulated rollout.
type Config struct {
	Clients       int
	PassiveFrac   float64 // share of passive Jump clients
	JumpointFrac  float64 // share of Jumpoints
	MaxConcurrent int
	StartsPerSec  float64 // 0: enough never to bind (2·MaxConcurrent/UpgradeTime, at least 10)
	StartBurst    int     // 0: MaxConcurrent
	UpgradeTime   time.Duration
	UpgradeJitter float64 // each upgrade takes UpgradeTime·(1±jitter), uniform
	FailRate      float64 // share of attempts that fail halfway
	JumpRate      float64 // console jumps per second onto pending clients
	// Spread is how long the active clients take to reconnect after the
	// server upgrade (uniform).
	Spread time.Duration
	// PassivePeriod is the longest a passive client stays away (24h).
	PassivePeriod time.Duration
	// MaxRetryAfter caps the retry-after the engine gives a pending
	// passive client (engine Config.MaxRetryAfter; 0: its default, 1 h).
	MaxRetryAfter time.Duration
	// PassiveBurst, if set, brings every passive client's first check-in
	// within this window after the start (uniform) instead of at a random
	// phase of its period: a passive fleet whose clients last checked in
	// together, as one enrolled or restarted at once has.
	PassiveBurst time.Duration
	// PassiveLinger is how long a passive client stays connected after a
	// check-in, waiting for its slot, before it leaves.
	PassiveLinger time.Duration
	LeaseTime     time.Duration
	Seed          uint64
	// Durable commits every turn to Pebble (in-memory FS, synced batches).
	Durable bool
	// RestartAt (Durable only) crashes the server at this virtual time:
	// the engine is rebuilt from a crash image of the store (only synced
	// data survives), every client must reconnect, and every client's
	// state, lane and queue position must be as acknowledged before.
	RestartAt time.Duration
	// CheckEvery runs the full O(fleet) invariant check every n turns (1:
	// every turn). Cheap invariants are checked every turn regardless.
	CheckEvery int
	// MaxTime stops the run (virtual time) if it has not converged.
	MaxTime time.Duration
}

func (c *Config) defaults() error {
	if c.Clients <= 0 {
		return fmt.Errorf("clients must be positive")
	}
	if c.MaxConcurrent <= 0 {
		return fmt.Errorf("max-concurrent must be positive")
	}
	if c.UpgradeTime <= 0 {
		c.UpgradeTime = 60 * time.Second
	}
	if c.StartsPerSec == 0 {
		c.StartsPerSec = max(10, 2*float64(c.MaxConcurrent)/c.UpgradeTime.Seconds())
	}
	if c.StartBurst == 0 {
		c.StartBurst = c.MaxConcurrent
	}
	if c.Spread == 0 {
		c.Spread = time.Minute
	}
	if c.PassivePeriod == 0 {
		c.PassivePeriod = 24 * time.Hour
	}
	if c.PassiveLinger == 0 {
		c.PassiveLinger = 20 * time.Second
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = max(10*time.Minute, 3*c.UpgradeTime)
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = 1
		if c.Clients > 20000 {
			c.CheckEvery = 100000
		}
	}
	if c.RestartAt > 0 && !c.Durable {
		return fmt.Errorf("restart-at needs durable")
	}
	if c.MaxTime == 0 {
		c.MaxTime = 365 * 24 * time.Hour
	}
	if c.PassiveFrac < 0 || c.JumpointFrac < 0 || c.PassiveFrac+c.JumpointFrac > 1 {
		return fmt.Errorf("passive and jumpoint shares must be in [0,1] and sum to at most 1")
	}
	return nil
}

// Result is the summary of a run. JSON names are the interface of
// `jumpload sim --json`.
type Result struct {
	Clients        int     `json:"clients"`
	Active         int     `json:"active"`
	Passive        int     `json:"passive"`
	Jumpoints      int     `json:"jumpoints"`
	Upgraded       int     `json:"upgraded"`
	Failed         int     `json:"failed"`
	MaxConcurrent  int     `json:"max_concurrent"`
	MaxInFlight    int     `json:"max_in_flight"`
	Violations     int     `json:"violations"`
	FirstViolation string  `json:"first_violation,omitempty"`
	MakespanS      float64 `json:"makespan_s"`
	BoundS         float64 `json:"bound_s"`
	MakespanRatio  float64 `json:"makespan_ratio"`
	Jumps          int     `json:"jumps"`
	JumpWaitP50S   float64 `json:"jump_wait_p50_s"`
	JumpWaitP99S   float64 `json:"jump_wait_p99_s"` // active clients and Jumpoints
	// Passive clients are offline most of the time: a jump can only start
	// their upgrade at their next check-in.
	PassiveJumpWaitP99S float64 `json:"passive_jump_wait_p99_s,omitempty"`
	// JumpOvertaken counts normal-lane starts while an online jumped
	// client waited for its first start: each breaks invariant 3 and is
	// also counted in Violations.
	JumpOvertaken   int     `json:"jump_overtaken"`
	PassiveLateMaxS float64 `json:"passive_late_max_s"`
	PassiveLate     int     `json:"passive_late_beyond_period"`
	Attempts        int     `json:"attempts"`
	Turns           int     `json:"turns"`
	StartsPerSec    float64 `json:"starts_per_sec"`
	UpgradeTimeS    float64 `json:"upgrade_time_s"`
	Seed            uint64  `json:"seed"`
	Durable         bool    `json:"durable"`
	Restarts        int     `json:"restarts,omitempty"`
	RecoverS        float64 `json:"recover_s,omitempty"`
	WallS           float64 `json:"wall_s"`
	HeapBytesPerCl  float64 `json:"heap_bytes_per_client,omitempty"`
}

type evKind uint8

const (
	evCheckIn evKind = iota
	evLeave          // passive linger over
	evFinish         // upgrade done: client checks in with the target
	evFail           // upgrade fails halfway
	evJump           // a console jumps to a random pending client
)

type simEvent struct {
	at   int64 // Unix ms
	seq  uint64
	kind evKind
	c    int32
	gen  uint32 // for evLeave/evFinish/evFail: the attempt they belong to
}

type client struct {
	id       engine.ClientID
	kind     engine.Kind
	ver      engine.Version
	gen      uint32
	online   bool
	busy     bool  // upgrading (sim side)
	rank     int64 // order in which the client was queued (normal lane)
	jumped   bool
	rejoin   bool // jumped, not started, offline since a restart
	started  int64
	jumpedAt int64
}

// Less orders events by time, then by the order they were scheduled.
func (a simEvent) Less(b simEvent) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

type evHeap = heapq.Heap[simEvent]

// Epoch is the virtual instant the release is published.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

var (
	oldVersion = engine.Version{Major: 24, Minor: 1, Patch: 0, Revision: 100}
	newVersion = engine.Version{Major: 24, Minor: 2, Patch: 0, Revision: 200}
)

// Run simulates one rollout.
func Run(cfg Config) (Result, error) {
	wallStart := time.Now()
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	r := &runner{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7))}
	if err := r.setup(); err != nil {
		return Result{}, err
	}
	defer r.close()
	if err := r.loop(); err != nil {
		return Result{}, err
	}
	res := r.summary()
	res.WallS = time.Since(wallStart).Seconds()
	return res, nil
}

type runner struct {
	cfg       Config
	fs        *vfs.MemFS
	fleetB    *store.Batch
	restarted bool
	rng       *rand.Rand
	eng       *engine.Engine
	db        *store.DB
	clients   []client
	events    evHeap
	evSeq     uint64
	now       int64
	res       Result

	queuedRank       int64
	jumpWaits        []float64 // persistent clients: online when jumped
	passiveJumpWaits []float64
	pendingIDs       []int32 // candidates for console jumps (lazily pruned)
	lastDone         int64
	turns            int
	// waitingJumped counts persistent (always online) clients jumped and
	// not yet started: no normal-lane client may start while it is > 0.
	waitingJumped int
}

func (r *runner) schedule(at int64, k evKind, c int32, gen uint32) {
	r.evSeq++
	r.events.Push(simEvent{at: at, seq: r.evSeq, kind: k, c: c, gen: gen})
}

func (r *runner) setup() error {
	cfg := r.cfg
	s := engine.DefaultSettings()
	s.MaxConcurrent = cfg.MaxConcurrent
	s.StartsPerSec = cfg.StartsPerSec
	s.StartBurst = cfg.StartBurst
	s.LeaseTime = cfg.LeaseTime
	s.RetryBase = 30 * time.Second
	eng, err := engine.New(engine.Config{Settings: s, Seed: cfg.Seed, MaxRetryAfter: cfg.MaxRetryAfter})
	if err != nil {
		return err
	}
	r.eng = eng
	if cfg.Durable {
		// Only a crash image needs the (slower) crashable FS.
		var fs vfs.FS = vfs.NewMem()
		if cfg.RestartAt > 0 {
			r.fs = vfs.NewCrashableMem()
			fs = r.fs
		}
		db, err := store.Open("sim", store.Options{FS: fs})
		if err != nil {
			return err
		}
		r.db = db
	}
	// The fleet exists before the server upgrade: restore it as records
	// (all on the old version, all offline), as after a restart.
	r.clients = make([]client, cfg.Clients)
	nPassive := int(math.Round(float64(cfg.Clients) * cfg.PassiveFrac))
	nJumpoint := int(math.Round(float64(cfg.Clients) * cfg.JumpointFrac))
	var rec store.ClientRecord
	for i := range r.clients {
		c := &r.clients[i]
		c.id[0], c.id[1], c.id[2], c.id[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		c.id[15] = 1
		c.kind = engine.KindActive
		switch {
		case i < nPassive:
			c.kind = engine.KindPassive
		case i < nPassive+nJumpoint:
			c.kind = engine.KindJumpoint
		}
		c.ver = oldVersion
		c.rank = -1
		rec = store.ClientRecord{ID: c.id, Kind: uint8(c.kind), Platform: uint8(engine.PlatformWindowsX64),
			State: uint8(engine.StateCurrent), Version: [3]uint16{oldVersion.Major, oldVersion.Minor, oldVersion.Patch},
			Revision: oldVersion.Revision}
		if err := eng.Restore(&rec); err != nil {
			return err
		}
		if r.db != nil {
			if err := r.writeFleet(&rec, i == len(r.clients)-1); err != nil {
				return err
			}
		}
		switch c.kind {
		case engine.KindPassive:
			r.res.Passive++
			first := cfg.PassivePeriod
			if cfg.PassiveBurst > 0 {
				first = min(cfg.PassiveBurst, first)
			}
			r.schedule(ms(Epoch)+r.rng.Int64N(max(first.Milliseconds(), 1)), evCheckIn, int32(i), 0)
		default:
			if c.kind == engine.KindJumpoint {
				r.res.Jumpoints++
			} else {
				r.res.Active++
			}
			r.schedule(ms(Epoch)+r.rng.Int64N(max(cfg.Spread.Milliseconds(), 1)), evCheckIn, int32(i), 0)
		}
	}
	eng.FinishRestore(Epoch)
	rel := engine.Release{ID: "site-24.2.0", Kind: engine.ReleaseSite,
		Targets: []engine.Target{{Platform: engine.PlatformWindowsX64, Version: newVersion}}}
	if err := eng.PublishRelease(Epoch, rel); err != nil {
		return err
	}
	if cfg.JumpRate > 0 {
		r.scheduleJump(ms(Epoch))
	}
	r.now = ms(Epoch)
	return r.commit()
}

// writeFleet stores the initial fleet in batches, so that a restart finds
// every client in the store.
func (r *runner) writeFleet(rec *store.ClientRecord, last bool) error {
	if r.fleetB == nil {
		r.fleetB = r.db.NewBatch()
	}
	r.fleetB.PutClient(rec)
	if r.fleetB.Len() >= 10_000 || last {
		if err := r.db.Commit(r.fleetB, last); err != nil {
			return err
		}
		r.fleetB.Reset()
	}
	if last {
		r.fleetB.Close()
		r.fleetB = nil
	}
	return nil
}

// restart crashes the server: the engine is rebuilt from a crash image of
// the store, the acknowledged state of every client is compared, and every
// persistent client reconnects within the spread.
func (r *runner) restart(now time.Time) error {
	type ack struct {
		state engine.State
		lane  engine.Lane
		pos   int
	}
	before := make([]ack, len(r.clients))
	for i := range r.clients {
		c, _ := r.eng.Client(r.clients[i].id)
		before[i] = ack{c.State, c.Lane, c.Position}
	}
	crashed := r.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(r.cfg.Seed, 11))})
	_ = r.db.Close()
	start := time.Now()
	db, err := store.Open("sim", store.Options{FS: crashed})
	if err != nil {
		return err
	}
	eng, _, err := engine.Recover(db, engine.Config{Settings: r.eng.Settings(), Seed: r.cfg.Seed + 1, MaxRetryAfter: r.cfg.MaxRetryAfter}, now)
	if err != nil {
		return err
	}
	r.res.RecoverS = time.Since(start).Seconds()
	r.db, r.eng, r.fs = db, eng, crashed
	r.res.Restarts++
	for i := range r.clients {
		c := &r.clients[i]
		got, _ := eng.Client(c.id)
		if a := (ack{got.State, got.Lane, got.Position}); a != before[i] {
			r.violation(fmt.Sprintf("restart changed client %s: %+v → %+v", c.id, before[i], a))
		}
		c.online = false
		if c.kind == engine.KindPassive {
			continue // comes back on its own schedule
		}
		if c.jumped && c.started == 0 {
			r.waitingJumped-- // counted again when it is back online
			c.rejoin = true
		}
		r.schedule(ms(now)+r.rng.Int64N(max(r.cfg.Spread.Milliseconds(), 1)), evCheckIn, int32(i), 0)
	}
	return eng.CheckInvariants()
}

func (r *runner) close() {
	if r.db != nil {
		_ = r.db.Close()
	}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func (r *runner) scheduleJump(from int64) {
	gap := r.rng.ExpFloat64() / r.cfg.JumpRate * 1000
	r.schedule(from+int64(gap)+1, evJump, -1, 0)
}

// done reports whether every client has converged.
func (r *runner) done() bool {
	return r.res.Upgraded+r.res.Failed >= r.cfg.Clients
}

func (r *runner) loop() error {
	maxT := ms(Epoch) + r.cfg.MaxTime.Milliseconds()
	for !r.done() {
		next := int64(math.MaxInt64)
		if len(r.events) > 0 {
			next = r.events[0].at
		}
		if at, ok := r.eng.NextDeadline(time.UnixMilli(r.now)); ok && at.UnixMilli() < next {
			next = max(at.UnixMilli(), r.now)
		}
		if next == math.MaxInt64 {
			return fmt.Errorf("simulation stalled at %s with %d upgraded, %d failed of %d",
				time.Duration(r.now-ms(Epoch))*time.Millisecond, r.res.Upgraded, r.res.Failed, r.cfg.Clients)
		}
		if next > maxT {
			return fmt.Errorf("no convergence within %s: %d upgraded, %d failed of %d", r.cfg.MaxTime, r.res.Upgraded, r.res.Failed, r.cfg.Clients)
		}
		r.now = next
		now := time.UnixMilli(next)
		for len(r.events) > 0 && r.events[0].at == next {
			if err := r.apply(now, r.events.Pop()); err != nil {
				return err
			}
		}
		r.eng.Tick(now)
		if err := r.commit(); err != nil {
			return err
		}
		r.turns++
		if r.cfg.RestartAt > 0 && !r.restarted && next >= ms(Epoch)+r.cfg.RestartAt.Milliseconds() {
			r.restarted = true
			if err := r.restart(now); err != nil {
				return err
			}
		}
		if r.eng.InFlight() > r.res.MaxInFlight {
			r.res.MaxInFlight = r.eng.InFlight()
		}
		if r.turns%r.cfg.CheckEvery == 0 {
			if err := r.eng.CheckInvariants(); err != nil {
				r.violation(err.Error())
			}
		}
	}
	return r.eng.CheckInvariants()
}

func (r *runner) violation(msg string) {
	if r.res.Violations == 0 {
		r.res.FirstViolation = fmt.Sprintf("t=%s: %s", time.Duration(r.now-ms(Epoch))*time.Millisecond, msg)
	}
	r.res.Violations++
}

func (r *runner) apply(now time.Time, ev simEvent) error {
	t := ms(now)
	switch ev.kind {
	case evCheckIn:
		c := &r.clients[ev.c]
		a, err := r.eng.CheckIn(now, engine.CheckIn{ID: c.id, Kind: c.kind, Platform: engine.PlatformWindowsX64, Version: c.ver})
		if err != nil {
			return err
		}
		c.online = true
		if c.rejoin {
			c.rejoin = false
			if c.started == 0 {
				r.waitingJumped++
			}
		}
		if a.State == engine.StatePending && c.rank < 0 && a.Lane == engine.LaneNormal {
			c.rank = r.queuedRank
			r.queuedRank++
			if r.cfg.JumpRate > 0 {
				r.pendingIDs = append(r.pendingIDs, ev.c)
			}
		}
		if c.kind == engine.KindPassive && !c.busy {
			r.schedule(t+r.cfg.PassiveLinger.Milliseconds(), evLeave, ev.c, c.gen)
			if a.State == engine.StatePending || a.State == engine.StateFailed {
				back := r.cfg.PassivePeriod
				switch {
				case a.Overdue():
					// Overdue: it stays its linger; if no slot came, it is
					// back soon after.
					back = r.cfg.PassiveLinger + time.Second
				case a.RetryAfter > 0 && a.RetryAfter < back:
					back = a.RetryAfter
				}
				r.schedule(t+back.Milliseconds(), evCheckIn, ev.c, 0)
			}
		}
	case evLeave:
		c := &r.clients[ev.c]
		if c.busy || ev.gen != c.gen || !c.online {
			return nil
		}
		c.online = false
		return r.eng.Disconnect(now, c.id)
	case evFinish:
		c := &r.clients[ev.c]
		if !c.busy || ev.gen != c.gen {
			return nil
		}
		c.busy = false
		c.ver = newVersion
		a, err := r.eng.CheckIn(now, engine.CheckIn{ID: c.id, Kind: c.kind, Platform: engine.PlatformWindowsX64, Version: c.ver})
		if err != nil {
			return err
		}
		if a.State != engine.StateCurrent {
			r.violation(fmt.Sprintf("client %s on the target version is %s", c.id, a.State))
		}
		r.res.Upgraded++
		r.lastDone = t
		if c.kind == engine.KindPassive {
			c.online = false
			return r.eng.Disconnect(now, c.id)
		}
	case evFail:
		c := &r.clients[ev.c]
		if !c.busy || ev.gen != c.gen {
			return nil
		}
		c.busy = false
		if err := r.eng.Fail(now, c.id, "simulated installer failure"); err != nil {
			return err
		}
		if c.kind == engine.KindPassive {
			c.online = false
			if err := r.eng.Disconnect(now, c.id); err != nil {
				return err
			}
			r.schedule(t+r.cfg.PassivePeriod.Milliseconds()/24, evCheckIn, ev.c, 0)
		}
		info, _ := r.eng.Client(c.id)
		if info.State == engine.StateFailed {
			r.res.Failed++
			r.lastDone = t
		}
	case evJump:
		r.jumpOne(now)
		if !r.done() {
			r.scheduleJump(t)
		}
	}
	return nil
}

// jumpOne jumps to a random client that is still waiting in the normal lane.
func (r *runner) jumpOne(now time.Time) {
	for tries := 0; tries < 8 && len(r.pendingIDs) > 0; tries++ {
		k := r.rng.IntN(len(r.pendingIDs))
		ci := r.pendingIDs[k]
		c := &r.clients[ci]
		info, _ := r.eng.Client(c.id)
		if info.State != engine.StatePending || info.Lane != engine.LaneNormal || c.jumped {
			r.pendingIDs[k] = r.pendingIDs[len(r.pendingIDs)-1]
			r.pendingIDs = r.pendingIDs[:len(r.pendingIDs)-1]
			continue
		}
		a, err := r.eng.Jump(now, c.id, uint64(ci)+1)
		if err != nil || a.Result != engine.JumpUpgradePending {
			r.violation(fmt.Sprintf("jump to outdated client %s answered %v %v", c.id, a.Result, err))
			return
		}
		c.jumped = true
		c.jumpedAt = ms(now)
		if c.kind != engine.KindPassive && c.started == 0 {
			if c.online {
				r.waitingJumped++
			} else {
				c.rejoin = true // offline since a restart: counted once back
			}
		}
		r.res.Jumps++
		return
	}
}

// commit takes the turn's output (writing it to Pebble when durable) and
// acts on its dispatches.
func (r *runner) commit() error {
	var b *store.Batch
	if r.db != nil {
		b = r.db.NewBatch()
		defer b.Close()
	}
	out, err := r.eng.TakeOutput(b)
	if err != nil {
		return err
	}
	if b != nil && b.Len() > 0 {
		if err := r.db.Commit(b, true); err != nil {
			return err
		}
	}
	if n := r.eng.InFlight(); n > r.cfg.MaxConcurrent {
		r.violation(fmt.Sprintf("in flight %d > max_concurrent %d", n, r.cfg.MaxConcurrent))
	}
	for _, d := range out.Dispatches {
		ci := clientIndex(d.Client)
		c := &r.clients[ci]
		if !c.online || c.busy {
			r.violation(fmt.Sprintf("dispatch to client %s online=%v busy=%v", c.id, c.online, c.busy))
			continue
		}
		if c.jumped && c.started == 0 && c.kind != engine.KindPassive {
			r.waitingJumped--
		} else if !c.jumped && r.waitingJumped > 0 {
			r.res.JumpOvertaken++
			r.violation(fmt.Sprintf("client %s (normal lane) started while %d jumped clients waited", c.id, r.waitingJumped))
		}
		c.busy = true
		c.gen++
		r.res.Attempts++
		if c.started == 0 {
			c.started = r.now
			if c.jumped {
				w := float64(r.now-c.jumpedAt) / 1000
				if c.kind == engine.KindPassive {
					// Offline most of the time: its wait is its absence.
					r.passiveJumpWaits = append(r.passiveJumpWaits, w)
				} else {
					r.jumpWaits = append(r.jumpWaits, w)
				}
			}
		}
		dur := r.cfg.UpgradeTime.Seconds()
		if r.cfg.UpgradeJitter > 0 {
			dur *= 1 + r.cfg.UpgradeJitter*(2*r.rng.Float64()-1)
		}
		d := int64(dur * 1000)
		if r.cfg.FailRate > 0 && r.rng.Float64() < r.cfg.FailRate {
			r.schedule(r.now+d/2, evFail, ci, c.gen)
		} else {
			r.schedule(r.now+d, evFinish, ci, c.gen)
		}
	}
	return nil
}

func clientIndex(id engine.ClientID) int32 {
	return int32(id[0])<<24 | int32(id[1])<<16 | int32(id[2])<<8 | int32(id[3])
}

func (r *runner) summary() Result {
	cfg := r.cfg
	res := r.res
	res.Clients = cfg.Clients
	res.MaxConcurrent = cfg.MaxConcurrent
	res.Turns = r.turns
	res.Seed = cfg.Seed
	res.Durable = cfg.Durable
	res.Restarts = r.res.Restarts
	res.RecoverS = r.res.RecoverS
	res.StartsPerSec = cfg.StartsPerSec
	res.UpgradeTimeS = cfg.UpgradeTime.Seconds()
	res.MakespanS = float64(r.lastDone-ms(Epoch)) / 1000
	res.BoundS = IdealMakespan(cfg.Clients, cfg.MaxConcurrent, cfg.UpgradeTime, 0, cfg.StartsPerSec, cfg.StartBurst, 0)
	if res.BoundS > 0 {
		res.MakespanRatio = res.MakespanS / res.BoundS
	}
	if len(r.jumpWaits) > 0 {
		slices.Sort(r.jumpWaits)
		res.JumpWaitP50S = quantile(r.jumpWaits, 0.50)
		res.JumpWaitP99S = quantile(r.jumpWaits, 0.99)
	}
	if len(r.passiveJumpWaits) > 0 {
		slices.Sort(r.passiveJumpWaits)
		res.PassiveJumpWaitP99S = quantile(r.passiveJumpWaits, 0.99)
	}
	res.PassiveLateMaxS, res.PassiveLate = r.passiveLateness()
	return res
}

// passiveLateness measures, for each passive client queued in the normal
// lane, how long after its turn it started: its turn is the first start of
// any client queued after it (had it been online, it would have had that
// slot). It returns the worst lateness and how many exceed one period.
func (r *runner) passiveLateness() (float64, int) {
	type q struct {
		rank, start int64
		passive     bool
	}
	var qs []q
	for i := range r.clients {
		c := &r.clients[i]
		if c.rank >= 0 && !c.jumped && c.started != 0 {
			qs = append(qs, q{c.rank, c.started, c.kind == engine.KindPassive})
		}
	}
	slices.SortFunc(qs, func(a, b q) int { return cmp.Compare(a.rank, b.rank) })
	worst, late := 0.0, 0
	suffixMin := int64(math.MaxInt64)
	for i := len(qs) - 1; i >= 0; i-- {
		if qs[i].passive && suffixMin != math.MaxInt64 && qs[i].start > suffixMin {
			l := float64(qs[i].start-suffixMin) / 1000
			worst = math.Max(worst, l)
			if l > r.cfg.PassivePeriod.Seconds() {
				late++
			}
		}
		suffixMin = min(suffixMin, qs[i].start)
	}
	return worst, late
}

// IdealMakespan is the makespan of the ideal schedule that max_concurrent,
// the start rate and the upgrade times allow together: every client
// present at once, each freed slot restarted the instant it frees (no
// offer, fetch or restart time), each upgrade started at the earliest
// instant a slot and a start token are both free, the token bucket full at
// 0 (as golang.org/x/time/rate starts). Upgrades take d·(1±jitter), drawn
// uniformly from seed. With jitter 0 every upgrade takes d, greedy
// earliest start is optimal and this is the lower bound: at least F·d/N
// and at least (F−burst)/rate + d.
//
// With jitter it is that schedule for one draw of the upgrade times, which
// jumpload reports as floor_s: the last upgrades, started as the queue
// runs dry, end up to d·(1+jitter) later, and no broker wins that back
// (4 % of F·d/N at 100,000 clients, 5,000 slots, ±10 % and the first wave
// paced over half an upgrade). Over thousands of upgrades it hardly
// depends on which draw.
func IdealMakespan(clients, slots int, d time.Duration, jitter, rate float64, burst int, seed uint64) float64 {
	if clients <= 0 || slots <= 0 {
		return 0
	}
	rng := rand.New(rand.NewPCG(seed, 0x666c6f6f72))        // "floor"
	free := make(heapq.Heap[slotFree], min(clients, slots)) // when each slot frees, seconds
	tokens, last, end := float64(burst), 0.0, 0.0
	for range clients {
		// Starts never go back in time: a slot freed before the last start
		// waited for the bucket, which held less than a token all that while.
		t := math.Max(float64(free.Pop()), last)
		tokens = math.Min(float64(burst), tokens+(t-last)*rate)
		if tokens < 1 {
			t += (1 - tokens) / rate
			tokens = 1
		}
		tokens--
		last = t
		u := d.Seconds()
		if jitter > 0 {
			u *= 1 - jitter + 2*jitter*rng.Float64()
		}
		free.Push(slotFree(t + u))
		end = math.Max(end, t+u)
	}
	return end
}

// slotFree is when a slot of IdealMakespan's schedule frees, in seconds.
type slotFree float64

func (a slotFree) Less(b slotFree) bool { return a < b }

func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
