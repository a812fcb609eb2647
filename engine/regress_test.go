package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"jumpfleet/store"
)

// Regression tests for bugs found in review.

var vNewer = Version{24, 3, 0, 300}

func publish(t *testing.T, e *Engine, id string, v Version) {
	t.Helper()
	if err := e.PublishRelease(t0, Release{ID: id, Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: v}}}); err != nil {
		t.Fatal(err)
	}
}

// A jumped client that finishes on an older target re-enters the jump lane.
func TestRequeueAfterFinishKeepsJumpLane(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	checkIn(t, e, t0, 1, KindActive, vOld)
	turn(t, e, t0)
	checkIn(t, e, t0, 2, KindActive, vOld)
	if a, _ := e.Jump(t0, id(1), 77); a.Result != JumpUpgradePending {
		t.Fatalf("jump: %+v", a)
	}
	publish(t, e, "r3", vNewer)
	// Back on vNew, outdated again: re-queued and, the slot being free,
	// started in the same check-in, ahead of client 2 (queued before it in
	// the normal lane): it went to the jump lane.
	a := checkIn(t, e, t0.Add(time.Minute), 1, KindActive, vNew)
	got := turn(t, e, t0.Add(time.Minute))
	if a.State != StateUpgrading || len(got) != 1 || got[0] != id(1) {
		t.Fatalf("jumped client answered %+v; next dispatch %v", a, got)
	}
}

// Attempts spent on an older target do not count against the new one.
func TestRequeueAfterFinishResetsAttempts(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.RetryLimit = 2; s.RetryBase = time.Second; s.RetryMax = time.Second })
	now := t0
	checkIn(t, e, now, 1, KindActive, vOld)
	turn(t, e, now)
	_ = e.Fail(now, id(1), "disk full")
	now = now.Add(time.Minute)
	if got := turn(t, e, now); len(got) != 1 {
		t.Fatalf("retry not dispatched: %v", got)
	}
	publish(t, e, "r3", vNewer)
	checkIn(t, e, now, 1, KindActive, vNew)
	turn(t, e, now)
	_ = e.Fail(now, id(1), "network blip")
	if info, _ := e.Client(id(1)); info.State == StateFailed {
		t.Fatalf("first failure towards %s marked failed (attempts %d)", vNewer, info.Attempts)
	}
}

// A release that makes a queued client's version the target: it is never
// dispatched, and the sweep makes it current.
func TestReleaseMakesQueuedClientCurrent(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.Paused = true })
	checkIn(t, e, t0, 1, KindActive, vNewer) // ahead of vNew: queued
	publish(t, e, "r3", vNewer)
	s := e.Settings()
	s.Paused = false
	_ = e.SetSettings(t0, s)
	e.Tick(t0)
	out, _ := e.TakeOutput(nil)
	if len(out.Dispatches) != 0 {
		t.Fatalf("dispatched %v to a client already on the target", out.Dispatches)
	}
	if c, _ := e.Client(id(1)); c.State != StateCurrent {
		t.Fatalf("client is %v", c.State)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// A failed client whose version became the target is jumpable.
func TestJumpToFailedClientMadeCurrentByRelease(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.RetryLimit = 1 })
	checkIn(t, e, t0, 1, KindActive, vOld)
	turn(t, e, t0)
	_ = e.Fail(t0, id(1), "x")
	publish(t, e, "r3", vOld)
	if a, _ := e.Jump(t0, id(1), 5); a.Result != JumpAllowed {
		t.Fatalf("answered %v (lane %v)", a.Result, a.Lane)
	}
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// A lease that expires after a release made the client's version the
// target makes it current instead of queueing it again.
func TestLeaseExpiryAfterRollback(t *testing.T) {
	e := newTestEngine(t, nil)
	checkIn(t, e, t0, 1, KindActive, vOld)
	turn(t, e, t0)
	publish(t, e, "r3", vOld)
	e.Tick(t0.Add(e.Settings().LeaseTime + time.Second))
	if err := e.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.Client(id(1)); c.State != StateCurrent || e.InFlight() != 0 {
		t.Fatalf("client %v, in flight %d", c.State, e.InFlight())
	}
}

// A release whose package description is not JSON is refused up front
// instead of failing the commit and stopping the node.
func TestInvalidPackageRefused(t *testing.T) {
	db, err := store.Open("db", store.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := Open(NodeConfig{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	_, err = n.PublishRelease(ctx, Release{ID: "r2", Kind: ReleaseSite,
		Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew, Package: json.RawMessage("{")}}})
	if CodeOf(err) != CodeBadRequest {
		t.Fatalf("bad package: %v", err)
	}
	if _, err := n.Status(ctx); err != nil {
		t.Fatalf("node stopped: %v", err)
	}
}

// An overdue passive client served after newer ones does not move the
// dispatch frontier back: the clients between it and the frontier are
// still overdue (told retry-after 0: stay for the next slot) instead of
// being sent away again with an estimate for a turn that has passed.
func TestFrontierDoesNotMoveBackForOverdueClients(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.MaxConcurrent = 1 })
	now := t0
	checkIn(t, e, now, 9, KindActive, vOld) // holds the slot while 1–4 queue
	for n := 1; n <= 4; n++ {
		if a := checkIn(t, e, now, n, KindPassive, vOld); a.State != StatePending {
			t.Fatalf("client %d: %+v, want pending", n, a)
		}
		if err := e.Disconnect(now, id(n)); err != nil {
			t.Fatal(err)
		}
	}
	checkIn(t, e, now, 9, KindActive, vNew)
	if got := turn(t, e, now); len(got) != 1 || got[0] != id(9) {
		t.Fatalf("dispatched %v, want only client 9 (the others are offline)", got)
	}
	// 4 is the only one online: it takes the slot in its check-in and
	// passes 1, 2 and 3.
	now = now.Add(time.Second)
	if a := checkIn(t, e, now, 4, KindPassive, vOld); a.State != StateUpgrading {
		t.Fatalf("client 4 online with a free slot: %+v", a)
	}
	turn(t, e, now)
	// Each of the others checks in while the one before holds the slot:
	// overdue (pending, retry-after 0: stay for the next slot), and
	// started when the slot frees. Serving 1 late must not make 2 and 3
	// "not overdue" again.
	prev := 4
	for _, n := range []int{1, 2, 3} {
		now = now.Add(time.Second)
		if a := checkIn(t, e, now, n, KindPassive, vOld); a.State != StatePending || a.RetryAfter != 0 || a.Rejoin < time.Second {
			t.Fatalf("client %d: %+v, want overdue (pending, retry-after 0, a rejoin time in case it cannot stay)", n, a)
		}
		checkIn(t, e, now, prev, KindPassive, vNew) // the slot frees
		if got := turn(t, e, now); len(got) != 1 || got[0] != id(n) {
			t.Fatalf("client %d online with a free slot, dispatched %v", n, got)
		}
		if err := e.Disconnect(now, id(prev)); err != nil {
			t.Fatal(err)
		}
		prev = n
	}
}

// The release sweep queues the persistent clients online at publish, not a
// passive one: its check-in was just answered "current" and it is leaving,
// so it would not hear that it was queued until a period later, its turn
// long past. It is queued by its next check-in, which tells it so.
func TestSweepLeavesPassiveClientsToTheirCheckIn(t *testing.T) {
	e := newTestEngine(t, func(s *Settings) { s.Paused = true })
	checkIn(t, e, t0, 1, KindActive, vNew)
	checkIn(t, e, t0, 2, KindPassive, vNew)
	publish(t, e, "r3", vNewer)
	turn(t, e, t0)
	if c, _ := e.Client(id(1)); c.State != StatePending {
		t.Fatalf("active client online at publish is %v: want queued by the sweep", c.State)
	}
	if c, _ := e.Client(id(2)); c.State != StateCurrent {
		t.Fatalf("passive client online at publish is %v: want left to its next check-in", c.State)
	}
	if a := checkIn(t, e, t0.Add(time.Minute), 2, KindPassive, vNew); a.State != StatePending || a.Position != 2 {
		t.Fatalf("passive client's next check-in answered %+v: want pending behind the active one", a)
	}
}
