package engine

import (
	"errors"
	"testing"
	"time"
)

var (
	t0   = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vOld = Version{24, 1, 0, 100}
	vNew = Version{24, 2, 0, 200}
)

func id(n int) ClientID {
	var c ClientID
	c[0], c[1], c[15] = byte(n>>8), byte(n), 7
	return c
}

// newTestEngine returns an engine with a published site release targeting
// vNew on windows-x64 and settings tuned so that tokens never bind.
func newTestEngine(t testing.TB, change func(*Settings)) *Engine {
	t.Helper()
	s := DefaultSettings()
	s.MaxConcurrent = 2
	s.StartsPerSec = 1000
	s.StartBurst = 1000
	if change != nil {
		change(&s)
	}
	e, err := New(Config{Settings: s, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.PublishRelease(t0, Release{ID: "r2", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew}}}); err != nil {
		t.Fatal(err)
	}
	e.TakeOutput(nil)
	return e
}

func checkIn(t testing.TB, e *Engine, now time.Time, n int, kind Kind, v Version) Answer {
	t.Helper()
	a, err := e.CheckIn(now, CheckIn{ID: id(n), Kind: kind, Platform: PlatformWindowsX64, Version: v})
	if err != nil {
		t.Fatalf("check-in %d: %v", n, err)
	}
	// As the Node runs it, in a turn of its own: the turn's Tick may start
	// the client, and its answer is settled after it. The dispatches stay
	// in the output for turn to take.
	e.Tick(now)
	a = e.Settle(now, id(n), a)
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	return a
}

// turn ticks and returns the ids dispatched.
func turn(t testing.TB, e *Engine, now time.Time) []ClientID {
	t.Helper()
	e.Tick(now)
	out, err := e.TakeOutput(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	var ids []ClientID
	for _, d := range out.Dispatches {
		ids = append(ids, d.Client)
	}
	return ids
}

func TestQueuedOnceAndFIFO(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	// The first takes the free slot in its own check-in, and its answer
	// says so; the others queue behind it.
	if a := checkIn(t, e, t0, 1, KindActive, vOld); a.State != StateUpgrading || a.Position != 0 {
		t.Fatalf("client 1: %+v, want upgrading", a)
	}
	for n := 2; n <= 3; n++ {
		a := checkIn(t, e, t0, n, KindActive, vOld)
		if a.State != StatePending || a.Position != n-1 {
			t.Fatalf("client %d: %+v, want pending at %d", n, a, n-1)
		}
	}
	// A second check-in does not queue twice.
	if a := checkIn(t, e, t0, 2, KindActive, vOld); a.Position != 1 {
		t.Fatalf("re-check-in moved the client: %+v", a)
	}
	if got := turn(t, e, t0); len(got) != 1 || got[0] != id(1) {
		t.Fatalf("dispatched %v, want client 1 only", got)
	}
	if a := checkIn(t, e, t0.Add(time.Minute), 1, KindActive, vNew); a.State != StateCurrent {
		t.Fatalf("upgraded client is %v", a.State)
	}
	if got := turn(t, e, t0.Add(time.Minute)); len(got) != 1 || got[0] != id(2) {
		t.Fatalf("dispatched %v, want client 2 (FIFO)", got)
	}
}

func TestJumpLaneFirst(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	for n := 1; n <= 4; n++ {
		checkIn(t, e, t0, n, KindActive, vOld)
	}
	turn(t, e, t0) // client 1 takes the only slot
	for _, n := range []int{4, 3} {
		a, err := e.Jump(t0, id(n), uint64(n))
		if err != nil || a.Result != JumpUpgradePending || a.Lane != LaneJump {
			t.Fatalf("jump %d: %+v %v", n, a, err)
		}
	}
	if a, _ := e.Jump(t0, id(3), 33); a.Position != 2 {
		t.Fatalf("client 3 jumped second, position %d, want 2", a.Position)
	}
	if c, _ := e.Client(id(2)); c.Position != 3 {
		t.Fatalf("normal client 2 at %d, want 3 (behind two jumps)", c.Position)
	}
	want := []int{4, 3, 2}
	cur := 1
	var ready []uint64
	for k, n := range want {
		now := t0.Add(time.Duration(k+1) * time.Minute)
		checkIn(t, e, now, cur, KindActive, vNew)
		for _, r := range e.out.JumpReady {
			ready = append(ready, r.Waiters...)
		}
		got := turn(t, e, now)
		if len(got) != 1 || got[0] != id(n) {
			t.Fatalf("step %d: dispatched %v, want %d", k, got, n)
		}
		cur = n
	}
	// Finishing 4 woke its console; finishing 3 wakes both of its
	// consoles; client 2 was never jumped.
	checkIn(t, e, t0.Add(time.Hour), 3, KindActive, vNew)
	for _, r := range e.out.JumpReady {
		ready = append(ready, r.Waiters...)
	}
	if len(ready) != 3 || ready[0] != 4 {
		t.Fatalf("jump-ready waiters %v, want [4 3 33]", ready)
	}
	if a, _ := e.Jump(t0.Add(time.Hour), id(3), 0); a.Result != JumpAllowed {
		t.Fatalf("jump to current online client: %v", a.Result)
	}
	_ = e.Disconnect(t0.Add(time.Hour), id(3))
	if a, _ := e.Jump(t0.Add(time.Hour), id(3), 0); a.Result != JumpOffline {
		t.Fatalf("jump to current offline client: %v", a.Result)
	}
}

func TestOutdatedNeverJumpable(t *testing.T) {
	// A client on an old version that has not checked in since the
	// release is outdated: a jump queues it rather than allowing it.
	s := DefaultSettings()
	e, _ := New(Config{Settings: s})
	checkIn(t, e, t0, 1, KindActive, vOld) // no release yet: current
	if a, _ := e.Jump(t0, id(1), 0); a.Result != JumpAllowed {
		t.Fatalf("before any release: %v", a.Result)
	}
	_ = e.PublishRelease(t0, Release{ID: "r", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew}}})
	if a, _ := e.Jump(t0, id(1), 0); a.Result != JumpUpgradePending || a.Position != 1 {
		t.Fatalf("after the release: %+v", a)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestBaseReleaseChangesNothing(t *testing.T) {
	e := newTestEngine(t, nil)
	checkIn(t, e, t0, 1, KindActive, vNew)
	if err := e.PublishRelease(t0, Release{ID: "base-7", Kind: ReleaseBase}); err != nil {
		t.Fatal(err)
	}
	if a := checkIn(t, e, t0, 1, KindActive, vNew); a.State != StateCurrent {
		t.Fatalf("base release made the client %v", a.State)
	}
	err := e.PublishRelease(t0, Release{ID: "r3", Kind: ReleaseSite, Requires: "base-8",
		Targets: []Target{{Platform: PlatformWindowsX64, Version: Version{25, 0, 0, 1}}}})
	if CodeOf(err) != CodeDependencyMissing {
		t.Fatalf("missing dependency: %v", err)
	}
	if e.Target(PlatformWindowsX64) != vNew {
		t.Fatal("refused release changed the target")
	}
}

func TestMaxConcurrentLowered(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 3 })
	for n := 1; n <= 6; n++ {
		checkIn(t, e, t0, n, KindActive, vOld)
	}
	if got := turn(t, e, t0); len(got) != 3 {
		t.Fatalf("started %d, want 3", len(got))
	}
	s := e.Settings()
	s.MaxConcurrent = 1
	if err := e.SetSettings(t0, s); err != nil {
		t.Fatal(err)
	}
	if e.InFlight() != 3 {
		t.Fatal("lowering max_concurrent cancelled upgrades")
	}
	checkIn(t, e, t0.Add(time.Minute), 1, KindActive, vNew)
	checkIn(t, e, t0.Add(time.Minute), 2, KindActive, vNew)
	if got := turn(t, e, t0.Add(time.Minute)); len(got) != 0 {
		t.Fatalf("started %v with 1 in flight and max 1", got)
	}
	checkIn(t, e, t0.Add(2*time.Minute), 3, KindActive, vNew)
	if got := turn(t, e, t0.Add(2*time.Minute)); len(got) != 1 {
		t.Fatalf("started %v, want 1", got)
	}
}

func TestPauseResume(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.Paused = true })
	checkIn(t, e, t0, 1, KindActive, vOld)
	if got := turn(t, e, t0); len(got) != 0 {
		t.Fatal("paused engine started an upgrade")
	}
	s := e.Settings()
	s.Paused = false
	_ = e.SetSettings(t0, s)
	if got := turn(t, e, t0); len(got) != 1 {
		t.Fatal("resumed engine did not start the upgrade")
	}
}

func TestLeaseExpiryRetryThenFailed(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) {
		s.LeaseTime = time.Minute
		s.RetryLimit = 2
		s.RetryBase = 10 * time.Second
		s.RetryMax = 10 * time.Second
	})
	checkIn(t, e, t0, 1, KindActive, vOld)
	if got := turn(t, e, t0); len(got) != 1 {
		t.Fatal("not started")
	}
	// Progress renews the lease.
	if err := e.Progress(t0.Add(50*time.Second), id(1), 100); err != nil {
		t.Fatal(err)
	}
	turn(t, e, t0.Add(70*time.Second))
	if c, _ := e.Client(id(1)); c.State != StateUpgrading {
		t.Fatalf("lease expired despite progress: %v", c.State)
	}
	now := t0.Add(111 * time.Second)
	turn(t, e, now)
	c, _ := e.Client(id(1))
	if c.State != StatePending || c.RetryAt.IsZero() || e.InFlight() != 0 {
		t.Fatalf("after lease expiry: %+v in flight %d", c, e.InFlight())
	}
	if d := c.RetryAt.Sub(now); d < 5*time.Second || d > 10*time.Second {
		t.Fatalf("backoff %v outside [5s,10s]", d)
	}
	if got := turn(t, e, now.Add(4*time.Second)); len(got) != 0 {
		t.Fatal("retried before its backoff")
	}
	next, ok := e.NextDeadline(now.Add(4 * time.Second))
	if !ok || next.After(c.RetryAt.Add(time.Millisecond)) {
		t.Fatalf("next deadline %v, want by %v", next, c.RetryAt)
	}
	if got := turn(t, e, c.RetryAt); len(got) != 1 {
		t.Fatal("not retried after backoff")
	}
	if err := e.Fail(c.RetryAt.Add(time.Second), id(1), "disk full"); err != nil {
		t.Fatal(err)
	}
	c, _ = e.Client(id(1))
	if c.State != StateFailed || c.LastError != "disk full" {
		t.Fatalf("after the last attempt: %+v", c)
	}
	if err := e.Retry(now, id(1)); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Client(id(1)); c.State != StatePending || c.Attempts != 0 {
		t.Fatalf("after admin retry: %+v", c)
	}
}

func TestStartRatePaces(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) {
		s.MaxConcurrent = 100
		s.StartsPerSec = 2
		s.StartBurst = 1
	})
	for n := 1; n <= 10; n++ {
		checkIn(t, e, t0, n, KindActive, vOld)
	}
	started := len(turn(t, e, t0))
	for k := 1; k <= 8; k++ {
		started += len(turn(t, e, t0.Add(time.Duration(k)*500*time.Millisecond)))
	}
	if started != 9 {
		t.Fatalf("started %d in 4s at 2/s with burst 1, want 9", started)
	}
}

func TestBadInputNothingApplied(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.Paused = true }) // client 1 stays pending
	checkIn(t, e, t0, 1, KindActive, vOld)
	before := e.Status(t0)
	cases := []struct {
		name string
		err  error
		code Code
	}{
		{"kind", func() error {
			_, err := e.CheckIn(t0, CheckIn{ID: id(2), Kind: 9, Platform: PlatformLinuxX64, Version: vOld})
			return err
		}(), CodeBadKind},
		{"platform", func() error {
			_, err := e.CheckIn(t0, CheckIn{ID: id(2), Kind: KindActive, Platform: 0, Version: vOld})
			return err
		}(), CodeBadPlatform},
		{"version", func() error {
			_, err := e.CheckIn(t0, CheckIn{ID: id(2), Kind: KindActive, Platform: PlatformLinuxX64})
			return err
		}(), CodeBadVersion},
		{"kind change", func() error {
			_, err := e.CheckIn(t0, CheckIn{ID: id(1), Kind: KindPassive, Platform: PlatformWindowsX64, Version: vNew})
			return err
		}(), CodeKindMismatch},
		{"max 0", func() error { s := e.Settings(); s.MaxConcurrent = 0; return e.SetSettings(t0, s) }(), CodeBadSetting},
		{"max -1", func() error { s := e.Settings(); s.MaxConcurrent = -1; return e.SetSettings(t0, s) }(), CodeBadSetting},
		{"platform in release", e.PublishRelease(t0, Release{ID: "x", Kind: ReleaseSite, Targets: []Target{{Platform: 42, Version: vNew}}}), CodeBadPlatform},
		{"duplicate release", e.PublishRelease(t0, Release{ID: "r2", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformLinuxX64, Version: vNew}}}), CodeDuplicateRelease},
		{"unknown client jump", func() error { _, err := e.Jump(t0, id(99), 0); return err }(), CodeUnknownClient},
		{"progress not upgrading", e.Progress(t0, id(1), 1), CodeNotUpgrading},
	}
	for _, c := range cases {
		var ee *Error
		if !errors.As(c.err, &ee) || ee.Code != c.code {
			t.Errorf("%s: got %v, want code %s", c.name, c.err, c.code)
		}
	}
	after := e.Status(t0)
	if before.Clients != after.Clients || before.ByState["pending"] != after.ByState["pending"] ||
		after.MaxConcurrent != before.MaxConcurrent || len(e.Releases()) != 1 {
		t.Fatalf("bad input changed state: %+v → %+v", before, after)
	}
	if c, _ := e.Client(id(1)); c.Kind != KindActive || c.Version != vOld {
		t.Fatalf("kind mismatch half-applied: %+v", c)
	}
	for _, s := range []string{"", "1.2", "1.2.3.4", "a.b.c", "1.2.3-r", "1.2.3-rx", "70000.0.0", "01.2.3"} {
		if _, err := ParseVersion(s); CodeOf(err) != CodeBadVersion {
			t.Errorf("ParseVersion(%q) = %v", s, err)
		}
	}
	if v, err := ParseVersion("24.2.0-r200"); err != nil || v != vNew {
		t.Errorf("ParseVersion: %v %v", v, err)
	}
}

func TestPassiveRetryAfter(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	for n := 1; n <= 50; n++ {
		checkIn(t, e, t0, n, KindActive, vOld)
	}
	a := checkIn(t, e, t0, 100, KindPassive, vOld)
	if a.Position != 50 || a.RetryAfter < time.Second { // client 1 holds the slot
		t.Fatalf("passive answer %+v: want position 50 and a retry-after", a)
	}
}

// TestJumpReadyWithoutWaiter: an admin's jump (no console waiting) still
// publishes jump_ready when the client becomes current.
func TestJumpReadyWithoutWaiter(t *testing.T) {
	e := newTestEngine(t, nil)
	checkIn(t, e, t0, 1, KindActive, vOld)
	if a, _ := e.Jump(t0, id(1), 0); a.Result != JumpUpgradePending {
		t.Fatal(a)
	}
	turn(t, e, t0)
	checkIn(t, e, t0.Add(time.Minute), 1, KindActive, vNew)
	n := 0
	for _, ev := range e.out.Events {
		if ev.Type == EvJumpReady {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d jump_ready events, want 1", n)
	}
}

// TestCheckInStartsAtOnce: a queued client that checks in while a slot is
// free is started in its own turn, and its answer, settled after the
// turn's dispatch, says upgrading. A passive client answered "pending"
// leaves; told so while its start was made at the end of the turn, it held
// a slot it never heard of until it came back.
func TestCheckInStartsAtOnce(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	a := checkIn(t, e, t0, 1, KindPassive, vOld)
	if a.State != StateUpgrading || a.RetryAfter != 0 {
		t.Fatalf("passive client with a free slot: %+v, want upgrading", a)
	}
	if got := turn(t, e, t0); len(got) != 1 || got[0] != id(1) {
		t.Fatalf("dispatched %v, want client 1", got)
	}
	// The slot is taken: the next one is told its place and when to come back.
	if a := checkIn(t, e, t0, 2, KindPassive, vOld); a.State != StatePending || a.Position != 1 || a.RetryAfter < time.Second {
		t.Fatalf("passive client with no free slot: %+v, want pending at 1 with a retry-after", a)
	}
}

// TestCheckInMidUpgradeRenewsLease: a client that comes back on the same
// version while upgrading (its offer lost, its connection broken) is
// offered again and starts its install only then: its check-in renews the
// lease, so the slot is not given away while it installs.
func TestCheckInMidUpgradeRenewsLease(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1; s.LeaseTime = time.Minute })
	if a := checkIn(t, e, t0, 1, KindPassive, vOld); a.State != StateUpgrading {
		t.Fatalf("client 1: %+v", a)
	}
	checkIn(t, e, t0, 2, KindActive, vOld)
	turn(t, e, t0)
	back := t0.Add(50 * time.Second)
	if a := checkIn(t, e, back, 1, KindPassive, vOld); a.State != StateUpgrading {
		t.Fatalf("client 1 back mid-upgrade: %+v", a)
	}
	if got := turn(t, e, t0.Add(61*time.Second)); len(got) != 0 {
		t.Fatalf("slot given to %v a minute after the start, 11 s after the re-offer", got)
	}
	if c, _ := e.Client(id(1)); c.State != StateUpgrading || !c.Lease.Equal(back.Add(time.Minute)) {
		t.Fatalf("client 1 after the renewal: %+v", c)
	}
	if got := turn(t, e, back.Add(61*time.Second)); len(got) != 1 || got[0] != id(2) {
		t.Fatalf("after the renewed lease: dispatched %v, want client 2", got)
	}
}

// TestUnreachedStartIsUndone: a start whose offer reached no connection
// (the client left as its slot came) is undone: the slot goes to the next
// online client, the attempt is not counted, and the client is first in
// line, overdue, when it is back. A client that came back meanwhile keeps
// its upgrade.
func TestUnreachedStartIsUndone(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	checkIn(t, e, t0, 9, KindActive, vOld) // holds the slot
	checkIn(t, e, t0, 1, KindPassive, vOld)
	checkIn(t, e, t0, 2, KindActive, vOld)
	turn(t, e, t0)
	checkIn(t, e, t0, 9, KindActive, vNew) // the slot frees: client 1 is next
	e.Tick(t0)
	out, err := e.TakeOutput(nil)
	if err != nil || len(out.Dispatches) != 1 || out.Dispatches[0].Client != id(1) {
		t.Fatalf("dispatches %+v %v, want client 1", out.Dispatches, err)
	}
	d := out.Dispatches[0]
	if err := e.Disconnect(t0, id(1)); err != nil { // gone before its offer
		t.Fatal(err)
	}
	if err := e.Unreached(t0, d, false); err != nil {
		t.Fatal(err)
	}
	if got := turn(t, e, t0); len(got) != 1 || got[0] != id(2) {
		t.Fatalf("after the undo dispatched %v, want client 2", got)
	}
	c, _ := e.Client(id(1))
	if c.State != StatePending || c.Lane != LaneJump || c.Attempts != 0 {
		t.Fatalf("client 1 after the undo: %+v, want pending in the jump lane, no attempt", c)
	}
	if a := checkIn(t, e, t0, 1, KindPassive, vOld); a.State != StatePending || a.RetryAfter != 0 || a.Position != 1 {
		t.Fatalf("client 1 back: %+v, want overdue at the head", a)
	}
	// Client 2 is upgrading, and comes back (its check-in renews the
	// lease) before the undo of its start: it keeps its upgrade.
	c2, _ := e.Client(id(2))
	if a := checkIn(t, e, t0.Add(time.Second), 2, KindActive, vOld); a.State != StateUpgrading {
		t.Fatalf("client 2 back: %+v, want upgrading", a)
	}
	if err := e.Unreached(t0, Dispatch{Client: id(2), Attempt: 1, Lease: c2.Lease}, true); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Client(id(2)); c.State != StateUpgrading {
		t.Fatalf("client 2, back, lost its upgrade: %+v", c)
	}
}

// TestUnreachedBeforeDisconnect: the transport reports an offer it could
// not deliver and the end of the connection separately; when the
// Disconnect comes second, the start is still undone (not left to hold
// its slot until the lease ends and then fail), and the client is offline.
func TestUnreachedBeforeDisconnect(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	checkIn(t, e, t0, 1, KindPassive, vOld) // started in its own turn
	out, err := e.TakeOutput(nil)
	if err != nil || len(out.Dispatches) != 1 {
		t.Fatalf("dispatches %+v %v, want client 1's", out.Dispatches, err)
	}
	d := out.Dispatches[0]
	// Not known gone (a client over HTTPS upgrades with no connection):
	// an online client keeps its start.
	if err := e.Unreached(t0, d, false); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Client(id(1)); c.State != StateUpgrading {
		t.Fatalf("client 1 lost its start without its connection known gone: %+v", c)
	}
	if err := e.Unreached(t0, d, true); err != nil { // its connection closed; the Disconnect is still on its way
		t.Fatal(err)
	}
	c, _ := e.Client(id(1))
	if c.State != StatePending || c.Lane != LaneJump || c.Attempts != 0 || c.Online {
		t.Fatalf("client 1 after the undo: %+v, want pending in the jump lane, no attempt, offline", c)
	}
	if got := turn(t, e, t0); len(got) != 0 {
		t.Fatalf("dispatched %v to a client whose connection is gone", got)
	}
	if err := e.Disconnect(t0, id(1)); err != nil {
		t.Fatal(err)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestLaneOrderWithinTurn: starts are made at the end of the turn, so a
// jumped client that checks in late in a turn still goes before a
// normal-lane client that checked in earlier in it (invariant 3 per turn).
// The answers, settled after the turn's dispatch, say who was started.
func TestLaneOrderWithinTurn(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	checkIn(t, e, t0, 9, KindActive, vOld) // holds the slot
	checkIn(t, e, t0, 1, KindPassive, vOld)
	if err := e.Disconnect(t0, id(1)); err != nil {
		t.Fatal(err)
	}
	checkIn(t, e, t0, 2, KindActive, vOld)
	turn(t, e, t0)
	if _, err := e.Jump(t0, id(1), 7); err != nil {
		t.Fatal(err)
	}
	// One turn: the slot frees, client 2 checks in again, and the jumped
	// client 1 comes back last.
	now := t0.Add(time.Minute)
	answers := map[int]Answer{}
	for _, c := range []struct {
		n    int
		kind Kind
		v    Version
	}{{9, KindActive, vNew}, {2, KindActive, vOld}, {1, KindPassive, vOld}} {
		a, err := e.CheckIn(now, CheckIn{ID: id(c.n), Kind: c.kind, Platform: PlatformWindowsX64, Version: c.v})
		if err != nil {
			t.Fatal(err)
		}
		answers[c.n] = a
	}
	if got := turn(t, e, now); len(got) != 1 || got[0] != id(1) {
		t.Fatalf("dispatched %v, want the jumped client 1", got)
	}
	if a := e.Settle(now, id(1), answers[1]); a.State != StateUpgrading {
		t.Fatalf("client 1 settled: %+v, want upgrading", a)
	}
	if a := e.Settle(now, id(2), answers[2]); a.State != StatePending || a.Position != 1 {
		t.Fatalf("client 2 settled: %+v, want pending at 1", a)
	}
}
