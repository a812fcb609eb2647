package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"jumpfleet/engine"
	"jumpfleet/engine/sim"
)

// Broker is what a run drives: the client side, the admin side and, for
// the storm scenario, a way to restart it (nil when it cannot be).
type Broker struct {
	Dialer    Dialer
	Control   Control
	Restarter Restarter
}

// Run runs cfg.Scenario against b and returns its summary. The error says
// why a run could not be carried out or did not reach its end state (the
// summary then still holds what was measured).
func Run(ctx context.Context, cfg Config, b Broker) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	r := &run{cfg: &cfg, b: b, rec: NewRecorder(cfg.MaxConcurrent)}
	r.sum = Summary{Scenario: cfg.Scenario, Protocol: cfg.Protocol, Clients: cfg.Fleet(), Active: cfg.Active,
		Passive: cfg.Passive, Jumpoints: cfg.Jumpoints, Consoles: cfg.Consoles, MaxConcurrent: cfg.MaxConcurrent}
	err := r.run(ctx)
	return r.sum, err
}

type run struct {
	cfg *Config
	b   Broker
	rec *Recorder // the local fleet's (progress lines read snapshots)
	fl  fleetOps
	sum Summary
}

func (r *run) note(format string, args ...any) {
	r.sum.Notes = append(r.sum.Notes, fmt.Sprintf(format, args...))
}

func (r *run) run(ctx context.Context) error {
	cfg := r.cfg
	// The upgrade lease must outlast an install so that no slot is taken
	// back from a client that is merely slow.
	lease := max(time.Minute, 4*cfg.UpgradeTime)
	if err := r.b.Control.Configure(ctx, cfg.MaxConcurrent, cfg.StartsPerSec, lease, false); err != nil {
		return fmt.Errorf("configure the broker: %w", err)
	}
	installers := map[engine.Kind]string{}
	for k, n := range map[engine.Kind]int{engine.KindActive: cfg.Active, engine.KindPassive: cfg.Passive, engine.KindJumpoint: cfg.Jumpoints} {
		if n == 0 {
			continue
		}
		tok, err := r.b.Control.Installer(ctx, k)
		if err != nil {
			return fmt.Errorf("create an installer for %s clients: %w", k, err)
		}
		installers[k] = tok
	}

	if cfg.Procs > 1 {
		rf, err := startRemote(ctx, cfg)
		if err != nil {
			return err
		}
		r.fl = rf
	} else {
		if r.b.Dialer == nil {
			return errors.New("loadtest: no dialer for the fleet")
		}
		lf := newFleet(cfg, r.b.Dialer, r.rec, 0, 1)
		lf.steady = cfg.Scenario == ScenarioSteady
		r.fl = lf
	}
	defer r.fl.stop()
	stopProgress := r.progress(ctx)
	defer stopProgress()

	cpu0, _, measured, _ := r.b.Control.Process(ctx)
	t0 := time.Now()
	if err := r.fl.start(ctx, installers); err != nil {
		return err
	}
	if err := r.waitEnrolled(ctx); err != nil {
		return err
	}
	r.connected(ctx, time.Since(t0), cpu0, measured)

	switch cfg.Scenario {
	case ScenarioSteady:
		return r.steady(ctx)
	case ScenarioRollout:
		return r.rollout(ctx)
	case ScenarioJump:
		return r.jump(ctx)
	case ScenarioStorm:
		return r.storm(ctx)
	}
	return nil
}

// connected records the connect phase: how long the fleet took to enroll
// and check in once, and what it cost the broker per client (its CPU over
// the phase, when it is another process). Most of that is handshakes, so
// runs of one command on one machine should agree on it; when they do
// not, the machine (or the code) changed, which is worth knowing before
// comparing their other figures.
func (r *run) connected(ctx context.Context, took time.Duration, cpu0 float64, measured bool) {
	r.note("fleet of %d enrolled and checked in after %.1fs", r.cfg.Fleet(), took.Seconds())
	r.sum.ConnectS = ptr(took.Seconds())
	if !measured {
		return
	}
	if cpu, _, ok, err := r.b.Control.Process(ctx); err == nil && ok {
		r.sum.ConnectServerCPUusPerClient = ptr((cpu - cpu0) / float64(r.cfg.Fleet()) * 1e6)
	}
}

// waitEnrolled waits until every agent has enrolled and checked in once.
func (r *run) waitEnrolled(ctx context.Context) error {
	deadline := time.Now().Add(r.cfg.Timeout)
	for {
		s := r.fl.snapshot()
		done, bad := s.Enrolled, s.FailedEnroll
		if int(done) == r.cfg.Fleet() {
			return nil
		}
		if bad > 0 {
			return fmt.Errorf("%d agents could not enroll (errors: %v)", bad, s.Errors)
		}
		if err := r.fl.failed(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d agents enrolled within %v", done, r.cfg.Fleet(), r.cfg.Timeout)
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// window measures client-side figures and, when the broker is another
// process, its CPU and memory, between begin and end.
type window struct {
	r      *run
	t0     time.Time
	snap0  Snapshot
	cpu0   float64
	server bool
}

func (r *run) begin(ctx context.Context) *window {
	w := &window{r: r, t0: time.Now(), snap0: r.fl.snapshot()}
	cpu, _, ok, err := r.b.Control.Process(ctx)
	if err != nil {
		r.note("server metrics unreadable: %v", err)
	}
	w.cpu0, w.server = cpu, ok && err == nil
	return w
}

func (w *window) end(ctx context.Context) {
	r := w.r
	elapsed := time.Since(w.t0)
	snap := r.fl.snapshot()
	r.sum.fill(sub(snap, w.snap0), elapsed)
	// Outcome counters are for the whole run, not the window.
	r.sum.Upgraded, r.sum.Failed, r.sum.Violations = snap.Upgraded, snap.Failed, snap.Violations
	r.sum.MaxInFlight, r.sum.GaveUp, r.sum.Errors = snap.MaxInFlight, snap.GaveUp, snap.Errors
	if m, v, ok := r.fl.flight(); ok {
		// Several processes: the children's own counts only see their
		// shard; the merged timeline sees the fleet.
		r.sum.MaxInFlight, r.sum.Violations = m, v
	}
	if !w.server {
		r.note("server CPU and RSS not measured: the broker runs in this process")
		return
	}
	cpu, rss, _, err := r.b.Control.Process(ctx)
	if err != nil {
		r.note("server metrics unreadable at the end: %v", err)
		return
	}
	r.sum.ServerRSSBytes = ptr(rss)
	if n := snap.Checkins - w.snap0.Checkins; n > 0 {
		r.sum.ServerCPUusPerCheckin = ptr((cpu - w.cpu0) / float64(n) * 1e6)
	}
}

// sub is a − b for the counters that accumulate (histograms included).
func sub(a, b Snapshot) Snapshot {
	out := a
	out.Checkins -= b.Checkins
	out.Handshakes -= b.Handshakes
	for _, p := range []*map[int]int64{&out.Latency, &out.Connect, &out.JumpLag} {
		m := map[int]int64{}
		for k, v := range *p {
			m[k] = v
		}
		*p = m
	}
	for k, v := range b.Latency {
		out.Latency[k] -= v
	}
	for k, v := range b.Connect {
		out.Connect[k] -= v
	}
	for k, v := range b.JumpLag {
		out.JumpLag[k] -= v
	}
	return out
}

// steady measures check-ins of connected, current clients for Duration.
func (r *run) steady(ctx context.Context) error {
	w := r.begin(ctx)
	sleepCtx(ctx, r.cfg.Duration)
	w.end(ctx)
	return ctx.Err()
}

// rollout publishes the release and waits for every client to upgrade.
func (r *run) rollout(ctx context.Context) error {
	defer r.watchBroker(ctx)() // the broker's own in-flight count, every 250 ms
	cfg := r.cfg
	// The broker's queue order, for the passive clients' turns.
	stopQueued := func() (map[engine.ClientID]int64, bool) { return nil, false }
	if qw, ok := r.b.Control.(QueueWatcher); ok && cfg.Passive > 0 {
		stop, err := qw.WatchQueued(ctx)
		if err != nil {
			r.note("broker queue order unavailable (%v): passive turns from client-observed order", err)
		} else {
			stopQueued = stop
		}
	}
	w := r.begin(ctx)
	if err := r.b.Control.PublishSite(ctx, cfg.Release, cfg.Platform, cfg.ToVersion, cfg.PackageSize); err != nil {
		return fmt.Errorf("publish release %s: %w", cfg.Release, err)
	}
	total := int64(cfg.Fleet())
	err := r.until(ctx, cfg.Timeout, func() bool { return r.fl.snapshot().Upgraded >= total })
	queued, complete := stopQueued()
	w.end(ctx)
	snap := r.fl.snapshot()
	switch last := snap.LastDone; {
	case last == 0:
		// Nobody upgraded: nothing to time.
	case snap.Upgraded < total:
		// A stopped or timed-out rollout has no makespan: the time of its
		// last upgrade so far would read as a ratio below 1.
		r.note("rollout incomplete: %d of %d clients upgraded, the last %.1fs after publishing; makespan not measured",
			snap.Upgraded, total, time.Unix(0, last).Sub(w.t0).Seconds())
	default:
		mk := time.Unix(0, last).Sub(w.t0).Seconds()
		bound := float64(cfg.Fleet()) * cfg.UpgradeTime.Seconds() / float64(cfg.MaxConcurrent)
		r.sum.MakespanS = ptr(mk)
		r.sum.BoundS = ptr(bound)
		if bound > 0 {
			r.sum.MakespanRatio = ptr(mk / bound)
		}
		if cfg.Passive > 0 {
			r.note("bound_s counts install time only: passive clients also wait for their check-in period (%v)", cfg.PassivePeriod)
		} else if cfg.FailRate == 0 && bound > 0 {
			// Passive clients wait for their check-ins and failed attempts
			// for their backoff, which an ideal schedule cannot model.
			floor := sim.IdealMakespan(cfg.Fleet(), cfg.MaxConcurrent, cfg.UpgradeTime, cfg.UpgradeJitter,
				cfg.StartsPerSec, startBurst(cfg.StartsPerSec, cfg.MaxConcurrent), cfg.Seed)
			r.sum.FloorS, r.sum.FloorRatio = ptr(floor), ptr(floor/bound)
		}
	}
	if cfg.Passive > 0 {
		turns := r.fl.turns()
		if cfg.TurnsFile != "" {
			if err := writeTurns(cfg.TurnsFile, turns); err != nil {
				r.note("turns: %v", err)
			}
		}
		if !complete {
			queued = nil // a partial order would mix the two clocks' judgements
		}
		l := passiveLateness(turns, cfg.PassivePeriod, queued)
		r.sum.PassiveLateMaxS, r.sum.PassiveLateBeyondPeriod = ptr(l.Worst.Seconds()), &l.Beyond
		r.sum.PassivePeriodS = ptr(cfg.PassivePeriod.Seconds())
		order := "the broker's queued events"
		if l.BrokerOrder == 0 {
			order = "client-observed times (the broker's queued events were not complete)"
		}
		r.note("passive lateness: %d passive clients judged; turn = first start of any client queued after it; queue order from %s (%d of %d clients)", l.Judged, order, l.BrokerOrder, len(turns))
		if l.WorstHistory != "" {
			r.note("latest passive client: turn %.1fs and queued %.1fs before its start (+0s); its last contacts: %s",
				l.Worst.Seconds(), l.WorstQueued.Seconds(), l.WorstHistory)
			b := l.WorstBy
			r.note("its turn was the start of a client (passive %v) queued %.1fs (answered %.1fs) before that start; its last contacts: %s",
				b.Passive, time.Duration(b.Start-b.Queued).Seconds(), time.Duration(b.Start-b.Acked).Seconds(), b.History)
		}
	}
	if err != nil {
		return fmt.Errorf("rollout: %d of %d clients upgraded: %w", r.fl.snapshot().Upgraded, cfg.Fleet(), err)
	}
	return nil
}

// jump publishes the release, waits until every slot is busy, then lets
// the consoles jump to random clients for Duration.
func (r *run) jump(ctx context.Context) error {
	defer r.watchBroker(ctx)() // the broker's own in-flight count, every 250 ms
	cfg := r.cfg
	if cfg.Fleet() <= cfg.MaxConcurrent {
		r.note("the fleet (%d) is not larger than max_concurrent (%d): slots never all busy with clients waiting", cfg.Fleet(), cfg.MaxConcurrent)
	}
	if err := r.b.Control.PublishSite(ctx, cfg.Release, cfg.Platform, cfg.ToVersion, cfg.PackageSize); err != nil {
		return fmt.Errorf("publish release %s: %w", cfg.Release, err)
	}
	busy := min(cfg.MaxConcurrent, cfg.Fleet())
	if err := r.until(ctx, cfg.Timeout, func() bool { return r.fl.snapshot().InFlight >= int64(busy) }); err != nil {
		return fmt.Errorf("jump: slots never all busy (%d of %d in flight): %w", r.fl.snapshot().InFlight, busy, err)
	}
	tokens := make([]string, cfg.Consoles)
	for i := range tokens {
		tok, err := r.b.Control.ConsoleToken(ctx, fmt.Sprintf("jumpload-%d", i))
		if err != nil {
			return fmt.Errorf("console token: %w", err)
		}
		tokens[i] = tok
	}
	w := r.begin(ctx)
	if err := r.fl.consoles(tokens, cfg.Duration); err != nil {
		return err
	}
	sleepCtx(ctx, cfg.Duration)
	w.end(ctx)
	r.sum.Jumps = r.fl.snapshot().Jumps
	r.sum.SlotTurnoverS = ptr(cfg.UpgradeTime.Seconds() * (1 + cfg.UpgradeJitter))
	if r.sum.Jumps == 0 {
		r.note("no jump found an outdated client that had not started")
	}
	return ctx.Err()
}

// storm restarts the broker once every persistent client is connected and
// measures how long until all of them are back and checked in.
//
// Two bounds say how fast that could have been. The broker bound is the
// broker's CPU time over the window ÷ cores. The machine bound adds the
// CPU time of every load process (this one and its children): on one
// machine the load generator does the client half of every handshake on
// the same cores, so the broker alone could never have had them all. The
// ratio is judged against the machine bound. Both count the work actually
// done, shed and retried attempts included.
func (r *run) storm(ctx context.Context) error {
	if r.b.Restarter == nil {
		return errors.New("storm: this broker cannot be restarted by jumpload (use --spawn or --protocol inproc)")
	}
	cfg := r.cfg
	persistent := int64(cfg.Active + cfg.Jumpoints)
	if err := r.fl.newEpoch(); err != nil {
		return err
	}
	w := r.begin(ctx)
	down := time.Now()
	if err := r.b.Restarter.Restart(ctx); err != nil {
		return fmt.Errorf("storm: restart the broker: %w", err)
	}
	up := time.Now()
	tree0, terr := treeCPU(os.Getpid())
	busy0, berr := machineBusy()
	if w.server {
		// The CPU counter restarted with the process.
		w.cpu0 = 0
	}
	// When each tenth of the fleet was back tells idle time (a long tail of
	// clients asleep in their backoff) from a saturated machine (an even
	// climb).
	var tenths []string
	next := int64(1)
	err := r.until(ctx, cfg.Timeout, func() bool {
		n := r.fl.snapshot().Reconnected
		for next <= 10 && n*10 >= next*persistent {
			tenths = append(tenths, fmt.Sprintf("%d%%=%.2fs", next*10, time.Since(up).Seconds()))
			next++
		}
		return n >= persistent
	})
	back := time.Since(up)
	tree1, terr1 := treeCPU(os.Getpid())
	busy1, berr1 := machineBusy()
	var cpu float64
	if w.server {
		var perr error
		if cpu, _, _, perr = r.b.Control.Process(ctx); perr == nil {
			r.sum.ReconnectCPUBoundS = ptr(cpu / float64(runtime.NumCPU()))
		}
	}
	w.end(ctx)
	r.sum.ReconnectS = ptr(back.Seconds())
	r.note("reconnect_s runs from the restarted broker accepting again to the last persistent client's check-in (%d clients); "+
		"the restart took %.2fs; back by then: %s", persistent, up.Sub(down).Seconds(), strings.Join(tenths, " "))
	if terr == nil && terr1 == nil {
		machine := cpuStat{Busy: -1}
		if berr == nil && berr1 == nil {
			machine = cpuStat{Busy: busy1.Busy - busy0.Busy, SoftIRQ: busy1.SoftIRQ - busy0.SoftIRQ}
		}
		r.stormBounds(back, tree0, tree1, machine, persistent)
	} else {
		r.note("machine bound not measured: %v", errors.Join(terr, terr1))
	}
	if err != nil {
		return fmt.Errorf("storm: %d of %d persistent clients reconnected: %w", r.fl.snapshot().Reconnected, persistent, err)
	}
	return nil
}

// stormBounds works out the broker and machine bounds of a storm from the
// CPU times of this process tree at the start and end of the window.
// machine is what all cores spent over the window (Busy -1: unknown).
func (r *run) stormBounds(back time.Duration, tree0, tree1 map[int]float64, machine cpuStat, n int64) {
	cores := float64(runtime.NumCPU())
	all := cpuSince(tree0, tree1)
	b := stormBound{Window: back, Cores: cores, Clients: n}
	if p, ok := r.b.Restarter.(interface{ Pid() int }); ok && p.Pid() != 0 {
		b.Separate = true
		b.BrokerCPU = tree1[p.Pid()] - tree0[p.Pid()] // the restarted broker: usually not in tree0
	}
	b.LoadCPU = all - b.BrokerCPU
	r.note("%s", b)
	if b.Separate && b.BrokerCPU > 0 {
		r.sum.ReconnectBrokerBoundS = ptr(b.broker())
	}
	if b.machine() > 0 {
		r.sum.ReconnectMachineBoundS = ptr(b.machine())
		r.sum.ReconnectRatio = ptr(b.ratio())
	}
	if machine.Busy < 0 {
		return
	}
	// Other sessions' builds and tests on the same cores make the window
	// longer without adding to the bound; say how much. Softirq time is
	// charged to no process, and on loopback much of it is this run's
	// own network stack: the bound leaves it out (so it errs towards a
	// higher ratio), the note gives it.
	others := max(0, machine.Busy-all-machine.SoftIRQ)
	note := fmt.Sprintf("the whole machine was busy %.0f%% of the window; other processes took %.2f core-seconds of it, "+
		"kernel softirq (network stack, largely this run's loopback traffic; in no process's CPU time) %.2f",
		100*machine.Busy/(cores*back.Seconds()), others, machine.SoftIRQ)
	if others > 0.05*cores*back.Seconds() {
		// They took cores the run would have used: the window grows,
		// the bound does not, and the ratio overstates the run's own
		// idle time. Only a quiet machine judges the target.
		note += " (not a quiet machine: the ratio overstates idle time)"
	}
	r.note("%s", note)
}

// stormBound is a storm's reconnect time against what the CPU allows.
type stormBound struct {
	Window             time.Duration
	Cores              float64
	BrokerCPU, LoadCPU float64 // seconds over the window
	Clients            int64
	// Separate says the broker is a process of its own (else its CPU is
	// in LoadCPU: an in-process broker).
	Separate bool
}

func (b stormBound) broker() float64  { return b.BrokerCPU / b.Cores }
func (b stormBound) machine() float64 { return (b.BrokerCPU + b.LoadCPU) / b.Cores }

// ratio is the reconnect time over the machine bound (0 when unmeasured).
func (b stormBound) ratio() float64 {
	if m := b.machine(); m > 0 {
		return b.Window.Seconds() / m
	}
	return 0
}

func (b stormBound) String() string {
	if b.machine() <= 0 {
		return fmt.Sprintf("reconnect %.2fs: too short for a machine bound (/proc counts CPU in 10 ms ticks)", b.Window.Seconds())
	}
	per := func(s float64) float64 { return s / float64(max(b.Clients, 1)) * 1e6 }
	out := fmt.Sprintf("reconnect %.2fs vs machine bound %.2fs = %.2fx (the ratio uses the machine bound: the load generator does the client half "+
		"of every handshake on the same %.0f cores)", b.Window.Seconds(), b.machine(), b.ratio(), b.Cores)
	if !b.Separate {
		return out + fmt.Sprintf("; no broker-only bound: the broker runs in this process; CPU over the window %.2fs (%.0f µs per client)",
			b.LoadCPU, per(b.LoadCPU))
	}
	return out + fmt.Sprintf("; broker-only bound %.2fs; CPU over the window: broker %.2fs (%.0f µs per client), load processes %.2fs (%.0f µs per client)",
		b.broker(), b.BrokerCPU, per(b.BrokerCPU), b.LoadCPU, per(b.LoadCPU))
}

// until polls cond until it holds, the timeout passes or ctx ends.
func (r *run) until(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := r.fl.failed(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		if !sleepCtx(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// progress prints one line every ProgressEvery while the run goes on; the
// returned function stops it.
func (r *run) progress(ctx context.Context) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.cfg.ProgressEvery)
		defer t.Stop()
		start := time.Now()
		prev := r.fl.snapshot()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			s := r.fl.snapshot()
			sec := r.cfg.ProgressEvery.Seconds()
			var errs []string
			for i, k := range sortedErrors(s.Errors) {
				if i == 3 {
					break
				}
				errs = append(errs, fmt.Sprintf("%s=%d", k, s.Errors[k]))
			}
			fmt.Fprintf(r.cfg.Progress, "%6.1fs online %d/%d  check-ins/s %.0f  handshakes/s %.0f  in flight %d/%d  upgraded %d  failed %d  errors [%s]\n",
				time.Since(start).Seconds(), s.Online, r.cfg.Fleet(),
				float64(s.Checkins-prev.Checkins)/sec, float64(s.Handshakes-prev.Handshakes)/sec,
				s.InFlight, r.cfg.MaxConcurrent, s.Upgraded, s.Failed, strings.Join(errs, " "))
			prev = s
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
