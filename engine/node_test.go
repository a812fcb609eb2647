package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"jumpfleet/store"
)

type recorder struct {
	mu         sync.Mutex
	dispatches []Dispatch
	ready      []JumpReady
	events     []Event
}

func (r *recorder) onCommit(turn uint64, out *Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dispatches = append(r.dispatches, out.Dispatches...)
	r.ready = append(r.ready, out.JumpReady...)
	r.events = append(r.events, out.Events...)
}

func (r *recorder) dispatched() []Dispatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Dispatch(nil), r.dispatches...)
}

func (r *recorder) count(t EventType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == t {
			n++
		}
	}
	return n
}

func openNode(t testing.TB, fs vfs.FS, rec *recorder, change func(*Settings)) (*Node, *store.DB) {
	t.Helper()
	db, err := store.Open("db", store.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	s := DefaultSettings()
	s.MaxConcurrent = 2
	s.LeaseTime = time.Minute
	s.RetryLimit = 1
	if change != nil {
		change(&s)
	}
	cfg := NodeConfig{DB: db, Engine: Config{Settings: s}}
	if rec != nil {
		cfg.OnCommit = rec.onCommit
	}
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n, db
}

// publishR2 publishes site release r2: windows-x64 to vNew.
func publishR2(t testing.TB, n *Node) {
	t.Helper()
	if _, err := n.PublishRelease(context.Background(), Release{ID: "r2", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew}}}); err != nil {
		t.Fatal(err)
	}
}

// openOneSlot opens a node on an in-memory store with one slot and r2
// published.
func openOneSlot(t testing.TB, rec *recorder) (*Node, *store.DB) {
	t.Helper()
	n, db := openNode(t, vfs.NewMem(), rec, func(s *Settings) { s.MaxConcurrent = 1 })
	publishR2(t, n)
	return n, db
}

// TestNodeLeaseExpiryVirtualTime runs the driver under synctest: the lease
// runs out on virtual time and the slot is given to the next client
// without any input.
func TestNodeLeaseExpiryVirtualTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		n, db := openOneSlot(t, rec)
		defer db.Close()
		defer n.Close()
		ctx := context.Background()
		for c := 1; c <= 2; c++ {
			a, err := n.CheckIn(ctx, CheckIn{ID: id(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld})
			if want := []State{StateUpgrading, StatePending}[c-1]; err != nil || a.State != want {
				t.Fatalf("check-in %d: %+v %v", c, a, err)
			}
		}
		synctest.Wait()
		if got := len(rec.dispatched()); got != 1 {
			t.Fatalf("dispatches %d, want 1", got)
		}
		time.Sleep(61 * time.Second) // client 1 never reports progress
		synctest.Wait()
		if ds := rec.dispatched(); rec.count(EvLeaseExpired) != 1 || len(ds) != 2 || ds[1].Client != id(2) {
			t.Fatalf("after the lease: %d expiries, dispatches %v", rec.count(EvLeaseExpired), ds)
		}
		c1, _ := n.Client(ctx, id(1))
		if c1.State != StateFailed {
			t.Fatalf("client 1 is %v after its only attempt expired", c1.State)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
		if err := n.Close(); err != nil { // twice is fine
			t.Fatal(err)
		}
		if _, err := n.Status(ctx); CodeOf(err) != CodeClosed {
			t.Fatalf("request after close: %v", err)
		}
	})
}

// TestNodeTimerFollowsDeadlines: the turn timer is moved only to an
// earlier deadline (arm); a later one lets it fire early and re-arm. Under
// synctest, leases must still run out exactly when due as the earliest
// deadline moves later (client 1's progress extends its lease past client
// 2's) and earlier (the first lease after an idle hour's timer).
func TestNodeTimerFollowsDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		n, db := openNode(t, vfs.NewMem(), rec, nil) // 2 slots, 1-minute leases, one attempt
		defer db.Close()
		defer n.Close()
		publishR2(t, n)
		ctx := context.Background()
		checkIn := func(c int) {
			t.Helper()
			if a, err := n.CheckIn(ctx, CheckIn{ID: id(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld}); err != nil || a.State != StateUpgrading {
				t.Fatalf("check-in %d: %+v %v", c, a, err)
			}
		}
		expired := func() int { synctest.Wait(); return rec.count(EvLeaseExpired) }

		checkIn(1)                   // lease to 60 s: earlier than the idle timer's hour
		time.Sleep(30 * time.Second) // 30 s
		checkIn(2)                   // lease to 90 s: later, the timer is left at 60 s
		time.Sleep(10 * time.Second) // 40 s
		if err := n.Progress(ctx, id(1), 1); err != nil {
			t.Fatal(err) // client 1's lease now runs to 100 s
		}
		time.Sleep(49 * time.Second) // 89 s: the timer fired early at 60 s and re-armed
		if got := expired(); got != 0 {
			t.Fatalf("%d leases expired by 89 s, want 0", got)
		}
		time.Sleep(2 * time.Second) // 91 s
		if got := expired(); got != 1 {
			t.Fatalf("%d leases expired by 91 s, want client 2's", got)
		}
		time.Sleep(10 * time.Second) // 101 s
		if got := expired(); got != 2 {
			t.Fatalf("%d leases expired by 101 s, want both", got)
		}
	})
}

// TestNodeRestartKeepsState closes and reopens a node: queue positions,
// leases (with their deadlines) and settings survive.
func TestNodeRestartKeepsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := vfs.NewMem()
		n, db := openNode(t, fs, nil, func(s *Settings) { s.MaxConcurrent = 1 })
		ctx := context.Background()
		_, _ = n.PublishRelease(ctx, Release{ID: "r2", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew}}})
		for c := 1; c <= 3; c++ {
			_, _ = n.CheckIn(ctx, CheckIn{ID: id(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld})
		}
		_, _ = n.Jump(ctx, id(3), 9)
		_, _ = n.UpdateSettings(ctx, func(s *Settings) error { s.MaxConcurrent = 7; s.Paused = true; return nil })
		before, _ := n.Client(ctx, id(1))
		_ = n.Close()
		_ = db.Close()

		n, db = openNode(t, fs, nil, nil)
		defer db.Close()
		defer n.Close()
		s, _ := n.Settings(ctx)
		if s.MaxConcurrent != 7 || !s.Paused {
			t.Fatalf("settings after restart: %+v", s)
		}
		c1, _ := n.Client(ctx, id(1))
		if c1.State != StateUpgrading || !c1.Lease.Equal(before.Lease) || c1.Online {
			t.Fatalf("client 1 after restart: %+v (before %+v)", c1, before)
		}
		c3, _ := n.Client(ctx, id(3))
		c2, _ := n.Client(ctx, id(2))
		if c3.Lane != LaneJump || c3.Position != 1 || c2.Position != 2 {
			t.Fatalf("queue after restart: 3 at %v/%d, 2 at %d", c3.Lane, c3.Position, c2.Position)
		}
		st, _ := n.Status(ctx)
		if st.InFlight != 1 || st.Site["windows-x64"] != vNew.String() {
			t.Fatalf("status after restart: %+v", st)
		}
	})
}

// TestCrashLosesNothingAcknowledged hammers a node from many goroutines,
// takes a crash image of the file system at a random moment (only synced
// data survives), recovers from it, and checks that every change that was
// acknowledged before the crash is there and no slot leaked.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			crashOnce(t, seed)
		})
	}
}

type ack struct {
	client int
	kind   string // "queued", "jumped", "started"
}

func crashOnce(t *testing.T, seed uint64) {
	fs := vfs.NewCrashableMem()
	var mu sync.Mutex
	var acks []ack
	started := map[int]bool{}
	rec := func(turn uint64, out *Output) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range out.Dispatches {
			started[int(d.Client[0])<<8|int(d.Client[1])] = true
		}
	}
	db, err := store.Open("db", store.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	s := DefaultSettings()
	s.MaxConcurrent = 20
	s.StartsPerSec, s.StartBurst = 1e6, 1e6
	n, err := Open(NodeConfig{DB: db, Engine: Config{Settings: s}, OnCommit: rec})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	publishR2(t, n)
	const workers, perWorker = 8, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for k := 0; k < perWorker; k++ {
				select {
				case <-stop:
					return
				default:
				}
				c := w*perWorker + k
				a, err := n.CheckIn(ctx, CheckIn{ID: id(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld})
				if err != nil {
					return
				}
				mu.Lock()
				acks = append(acks, ack{c, "queued"})
				if a.State == StateUpgrading {
					started[c] = true
				}
				mu.Unlock()
				if rng.IntN(4) == 0 {
					j, err := n.Jump(ctx, id(c), 0)
					if err != nil {
						return
					}
					if j.Lane == LaneJump {
						mu.Lock()
						acks = append(acks, ack{c, "jumped"})
						mu.Unlock()
					}
				}
			}
		}(w)
	}
	rng := rand.New(rand.NewPCG(seed, 99))
	// Crash after a random number of acknowledgements (not after a random
	// time: the test must not depend on the machine's speed).
	target := 50 + rng.IntN(600)
	for {
		mu.Lock()
		got := len(acks)
		mu.Unlock()
		if got >= target {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	mu.Lock()
	acked := append([]ack(nil), acks...)
	mu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, 5))})
	close(stop)
	wg.Wait()
	_ = n.Close()
	_ = db.Close()
	if len(acked) == 0 {
		t.Fatal("nothing was acknowledged before the crash: the test proves nothing")
	}

	db2, err := store.Open("db", store.Options{FS: crashed})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	eng, _, err := Recover(db2, Config{Settings: s}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	for _, a := range acked {
		c, ok := eng.Client(id(a.client))
		if !ok {
			t.Fatalf("acknowledged client %d lost", a.client)
		}
		switch a.kind {
		case "queued":
			if c.State == StateCurrent {
				t.Fatalf("client %d was acknowledged as queued, recovered as current", a.client)
			}
		case "jumped":
			if c.State == StatePending && c.Lane != LaneJump {
				t.Fatalf("client %d was acknowledged in the jump lane, recovered in %v", a.client, c.Lane)
			}
		}
	}
	if eng.InFlight() > s.MaxConcurrent {
		t.Fatalf("recovered %d in flight > max %d", eng.InFlight(), s.MaxConcurrent)
	}
	// No slot leaks: once every lease has run out, nothing holds a slot
	// and the queue moves on.
	eng.Tick(time.Now().Add(s.LeaseTime + time.Minute))
	st := eng.Status(time.Now())
	if eng.InFlight() != 0 || st.ByState["upgrading"] != 0 {
		t.Fatalf("after every lease ran out: in flight %d, %d upgrading", eng.InFlight(), st.ByState["upgrading"])
	}
	t.Logf("acknowledged %d changes before the crash; recovered %d clients", len(acked), st.Clients)
}

// TestNodePostOrder: a posted request is applied before anything queued
// after Post returns, and nobody waits for it.
func TestNodePostOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, db := openNode(t, vfs.NewMem(), nil, nil)
		defer db.Close()
		defer n.Close()
		ctx := context.Background()
		for round := 0; round < 100; round++ {
			if _, err := n.CheckIn(ctx, CheckIn{ID: id(1), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld}); err != nil {
				t.Fatal(err)
			}
			if err := n.DisconnectAsync(ctx, id(1)); err != nil {
				t.Fatal(err)
			}
			if c, err := n.Client(ctx, id(1)); err != nil || c.Online {
				t.Fatalf("round %d: after a posted disconnect the client is online=%v (%v)", round, c.Online, err)
			}
		}
		_ = n.Close()
		if err := n.DisconnectAsync(ctx, id(1)); CodeOf(err) != CodeClosed {
			t.Fatalf("post after close: %v", err)
		}
	})
}

// TestCheckInOnceLeavesOffline: a client checked in with CheckInOnce is
// offline again within the request unless it was started, so a slot freed
// later goes to a client that is there, not to one that has gone.
func TestCheckInOnceLeavesOffline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		n, db := openOneSlot(t, rec)
		defer db.Close()
		defer n.Close()
		ctx := context.Background()
		checkIn := func(c int, k Kind, v Version, once bool) Answer {
			t.Helper()
			in := CheckIn{ID: id(c), Kind: k, Platform: PlatformWindowsX64, Version: v}
			a, err := n.CheckIn(ctx, in)
			if once {
				a, err = n.CheckInOnce(ctx, in, nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
		online := func(c int) bool {
			t.Helper()
			info, err := n.Client(ctx, id(c))
			if err != nil {
				t.Fatal(err)
			}
			return info.Online
		}
		if a := checkIn(1, KindActive, vOld, false); a.State != StateUpgrading {
			t.Fatalf("client 1: %+v, want upgrading", a)
		}
		if a := checkIn(2, KindPassive, vOld, true); a.State != StatePending || online(2) {
			t.Fatalf("client 2 with no free slot: %+v, online %v: want pending and offline", a, online(2))
		}
		checkIn(1, KindActive, vNew, false) // the slot frees; nobody online waits
		synctest.Wait()
		if ds := rec.dispatched(); len(ds) != 1 || ds[0].Client != id(1) {
			t.Fatalf("dispatches %v, want client 1's only", ds)
		}
		// With the slot free, the check-in starts it and it stays online
		// for its offer.
		if a := checkIn(2, KindPassive, vOld, true); a.State != StateUpgrading || !online(2) {
			t.Fatalf("client 2 with a free slot: %+v, online %v: want upgrading and online", a, online(2))
		}
	})
}
