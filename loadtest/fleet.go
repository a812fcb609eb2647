package loadtest

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
)

// fleetOps is a fleet as a run drives it: in this process (fleet) or
// spread over load-generator child processes (remoteFleet).
type fleetOps interface {
	// start launches the agents, enrolling with the installer of their kind.
	start(ctx context.Context, installers map[engine.Kind]string) error
	// snapshot is the progress and measurements so far.
	snapshot() Snapshot
	// newEpoch starts counting persistent agents back after a restart.
	newEpoch() error
	// consoles starts the access consoles (one token each) for d.
	consoles(tokens []string, d time.Duration) error
	// stop stops every agent and console and waits for them.
	stop()
	// failed says why the fleet can no longer run (a child process died).
	failed() error
	// turns returns and forgets the agents' first upgrade starts recorded
	// so far (see Recorder.Turn), from every process.
	turns() []Turn
	// flight is the most upgrades in flight at once across the fleet and
	// the starts that exceeded max_concurrent, when the fleet is spread
	// over processes (ok false: the snapshot's own figures are exact).
	flight() (maxInFlight, violations int64, ok bool)
}

// fleet runs the agents of one load process: those whose index is shard
// modulo shards. Every agent and console is a goroutine in wg, stopped by
// stop.
type fleet struct {
	cfg           *Config
	d             Dialer
	rec           *Recorder
	wg            sync.WaitGroup
	shard, shards int
	ctx           context.Context
	cancel        context.CancelFunc
	jumps         atomic.Int64

	connSem chan struct{} // bounds dials in flight

	enrolled atomic.Int64 // agents that enrolled and checked in once
	failedEn atomic.Int64 // agents whose enrollment failed for good

	// The storm scenario's epoch: an agent counts itself reconnected once
	// per epoch, at its first check-in after the epoch began.
	epoch       atomic.Int64
	reconnected atomic.Int64

	// steady: persistent agents check in every Interval instead of
	// heartbeating.
	steady bool

	mu  sync.Mutex
	ids []engine.ClientID // enrolled agents, for consoles to pick from
}

// agent is one simulated Jump client or Jumpoint; owned by its goroutine.
type agent struct {
	idx     int
	spec    AgentSpec
	id      Identity
	version engine.Version
	rng     *rand.Rand
	epoch   int64
	// queued and acked are when the first check-in answered pending or
	// upgrading was sent and answered (zero: never, queued at publish);
	// turned that its first start is recorded.
	queued, acked time.Time
	turned        bool
	// flying is whether this agent's client-observed upgrade interval is
	// open (see beginFlight): it opens when an offer arrives and closes the
	// first time the agent sends what completes the attempt, so it is
	// always inside the broker's slot and never reopens for the same offer.
	flying bool
	// upgraded is whether the broker has answered it current on the
	// target version (counted once).
	upgraded bool
	// hist is a passive agent's recent contacts (nil for the others).
	hist *history
}

func newFleet(cfg *Config, d Dialer, rec *Recorder, shard, shards int) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	return &fleet{cfg: cfg, d: d, rec: rec, connSem: make(chan struct{}, cfg.ConnectConcurrency),
		shard: shard, shards: max(shards, 1), ctx: ctx, cancel: cancel}
}

// start launches this shard's agents: index i of the fleet is a Jumpoint,
// an active or a passive client in that order. Each enrolls with the
// installer for its kind. Agents stop when ctx ends or at stop.
func (f *fleet) start(parent context.Context, installers map[engine.Kind]string) error {
	// The run's context ending stops the agents too (the watcher ends
	// with the fleet).
	f.wg.Go(func() {
		select {
		case <-parent.Done():
			f.cancel()
		case <-f.ctx.Done():
		}
	})
	ctx := f.ctx
	for i := f.shard; i < f.cfg.Fleet(); i += f.shards {
		spec := AgentSpec{Kind: f.kindOf(i), Platform: f.cfg.Platform, Version: f.cfg.FromVersion}
		a := &agent{idx: i, spec: spec, version: spec.Version,
			rng: rand.New(rand.NewPCG(f.cfg.Seed, uint64(i)))}
		if spec.Kind == engine.KindPassive {
			a.hist = new(history)
		}
		f.wg.Go(func() { f.run(ctx, a, installers[spec.Kind]) })
	}
	return nil
}

func (f *fleet) snapshot() Snapshot { return f.snap(true) }

// snap is the fleet's snapshot, with the recorder's histograms if hist.
func (f *fleet) snap(hist bool) Snapshot {
	s := f.rec.snapshot(hist)
	s.Enrolled, s.FailedEnroll = f.enrolled.Load(), f.failedEn.Load()
	s.Reconnected, s.Jumps = f.reconnected.Load(), f.jumps.Load()
	return s
}

func (f *fleet) newEpoch() error {
	f.reconnected.Store(0)
	f.epoch.Add(1)
	return nil
}

// consoles starts this shard's consoles (console c belongs to shard c
// modulo shards), each jumping to this shard's agents for d.
func (f *fleet) consoles(tokens []string, d time.Duration) error {
	cctx, stop := context.WithTimeout(f.ctx, d)
	var cwg sync.WaitGroup
	for i := f.shard; i < len(tokens); i += f.shards {
		cwg.Go(func() { f.runConsole(cctx, i, tokens[i], &f.jumps) })
	}
	f.wg.Go(func() {
		cwg.Wait()
		stop()
	})
	return nil
}

func (f *fleet) failed() error { return nil }

func (f *fleet) flight() (int64, int64, bool) { return 0, 0, false }

func (f *fleet) turns() []Turn { return f.rec.takeTurns() }

func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *fleet) kindOf(i int) engine.Kind {
	switch {
	case i < f.cfg.Jumpoints:
		return engine.KindJumpoint
	case i < f.cfg.Jumpoints+f.cfg.Active:
		return engine.KindActive
	}
	return engine.KindPassive
}

func (f *fleet) acquire(ctx context.Context) bool {
	select {
	case f.connSem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (f *fleet) release() { <-f.connSem }

// enroll redeems the installer, retrying transient refusals with backoff.
func (f *fleet) enroll(ctx context.Context, a *agent, token string) AgentConn {
	give := time.Now().Add(f.cfg.GiveUpAfter)
	for attempt := 0; ; attempt++ {
		if !f.acquire(ctx) {
			return nil
		}
		t0 := time.Now()
		id, c, err := f.d.Enroll(ctx, token, a.spec)
		f.release()
		if err == nil {
			f.rec.Handshake(time.Since(t0))
			a.id = id
			f.mu.Lock()
			f.ids = append(f.ids, id.ID)
			f.mu.Unlock()
			return c
		}
		if ctx.Err() != nil {
			return nil
		}
		switch f.rec.Err(err) {
		case "auth_failed", "installer_invalid", "kind_mismatch", "bad_kind":
			f.failedEn.Add(1)
			return nil // permanent: retrying cannot help
		}
		if time.Now().After(give) {
			f.failedEn.Add(1)
			f.rec.GaveUp()
			return nil
		}
		if !sleepCtx(ctx, f.backoff(a, attempt, 0, "")) {
			return nil
		}
	}
}

// dial reconnects an enrolled agent with capped exponential backoff and
// full jitter, honouring the broker's retry-after. It returns nil when the
// context ends or the agent gives up.
func (f *fleet) dial(ctx context.Context, a *agent, retryAfter time.Duration) AgentConn {
	give := time.Now().Add(f.cfg.GiveUpAfter)
	// The broker's retry-after is already jittered (PROTOCOL.md: it spreads
	// a restart's clients itself), so it is honoured as given.
	if retryAfter > 0 && !sleepCtx(ctx, retryAfter) {
		return nil
	}
	for attempt := 0; ; attempt++ {
		if !f.acquire(ctx) {
			return nil
		}
		t0 := time.Now()
		c, err := f.d.Dial(ctx, a.id)
		f.release()
		if err == nil {
			f.rec.Handshake(time.Since(t0))
			return c
		}
		if ctx.Err() != nil {
			return nil
		}
		f.rec.Err(err)
		if time.Now().After(give) {
			f.rec.GaveUp()
			return nil
		}
		var ra time.Duration
		if e, ok := err.(interface{ RetryAfter() time.Duration }); ok {
			ra = e.RetryAfter()
		}
		if !sleepCtx(ctx, f.backoff(a, attempt, ra, CodeOf(err))) {
			return nil
		}
	}
}

// backoff is min(ceiling, base·2^attempt) with full jitter, and never less
// than the broker's retry-after. The ceiling is ReconnectMax, or
// client.DefaultRefusedMax after a refused connection (code "refused":
// nothing listens, the broker is restarting, and a long sleep would leave
// it idle once back; a shed connection, reset or eof, still backs off
// fully), as the client library does.
func (f *fleet) backoff(a *agent, attempt int, retryAfter time.Duration, code string) time.Duration {
	ceiling := f.cfg.ReconnectMax
	if code == "refused" {
		ceiling = min(ceiling, client.DefaultRefusedMax)
	}
	d := min(f.cfg.ReconnectBase<<min(attempt, 20), ceiling)
	d = time.Duration(a.rng.Int64N(int64(d) + 1))
	return max(d, retryAfter)
}

// checkIn sends one check-in and records it. ok is false when the
// connection failed (the caller reconnects).
func (f *fleet) checkIn(ctx context.Context, a *agent, c AgentConn, flags uint8) (Answer, bool) {
	t0 := time.Now()
	ans, err := c.CheckIn(ctx, a.version, flags)
	if err != nil {
		if ctx.Err() == nil {
			f.rec.Err(err)
			a.hist.add(histFailed, 0, 0, 0)
		}
		return ans, false
	}
	now := time.Now()
	f.rec.CheckIn(now.Sub(t0))
	a.hist.add(histCheckIn, ans.State, ans.Position, ans.RetryAfter)
	if !a.upgraded && ans.State == engine.StateCurrent && a.version == f.cfg.ToVersion {
		// Whichever check-in first lands on the new version (the
		// post-install one, or a later one if that answer was lost).
		a.upgraded = true
		f.rec.Upgraded(now)
	}
	if a.queued.IsZero() && (ans.State == engine.StatePending || ans.State == engine.StateUpgrading) {
		a.queued, a.acked = t0, now
	}
	if e := f.epoch.Load(); a.epoch < e && a.spec.Kind.Persistent() {
		a.epoch = e
		f.reconnected.Add(1)
	}
	return ans, true
}

func (f *fleet) run(ctx context.Context, a *agent, token string) {
	c := f.enroll(ctx, a, token)
	if c == nil {
		return
	}
	if a.spec.Kind == engine.KindPassive {
		f.runPassive(ctx, a, c)
		return
	}
	f.runPersistent(ctx, a, c)
}

// runPersistent is an active client or Jumpoint: connected all the time,
// checking in at start and after every reconnect, following pushes.
func (f *fleet) runPersistent(ctx context.Context, a *agent, c AgentConn) {
	flags := FlagStartup
	first := true
	var tick <-chan time.Time
	if every := f.tickEvery(); every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		if c == nil {
			return
		}
		if _, ok := f.checkIn(ctx, a, c, flags); !ok {
			c = f.reconnect(ctx, a, c)
			flags = FlagReconnect
			continue
		}
		if first {
			first = false
			f.enrolled.Add(1)
		}
		f.rec.Online(1)
		next := f.serve(ctx, a, c, tick)
		f.rec.Online(-1)
		switch next.what {
		case serveStop:
			c.Close()
			return
		case serveReconnect:
			c = f.reconnect(ctx, a, c)
			flags = FlagReconnect
		case servePostUpgrade:
			c = next.conn
			flags = FlagPostUpgrade
		}
	}
}

func (f *fleet) tickEvery() time.Duration {
	if f.steady {
		return f.cfg.Interval
	}
	return f.cfg.HeartbeatEvery
}

// reconnect closes c and dials again, after the broker's retry-after.
func (f *fleet) reconnect(ctx context.Context, a *agent, c AgentConn) AgentConn {
	ra := c.RetryAfter()
	c.Close()
	if ctx.Err() != nil {
		return nil
	}
	return f.dial(ctx, a, ra)
}

type serveResult struct {
	what int
	conn AgentConn
}

const (
	serveStop = iota
	serveReconnect
	servePostUpgrade
)

// serve follows one connection until it ends, the agent installs an
// upgrade (and restarts on a new connection) or the run stops.
func (f *fleet) serve(ctx context.Context, a *agent, c AgentConn, tick <-chan time.Time) serveResult {
	for {
		select {
		case <-ctx.Done():
			return serveResult{what: serveStop}
		case <-c.Closed():
			return serveResult{what: serveReconnect}
		case o := <-c.Offers():
			nc, ok := f.upgrade(ctx, a, c, o, tick)
			if !ok {
				if ctx.Err() != nil {
					return serveResult{what: serveStop}
				}
				return serveResult{what: serveReconnect}
			}
			if nc != nil {
				return serveResult{what: servePostUpgrade, conn: nc}
			}
		case <-tick:
			if f.steady {
				if _, ok := f.checkIn(ctx, a, c, 0); !ok {
					return serveResult{what: serveReconnect}
				}
			} else if err := c.Heartbeat(ctx); err != nil {
				if ctx.Err() == nil {
					f.rec.Err(err)
				}
				return serveResult{what: serveReconnect}
			}
		}
	}
}

// upgrade carries out one offer: verify and fetch the package, install it
// (UpgradeTime, heartbeating on tick meanwhile), then either report
// failure (FailRate) or restart on the new version: a new connection whose
// check-in completes the upgrade. It returns the new connection (nil after
// a failure, the old one going on), or ok false when the old connection
// broke.
func (f *fleet) upgrade(ctx context.Context, a *agent, c AgentConn, o Offer, tick <-chan time.Time) (AgentConn, bool) {
	now := time.Now()
	f.beginFlight(a, now)
	if !a.turned {
		a.turned = true
		a.hist.add(histOffer, 0, 0, 0)
		f.rec.Turn(a.id.ID, a.queued, a.acked, now, a.spec.Kind == engine.KindPassive, f.lateHistory(a, now))
	}
	if err := c.Fetch(ctx, o); err != nil {
		code := f.rec.Err(err)
		f.endFlight(a) // before the Fail, or as the attempt is abandoned
		if failCode, ok := clientFailCodes[code]; ok {
			// The package is bad, not the connection: say so.
			f.rec.Failed()
			return nil, c.Fail(ctx, failCode, err.Error()) == nil
		}
		return nil, false
	}
	f.rec.Fetch.Record(time.Since(now))
	if !f.install(ctx, c, f.upgradeTime(a), tick) {
		f.endFlight(a)
		return nil, false
	}
	if f.cfg.FailRate > 0 && a.rng.Float64() < f.cfg.FailRate {
		f.rec.Failed()
		f.endFlight(a)
		return nil, c.Fail(ctx, 36, "install_failed: simulated by jumpload") == nil
	}
	// Done is the first message of the completion: the interval ends just
	// before it is sent, whatever becomes of it or of the post-install
	// check-in (a lost answer does not reopen it: the broker may well have
	// freed the slot and started someone else).
	f.endFlight(a)
	doneAt := time.Now()
	if err := c.Done(ctx); err != nil && ctx.Err() == nil {
		f.rec.Err(err)
	}
	// The agent restarts on the new version.
	c.Close()
	a.version = o.Target
	nc := f.dial(ctx, a, 0)
	for {
		if nc == nil {
			return nil, false
		}
		// checkIn counts the client upgraded once an answer says current.
		if _, ok := f.checkIn(ctx, a, nc, FlagPostUpgrade); ok {
			f.rec.Restart.Record(time.Since(doneAt))
			return nc, true
		}
		nc = f.reconnect(ctx, a, nc)
	}
}

// beginFlight opens the agent's client-observed upgrade interval when an
// offer reaches it, unless one is already open (a re-offer of the same
// slot after a reconnect is not a new upgrade).
func (f *fleet) beginFlight(a *agent, now time.Time) {
	if a.flying {
		return
	}
	a.flying = true
	f.rec.UpgradeStarted(a.id.ID, now)
}

// endFlight closes the interval, once: just before the agent sends Done or
// Fail, or as it abandons the attempt (its connection broke or the run
// ended). Closing early only shrinks the interval, so it stays inside the
// broker's slot, which ends no earlier than the broker hears of the end.
func (f *fleet) endFlight(a *agent) {
	if !a.flying {
		return
	}
	a.flying = false
	f.rec.UpgradeEnded()
}

// clientFailCodes maps a verification failure to the wire Fail code.
var clientFailCodes = map[string]uint16{
	"download_failed": 32, "size_mismatch": 33, "hash_mismatch": 34, "bad_signature": 35,
}

// install waits out an install of length d. The agent's service keeps
// heartbeating on c meanwhile, as a real one does until the installer
// restarts it: an agent silent through a download and a minute's install
// outlived the broker's idle timeout (3 heartbeats) and was disconnected
// in the middle of its upgrade. A failed heartbeat does not stop the
// (local) install; the agent then reconnects on its new version as usual.
func (f *fleet) install(ctx context.Context, c AgentConn, d time.Duration, tick <-chan time.Time) bool {
	ictx, cancel := context.WithTimeout(ctx, d) // a heartbeat never outlasts the install
	defer cancel()
	for {
		select {
		case <-ictx.Done():
			return ctx.Err() == nil
		case <-tick:
			if err := c.Heartbeat(ictx); err != nil && ictx.Err() == nil {
				f.rec.Err(err)
				tick = nil
			}
		}
	}
}

func (f *fleet) upgradeTime(a *agent) time.Duration {
	d := float64(f.cfg.UpgradeTime)
	if j := f.cfg.UpgradeJitter; j > 0 {
		d *= 1 - j + 2*j*a.rng.Float64()
	}
	return time.Duration(d)
}

// runPassive is a passive Jump client: it checks in at start-up, then at
// least once every PassivePeriod since its previous check-in (the 24-hour
// timer, scaled), after console contacts and tray requests (ExtraCheckIns
// per period, at random), and early when the broker's retry-after says its
// turn is coming. Between check-ins it is offline.
//
// While it is queued it also never stays away longer than pendingCap: its
// turn can pass at any moment while it is offline (a slot frees and an
// online client queued after it takes it, as work conservation wants), and
// it only learns so at its next check-in, where the broker tells it it is
// overdue and it lingers for the next free slot. Coming back within half
// a period leaves the other half for getting that slot; see pendingCap
// for why and what it costs.
func (f *fleet) runPassive(ctx context.Context, a *agent, c AgentConn) {
	period := f.cfg.PassivePeriod
	// The first daily check-in happens at a random phase of the period.
	nextPeriodic := time.Now().Add(time.Duration(a.rng.Int64N(int64(period))))
	flags := FlagStartup
	counted := false
	for {
		if c == nil {
			if c = f.dial(ctx, a, 0); c == nil {
				return
			}
		}
		at := time.Now()
		ans, ok := f.checkIn(ctx, a, c, flags)
		if ok && !counted {
			counted = true
			f.enrolled.Add(1)
		}
		retry := time.Duration(0)
		queued, overdue := false, false
		if ok {
			retry = ans.RetryAfter
			queued = ans.State == engine.StatePending || ans.State == engine.StateUpgrading
			// Told its turn has already come: retry-after 0 while pending.
			overdue = ans.State == engine.StatePending && ans.RetryAfter == 0
			// Overdue, it stays for the next free slot; upgrading, for the
			// offer that follows the answer. Told to come back later, it
			// leaves (PROTOCOL.md): the broker counts it offline from its
			// answer on, so lingering near the front of the queue would
			// only hold a descriptor.
			switch {
			case overdue:
				c = f.lingerForOffer(ctx, a, c, f.overdueLinger())
			case ans.State == engine.StateUpgrading:
				c = f.lingerForOffer(ctx, a, c, f.cfg.PassiveLinger)
			}
			// Any answered check-in restarts the 24-hour timer.
			nextPeriodic = at.Add(period)
		}
		if c != nil {
			bye := c.RetryAfter()
			if bye > 0 {
				a.hist.add(histBye, 0, 0, bye)
			}
			retry = max(retry, bye)
			c.Close()
			c = f.lateOffer(ctx, a, c)
		}
		if ctx.Err() != nil {
			return
		}
		// The next check-in: the periodic one, an extra one, or the
		// broker's retry-after, whichever comes first.
		now := time.Now()
		for !nextPeriodic.After(now) {
			nextPeriodic = nextPeriodic.Add(period)
		}
		wait, why := nextPeriodic.Sub(now), FlagPeriodic
		if f.cfg.ExtraCheckIns > 0 {
			extra := time.Duration(a.rng.ExpFloat64() / f.cfg.ExtraCheckIns * float64(period))
			if extra < wait {
				wait, why = extra, FlagConsole|FlagUser
			}
		}
		if a.version != f.cfg.ToVersion && queued {
			if retry > 0 && retry < wait {
				wait, why = retry, 0
			}
			if capd := at.Add(f.pendingCap()).Sub(now); capd < wait {
				wait, why = capd, 0
			}
			if soon := max(f.cfg.PassiveLinger, retry); overdue && soon < wait {
				// Overdue, and the linger passed without a free slot: its
				// turn has come, so it asks again soon rather than a period
				// later (no sooner than a broker's goodbye said).
				wait, why = soon, 0
			}
		}
		if !ok {
			wait = f.backoff(a, 3, retry, "")
		}
		flags = why
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

// pendingCap is the longest a queued passive client stays away: half a
// period. Its turn can pass while it is away (slots go to whoever is
// online, as work conservation wants), and it learns so only at its next
// check-in; from then on it competes for the next free slots with every
// other overdue client, oldest first. Half a period away leaves the other
// half for that, however many overdue clients came back with it: leaving
// only its own linger (pendingCap was a period less 20 s) made thousands
// of clients late in runs where the dispatch frontier ran far ahead of the
// clients at the head of the queue (7,122 of 85,000 in one run, 2 in the
// run before; half a period alone did not make it reliable either:
// bench/RESULTS.md, fourth pass). The cost: a queued client checks in at least every half
// period instead of every period; its other check-ins (retry-after, extra
// ones) restart the count, so most queued clients pay less. In the field
// the broker's own retry-after cap (engine Config.MaxRetryAfter, 1 h of a
// 24 h period) bounds this 12 times more tightly; a time-scaled run cannot
// afford that cap scaled down (10 s at time scale 360: every queued client
// would hand-shake every 10 s), so the agent keeps this looser bound.
func (f *fleet) pendingCap() time.Duration {
	return f.cfg.PassivePeriod / 2
}

// lateHistory is the agent's history, times relative to its start now,
// when the start came more than a period after it was queued (only such a
// client can be later than a period after its turn, which comes after it
// was queued), or for every passive client when the turns go to a file;
// "" otherwise.
func (f *fleet) lateHistory(a *agent, now time.Time) string {
	if a.hist == nil || (f.cfg.TurnsFile == "" && (a.queued.IsZero() || now.Sub(a.queued) <= f.cfg.PassivePeriod)) {
		return ""
	}
	return a.hist.format(now.UnixNano())
}

// lateOffer handles an offer that reached a passive client as it was
// leaving (its turn came between its answer and its goodbye): the broker
// has given it a slot, so it comes back at once and checks in; the broker
// offers the upgrade again on the new connection (an offer belongs to the
// connection it was made on), and the client upgrades rather than leave the
// slot held until the lease expires. It returns nil.
func (f *fleet) lateOffer(ctx context.Context, a *agent, c AgentConn) AgentConn {
	select {
	case <-c.Offers():
	default:
		return nil
	}
	nc := f.dial(ctx, a, 0)
	if nc == nil {
		return nil
	}
	if ans, ok := f.checkIn(ctx, a, nc, FlagUser); ok && ans.State == engine.StateUpgrading {
		nc = f.lingerForOffer(ctx, a, nc, f.cfg.PassiveLinger)
	}
	if nc != nil {
		nc.Close()
	}
	return nil
}

// overdueLinger is how long an overdue passive client stays for its slot:
// longer than an ordinary linger, because while it is connected it is
// ahead of every client whose turn has not come (it gets the next free
// slot unless older overdue clients are online too), and a connection
// held idle costs the broker far less than the handshake of coming back.
// Eight lingers (16 s by default) stays under the broker's own limit on a
// passive check-in (transport PassiveLinger, 20 s) and within half a
// period.
func (f *fleet) overdueLinger() time.Duration {
	l := f.cfg.PassiveLinger
	return max(l, min(8*l, f.cfg.PassivePeriod/2))
}

// lingerForOffer waits up to d for the offer of a passive client whose
// turn is now; it upgrades if one comes and returns the connection to
// close (nil if it is already gone).
func (f *fleet) lingerForOffer(ctx context.Context, a *agent, c AgentConn, d time.Duration) AgentConn {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case o := <-c.Offers():
		nc, ok := f.upgrade(ctx, a, c, o, nil) // passive: no heartbeats
		if !ok {
			return nil
		}
		if nc != nil {
			return nc
		}
		return c
	case <-c.Closed():
		return c
	case <-t.C:
		a.hist.add(histLinger, 0, 0, 0)
		return c
	case <-ctx.Done():
		return c
	}
}

// runConsole is an access console: every JumpEvery it jumps to a random
// enrolled client; an "upgrade pending" answer starts the clock that the
// client's upgrade start stops.
func (f *fleet) runConsole(ctx context.Context, idx int, token string, jumps *atomic.Int64) {
	rng := rand.New(rand.NewPCG(f.cfg.Seed, math.MaxUint32+uint64(idx)))
	var c ConsoleConn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	t := time.NewTicker(f.cfg.JumpEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c == nil {
			var err error
			if c, err = f.d.DialConsole(ctx, token); err != nil {
				if ctx.Err() == nil {
					f.rec.Err(err)
				}
				c = nil
				continue
			}
		}
		f.mu.Lock()
		if len(f.ids) == 0 {
			f.mu.Unlock()
			continue
		}
		id := f.ids[rng.IntN(len(f.ids))]
		f.mu.Unlock()
		res, err := c.Jump(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				f.rec.Err(err)
			}
			c.Close()
			c = nil
			continue
		}
		if res == engine.JumpUpgradePending && f.rec.Jumped(id, time.Now()) {
			jumps.Add(1)
		}
	drain:
		for {
			select {
			case _, open := <-c.Ready():
				if !open {
					break drain
				}
			default:
				break drain
			}
		}
	}
}

// sleepCtx sleeps d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
