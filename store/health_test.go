package store

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// slowSyncFS delays every sync of a file it creates or reuses by delay
// (nanoseconds, changed while Pebble runs): a disk that takes its time to
// make a commit durable.
type slowSyncFS struct {
	vfs.FS
	delay *atomic.Int64
}

func (fs slowSyncFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, cat)
	return slowSyncFile{f, fs.delay}, err
}

func (fs slowSyncFS) ReuseForWrite(oldname, newname string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, cat)
	return slowSyncFile{f, fs.delay}, err
}

type slowSyncFile struct {
	vfs.File
	delay *atomic.Int64
}

func (f slowSyncFile) wait() { time.Sleep(time.Duration(f.delay.Load())) }

func (f slowSyncFile) Sync() error { f.wait(); return f.File.Sync() }

func (f slowSyncFile) SyncData() error { f.wait(); return f.File.SyncData() }

func (f slowSyncFile) SyncTo(n int64) (bool, error) { f.wait(); return f.File.SyncTo(n) }

// samples is how many observations a histogram holds (prometheus's
// testutil reads counters and gauges, not a histogram's count).
func samples(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func waitLogs(t *testing.T, logs *observer.ObservedLogs, msg string) []observer.LoggedEntry {
	t.Helper()
	// The reports reach the log from the health goroutine: wait for it
	// (bounded; the assertion is on what arrives, not on how fast).
	for range 500 {
		if got := logs.FilterMessage(msg).All(); len(got) > 0 {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q in the log; have %v", msg, logs.All())
	return nil
}

// TestSlowCommitIsReported: a synced commit slower than SlowDisk is logged
// and counted in the commit histogram; a fast one is counted, not logged.
func TestSlowCommitIsReported(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	fs := slowSyncFS{FS: vfs.NewMem(), delay: new(atomic.Int64)}
	// The threshold is the default (1 s), far above what a commit to
	// memory takes even on a loaded machine, so that the first, fast
	// commit is never reported; the slow one waits just past it.
	db, err := Open("db", Options{FS: fs, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func() {
		b := db.NewBatch()
		defer b.Close()
		b.Put(Key(NSMeta, []byte("k")), []byte("v"))
		if err := db.Commit(b, true); err != nil {
			t.Fatal(err)
		}
	}
	commit() // not slowed yet
	if n := len(logs.FilterMessage("store commit slow").All()); n != 0 {
		t.Fatalf("fast commit logged as slow (%d lines)", n)
	}
	fs.delay.Store(int64(1100 * time.Millisecond))
	commit()
	fs.delay.Store(0) // Close syncs too
	got := waitLogs(t, logs, "store commit slow")
	if f := got[0].ContextMap(); f["sync"] != true || f["writes"] != int64(1) {
		t.Fatalf("slow-commit fields %v", f)
	}
	if n := samples(t, db.health.commit); n != 2 {
		t.Fatalf("commit histogram counted %d commits, want 2", n)
	}
}

// TestWriteStallAndDiskSlowAreReported drives the Pebble listener directly
// (a real write stall needs a disk slower than compaction can hide): each
// event is logged and counted, and a stall's length is added up.
func TestWriteStallAndDiskSlowAreReported(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	h := newHealth(zap.New(core), time.Second)
	defer h.close()
	l := h.listener()
	l.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "memtable count limit reached"})
	time.Sleep(5 * time.Millisecond)
	l.WriteStallEnd()
	l.WriteStallEnd() // an unmatched end adds nothing
	l.DiskSlow(pebble.DiskSlowInfo{Path: "000002.log", OpType: vfs.OpTypeSync, Duration: 3 * time.Second})

	if r := waitLogs(t, logs, "store write stall")[0].ContextMap()["reason"]; r != "memtable count limit reached" {
		t.Fatalf("stall reason %v", r)
	}
	waitLogs(t, logs, "store write stall over")
	if f := waitLogs(t, logs, "disk slow")[0].ContextMap(); f["op"] != "sync" || f["path"] != "000002.log" {
		t.Fatalf("disk-slow fields %v", f)
	}
	if n := testutil.ToFloat64(h.stalls); n != 1 {
		t.Fatalf("stalls %v, want 1", n)
	}
	if s := testutil.ToFloat64(h.stallSeconds); !(s >= 0.005) {
		t.Fatalf("stall seconds %v, want at least the 5 ms slept", s)
	}
	if n := testutil.ToFloat64(h.diskSlow); n != 1 {
		t.Fatalf("disk slow %v, want 1", n)
	}
}

// TestHealthReportsNeverBlock: with the logging goroutine stopped, reports
// beyond the channel's capacity are dropped and counted, never waited for
// (Pebble calls them on its commit path and its disk monitor).
func TestHealthReportsNeverBlock(t *testing.T) {
	h := newHealth(nil, time.Second)
	h.close()
	for range cap(h.notes) + 10 {
		h.committed(2*time.Second, true, 1)
	}
	if d := h.dropped.Load(); d != 10 {
		t.Fatalf("dropped %d, want 10", d)
	}
}

// TestCloseTwiceWithHealth: Close stops the health goroutine once.
func TestCloseTwiceWithHealth(t *testing.T) {
	db, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil && !errors.Is(err, pebble.ErrClosed) {
		t.Fatal(err)
	}
}
