package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// health turns what Pebble reports about the disk into log lines and
// metrics: synced commits and disk operations slower than a threshold, and
// write stalls (Pebble holding writes back while flushes or compactions
// catch up). Every engine turn that changes state waits for its synced
// commit before anything is answered, so a slow disk stops check-ins and
// upgrade starts as surely as a stopped process does; without this the
// broker looked frozen and said nothing.
//
// Pebble's disk-health callback runs on its monitoring goroutine and must
// not block on IO, and the write-stall callbacks run on its commit path, so
// every report is handed to one logging goroutine through a bounded
// channel; reports beyond its capacity are counted, not queued.
type health struct {
	log  *zap.Logger
	slow time.Duration

	notes   chan note
	stop    chan struct{}
	wg      sync.WaitGroup
	dropped atomic.Uint64

	stallSince atomic.Int64 // unix nanoseconds; 0 when no write stall is on

	commit       prometheus.Histogram
	stalls       prometheus.Counter
	stallSeconds prometheus.Counter
	diskSlow     prometheus.Counter
}

// note is one report for the logging goroutine.
type note struct {
	msg    string
	fields []zap.Field
}

func newHealth(log *zap.Logger, slow time.Duration) *health {
	if log == nil {
		log = zap.NewNop()
	}
	h := &health{log: log, slow: slow, notes: make(chan note, 64), stop: make(chan struct{}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "jumpfleet_store_commit_seconds",
			Help:    "Time to commit one engine turn's batch (synced: until it is durable).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}), // 0.5 ms … 131 s
		stalls: prometheus.NewCounter(prometheus.CounterOpts{Name: "jumpfleet_store_write_stalls_total",
			Help: "Write stalls: Pebble held writes back until flushes or compactions caught up."}),
		stallSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "jumpfleet_store_write_stall_seconds_total",
			Help: "Time spent in write stalls."}),
		diskSlow: prometheus.NewCounter(prometheus.CounterOpts{Name: "jumpfleet_store_disk_slow_total",
			Help: "Reports of a disk write or sync still running after the slow-disk threshold."}),
	}
	h.wg.Add(1)
	go h.run()
	return h
}

// run logs the reports until close.
func (h *health) run() {
	defer h.wg.Done()
	for {
		select {
		case n := <-h.notes:
			h.log.Warn(n.msg, n.fields...)
		case <-h.stop:
			return
		}
	}
}

// close stops the logging goroutine; reports still queued are dropped.
func (h *health) close() {
	close(h.stop)
	h.wg.Wait()
	if d := h.dropped.Load(); d > 0 {
		h.log.Warn("store health reports dropped", zap.Uint64("dropped", d))
	}
}

// report hands a note to the logging goroutine without blocking.
func (h *health) report(msg string, fields ...zap.Field) {
	select {
	case h.notes <- note{msg, fields}:
	default:
		h.dropped.Add(1)
	}
}

// committed records one commit's duration and reports it if slow.
func (h *health) committed(d time.Duration, sync bool, writes int) {
	h.commit.Observe(d.Seconds())
	if d >= h.slow {
		h.report("store commit slow", zap.Duration("took", d), zap.Bool("sync", sync), zap.Int("writes", writes))
	}
}

// listener is the Pebble event listener of this health monitor.
func (h *health) listener() pebble.EventListener {
	return pebble.EventListener{
		DiskSlow: func(i pebble.DiskSlowInfo) {
			h.diskSlow.Inc()
			h.report("disk slow", zap.String("op", i.OpType.String()), zap.String("path", i.Path),
				zap.Int("bytes", i.WriteSize), zap.Duration("ongoing", i.Duration))
		},
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) {
			h.stalls.Inc()
			h.stallSince.Store(time.Now().UnixNano())
			h.report("store write stall", zap.String("reason", i.Reason))
		},
		WriteStallEnd: func() {
			if t := h.stallSince.Swap(0); t != 0 {
				d := time.Since(time.Unix(0, t))
				h.stallSeconds.Add(d.Seconds())
				h.report("store write stall over", zap.Duration("took", d))
			}
		},
	}
}

// Collectors returns the store's metrics, for a Prometheus registry.
func (db *DB) Collectors() []prometheus.Collector {
	h := db.health
	return []prometheus.Collector{h.commit, h.stalls, h.stallSeconds, h.diskSlow}
}
