package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"jumpfleet/store"
)

// BenchmarkEngineHeartbeat measures the hot path: a current client's
// check-in, which decides "nothing to do" without a durable write.
func BenchmarkEngineHeartbeat(b *testing.B) {
	const fleet = 100_000
	e := newTestEngine(b, nil)
	for c := 0; c < fleet; c++ {
		if _, err := e.CheckIn(t0, CheckIn{ID: bid(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vNew}); err != nil {
			b.Fatal(err)
		}
	}
	e.TakeOutput(nil)
	ins := make([]CheckIn, fleet)
	for c := range ins {
		ins[c] = CheckIn{ID: bid(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vNew}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	now := t0
	for i := 0; i < b.N; i++ {
		if i%4096 == 0 {
			now = now.Add(time.Millisecond)
		}
		a, err := e.CheckIn(now, ins[i%fleet])
		if err != nil || a.State != StateCurrent {
			b.Fatal(a, err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
	if !e.out.Empty() {
		b.Fatal("a heartbeat produced output")
	}
}

func bid(c int) ClientID {
	var id ClientID
	id[0], id[1], id[2], id[3], id[15] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c), 9
	return id
}

// BenchmarkEngineJump measures jumps that move a pending client from the
// normal lane to the jump lane.
func BenchmarkEngineJump(b *testing.B) {
	const queue = 200_000
	var e *Engine
	setup := func() {
		e = newTestEngine(b, func(s *Settings) { s.Paused = true })
		for c := 0; c < queue; c++ {
			if _, err := e.CheckIn(t0, CheckIn{ID: bid(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld}); err != nil {
				b.Fatal(err)
			}
		}
		e.TakeOutput(nil)
	}
	setup()
	b.ReportAllocs()
	b.ResetTimer()
	var spent time.Duration
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%queue == 0 {
			spent += time.Since(start)
			b.StopTimer()
			setup()
			b.StartTimer()
			start = time.Now()
		}
		// Spread jumps over the queue: a prime stride visits every client.
		c := (i * 7919) % queue
		a, err := e.Jump(t0, bid(c), uint64(i)+1)
		if err != nil || a.Result != JumpUpgradePending {
			b.Fatal(a, err)
		}
		if i%1024 == 1023 {
			e.TakeOutput(nil)
		}
	}
	spent += time.Since(start)
	b.ReportMetric(float64(b.N)/spent.Seconds(), "jumps/s")
}

// BenchmarkEngineCheckInDurable measures state-changing check-ins (each
// queues an outdated client: one record written) through the Node, with
// real Pebble on disk and synced commits, from 256 concurrent callers as
// sessions would call it. In the same run it measures Pebble's own
// ceiling: the same records written by 256 concurrent synced committers
// of the same mean batch size, and reports the ratio.
func BenchmarkEngineCheckInDurable(b *testing.B) {
	const callers = 256
	n := max(b.N, 20_000)
	dir := b.TempDir()
	db, err := store.Open(filepath.Join(dir, "node"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := DefaultSettings()
	s.Paused = true // measure queueing, not dispatch
	var turns int64
	node, err := Open(NodeConfig{DB: db, Engine: Config{Settings: s}, OnCommit: func(uint64, *Output) { turns++ }})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	ctx := context.Background()
	if _, err := node.PublishRelease(ctx, Release{ID: "r2", Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: vNew}}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := w; c < n; c += callers {
				a, err := node.CheckIn(ctx, CheckIn{ID: bid(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vOld})
				if err != nil || a.State != StatePending {
					panic(fmt.Sprint(a, err))
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	rate := float64(n) / el.Seconds()
	b.ReportMetric(rate, "checkins/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu_us/checkin")
	meanBatch := float64(n) / float64(max(turns, 1))
	b.ReportMetric(meanBatch, "records/commit")

	// Pebble's ceilings in the same run, for the same records: one
	// committer with the node's mean batch size (what a single engine loop
	// can at best get), and 256 concurrent committers (group commit).
	pdb, err := store.Open(filepath.Join(dir, "raw"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	per := max(int(meanBatch), 1)
	single := rawWrites(b, pdb, 0, n, per, 1)
	group := rawWrites(b, pdb, n, n, per, callers)
	b.ReportMetric(single, "pebble_keys/s")
	b.ReportMetric(rate/single, "ratio_vs_pebble")
	b.ReportMetric(group, "pebble_group_keys/s")
}

// rawWrites writes n client records starting at id base straight to Pebble,
// per records per synced batch, from the given number of goroutines, and
// returns keys/s.
func rawWrites(b *testing.B, db *store.DB, base, n, per, goroutines int) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < goroutines; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r store.ClientRecord
			bt := db.NewBatch()
			defer bt.Close()
			for {
				mu.Lock()
				lo := next
				next += per
				mu.Unlock()
				if lo >= n {
					return
				}
				bt.Reset()
				for c := lo; c < min(lo+per, n); c++ {
					r = store.ClientRecord{ID: bid(base + c), Kind: 1, Platform: 1, State: 2, Lane: 2, Seq: uint64(c),
						Version: [3]uint16{24, 1, 0}, Revision: 100, LastCheckIn: 1767225600000, QueuedAt: 1767225600000}
					bt.PutClient(&r)
				}
				if err := db.Commit(bt, true); err != nil {
					panic(err)
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkStoreRecover measures reopening a store of 1M clients (a third
// of them queued, some upgrading) and rebuilding the engine: the time until
// the broker is ready, and the in-memory index size per client.
func BenchmarkStoreRecover(b *testing.B) {
	clients := 1_000_000
	if v := os.Getenv("JUMPFLEET_RECOVER_CLIENTS"); v != "" {
		fmt.Sscan(v, &clients)
	}
	dir := filepath.Join(b.TempDir(), "db")
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bt := db.NewBatch()
	var r store.ClientRecord
	for c := 0; c < clients; c++ {
		r = store.ClientRecord{ID: bid(c), Kind: uint8(1 + c%3), Platform: 1, State: 1,
			Version: [3]uint16{24, 1, 0}, Revision: 100, LastCheckIn: 1767225600000}
		switch c % 3 {
		case 1:
			r.State, r.Lane, r.Seq, r.QueuedAt = 2, 2, uint64(c), 1767225600000
		case 2:
			if c%300 == 2 {
				r.State, r.LeaseDeadline, r.StartedAt = 3, 1767225900000, 1767225600000
			}
		}
		bt.PutClient(&r)
		if bt.Len() == 10_000 {
			if err := db.Commit(bt, false); err != nil {
				b.Fatal(err)
			}
			bt.Reset()
		}
	}
	_ = db.Commit(bt, true)
	bt.Close()
	_ = db.Flush()
	_ = db.Close()
	b.ResetTimer()
	var perClient float64
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		db, err := store.Open(dir, store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		eng, _, err := Recover(db, Config{Settings: DefaultSettings()}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = db.Close()
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if eng.Len() != clients {
			b.Fatalf("recovered %d clients, want %d", eng.Len(), clients)
		}
		perClient = float64(m1.HeapAlloc-m0.HeapAlloc) / float64(clients)
		runtime.KeepAlive(eng)
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "recover_s")
	b.ReportMetric(perClient, "index_bytes/client")
	b.ReportMetric(float64(clients), "clients")
}

// BenchmarkNodeHeartbeat measures a current client's check-in through the
// Node (queue, loop, answer) from 256 concurrent callers: the cost the
// transport pays per heartbeat on top of its own.
func BenchmarkNodeHeartbeat(b *testing.B) {
	const callers, fleet = 256, 10_000
	db, err := store.Open(filepath.Join(b.TempDir(), "db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	node, err := Open(NodeConfig{DB: db})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	ctx := context.Background()
	for c := 0; c < fleet; c++ {
		if _, err := node.CheckIn(ctx, CheckIn{ID: bid(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: vNew}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < callers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < b.N; i += callers {
				if _, err := node.CheckIn(ctx, CheckIn{ID: bid(i % fleet), Kind: KindActive, Platform: PlatformWindowsX64, Version: vNew}); err != nil {
					panic(err)
				}
			}
		}(w)
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "heartbeats/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1000/float64(b.N), "cpu_us/heartbeat")
}
