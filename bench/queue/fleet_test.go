package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"jumpfleet/engine"
	"jumpfleet/store"
)

// BenchmarkQueue measures jumpfleet's own queue: an engine.Node over a
// Pebble store on disk, every turn committed with fsync. Producers are
// concurrent check-ins of outdated clients (each queues one upgrade), jumps
// are console jump attempts, dispatches arrive through OnCommit and a
// completion is the client checking in on the new version.
func BenchmarkQueue(b *testing.B) { benchMix(b, DefaultMix, openFleet) }

func TestQueueMix(t *testing.T) { testBackend(t, openFleet) }

var (
	fleetOld = engine.Version{Major: 1, Minor: 0, Patch: 0}
	fleetNew = engine.Version{Major: 2, Minor: 0, Patch: 0}
)

type fleetQueue struct {
	m    Mix
	node *engine.Node
	// dispatched carries dispatches from OnCommit to the workers. The
	// engine never has more than Limit in flight, so Limit slots never
	// fill; a full channel is counted, not waited on (OnCommit must not
	// block).
	dispatched chan engine.ClientID
	dropped    atomic.Int64
}

func openFleet(tb testing.TB, m Mix) backend {
	db, err := store.Open(tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	q := &fleetQueue{m: m, dispatched: make(chan engine.ClientID, 2*m.Limit)}
	s := engine.DefaultSettings()
	s.MaxConcurrent = m.Limit
	s.StartsPerSec = engine.MaxStartsPerSec // the limit under test is in-flight, not the start rate
	s.StartBurst = 4 * m.Limit
	s.Paused = true
	q.node, err = engine.Open(engine.NodeConfig{DB: db, Engine: engine.Config{Settings: s, Seed: m.Seed},
		OnCommit: func(_ uint64, out *engine.Output) {
			for _, d := range out.Dispatches {
				select {
				case q.dispatched <- d.Client:
				default:
					q.dropped.Add(1)
				}
			}
		}})
	if err != nil {
		db.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		q.node.Close()
		db.Close()
	})
	_, err = q.node.PublishRelease(context.Background(), engine.Release{ID: "bench-2", Kind: engine.ReleaseSite,
		Targets: []engine.Target{{Platform: engine.PlatformWindowsX64, Version: fleetNew}}})
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// fleetID makes job i of round r a client id, and back.
func fleetID(r, i int) engine.ClientID {
	var id engine.ClientID
	binary.BigEndian.PutUint64(id[0:8], uint64(r))
	binary.BigEndian.PutUint64(id[8:16], uint64(i))
	return id
}

func fleetIndex(id engine.ClientID) int { return int(binary.BigEndian.Uint64(id[8:16])) }

func (q *fleetQueue) Enqueue(ctx context.Context, r, i int) error {
	a, err := q.node.CheckIn(ctx, engine.CheckIn{ID: fleetID(r, i), Kind: engine.KindActive,
		Platform: engine.PlatformWindowsX64, Version: fleetOld})
	if err == nil && a.State != engine.StatePending {
		err = fmt.Errorf("client %d checked in outdated but is %s, not pending", i, a.State)
	}
	return err
}

func (q *fleetQueue) Jump(ctx context.Context, r, i int) error {
	a, err := q.node.Jump(ctx, fleetID(r, i), 0)
	if err == nil && (a.Result != engine.JumpUpgradePending || a.Lane != engine.LaneJump) {
		err = fmt.Errorf("jump to client %d: %s in lane %s, want upgrade_pending in the jump lane", i, a.Result, a.Lane)
	}
	return err
}

func (q *fleetQueue) Run(ctx context.Context, r int, tr *Tracker) error {
	var (
		completed atomic.Int64
		allDone   = make(chan struct{})
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		errOnce   sync.Once
		werr      error
	)
	fail := func(err error) { errOnce.Do(func() { werr = err }) }
	for range q.m.Limit {
		wg.Go(func() {
			for {
				var id engine.ClientID
				select {
				case id = <-q.dispatched:
				case <-stop:
					return
				}
				i := fleetIndex(id)
				tr.Start(i)
				tr.Finish(i)
				a, err := q.node.CheckIn(ctx, engine.CheckIn{ID: id, Kind: engine.KindActive,
					Platform: engine.PlatformWindowsX64, Version: fleetNew})
				if err == nil && a.State != engine.StateCurrent {
					err = fmt.Errorf("client %d back on the target version is %s, not current", i, a.State)
				}
				if err != nil {
					fail(err)
				}
				if completed.Add(1) == int64(q.m.N) {
					close(allDone)
				}
			}
		})
	}
	_, err := q.node.UpdateSettings(ctx, func(s *engine.Settings) error { s.Paused = false; return nil })
	if err == nil {
		select {
		case <-allDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	close(stop)
	wg.Wait()
	if err == nil {
		_, err = q.node.UpdateSettings(ctx, func(s *engine.Settings) error { s.Paused = true; return nil })
	}
	if err == nil {
		err = werr
	}
	if err == nil && q.dropped.Load() != 0 {
		err = fmt.Errorf("%d dispatches found the worker channel full", q.dropped.Load())
	}
	return err
}
