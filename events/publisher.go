package events

import (
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"jumpfleet/engine"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Conn is the NATS connection to publish on (required). The Publisher
	// does not close it.
	Conn *nats.Conn
	// Prefix is the subject prefix (default DefaultPrefix).
	Prefix string
	// QueueLen bounds the events waiting to be published (default 65536).
	// Events that do not fit are dropped and counted (reason queue_full).
	QueueLen int
	// DrainTimeout bounds how long Close waits for queued events to reach
	// NATS (default 5s).
	DrainTimeout time.Duration
	// Logger receives rate-limited publish failures (default: none).
	Logger *zap.Logger
}

// Drop reasons, as in the jumpfleet_events_dropped_total metric.
const (
	DropQueueFull    = "queue_full"
	DropPublishError = "publish_error"
	DropEncodeError  = "encode_error"
	DropClosed       = "closed"
)

var dropReasons = [...]string{DropQueueFull, DropPublishError, DropEncodeError, DropClosed}

// typeIndex returns t's index in engine.EventTypes, or its length for a
// type the list does not know (counted as "other"). Events are counted by
// type as they are handed over (jumpfleet_engine_events_total), published
// or not: lease expiries and retries are what an admin watches a rollout
// for.
func typeIndex(t engine.EventType) int {
	for i, k := range engine.EventTypes {
		if k == t {
			return i
		}
	}
	return len(engine.EventTypes)
}

// Publisher publishes committed events on NATS from its own goroutine.
// Enqueue never blocks: the engine goroutine hands over a turn's events and
// goes on; when the bounded queue is full the events are dropped and
// counted. Delivery is therefore at most once; the Nats-Msg-Id header lets a
// JetStream stream de-duplicate anything published twice.
type Publisher struct {
	cfg PublisherConfig

	mu      sync.Mutex
	queue   []batch // guarded by mu
	queued  int     // guarded by mu; events in queue
	closed  bool    // guarded by mu
	wake    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	published atomic.Uint64
	dropped   [len(dropReasons)]atomic.Uint64
	byType    [len(engine.EventTypes) + 1]atomic.Uint64 // the last one: types not in the list

	descPublished, descDropped, descByType *prometheus.Desc
}

type batch struct {
	turn uint64
	evs  []engine.Event
}

// NewPublisher starts a publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.Conn == nil {
		return nil, errors.New("events: PublisherConfig.Conn is nil")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 65536
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	p := &Publisher{cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		descPublished: prometheus.NewDesc("jumpfleet_events_published_total", "Engine events published on NATS.", nil, nil),
		descDropped:   prometheus.NewDesc("jumpfleet_events_dropped_total", "Engine events not published, by reason.", []string{"reason"}, nil),
		descByType:    prometheus.NewDesc("jumpfleet_engine_events_total", "Engine events committed, by type.", []string{"type"}, nil),
	}
	go p.run()
	return p, nil
}

// Enqueue queues a committed turn's events. It never blocks. The slice is
// kept until published and must not be modified afterwards (the engine
// never reuses Output.Events).
func (p *Publisher) Enqueue(turn uint64, evs []engine.Event) {
	if len(evs) == 0 {
		return
	}
	for i := range evs {
		p.byType[typeIndex(evs[i].Type)].Add(1)
	}
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		p.dropped[3].Add(uint64(len(evs)))
		return
	case p.queued+len(evs) > p.cfg.QueueLen:
		// Keep what fits and count the rest (the turn's tail). A partial
		// turn is fine: ids stay unique and increasing.
		room := p.cfg.QueueLen - p.queued
		p.dropped[0].Add(uint64(len(evs) - room))
		evs = evs[:room]
		if room == 0 {
			p.mu.Unlock()
			return
		}
	}
	p.queue = append(p.queue, batch{turn, evs})
	p.queued += len(evs)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) run() {
	defer close(p.stopped)
	var work []batch
	for {
		select {
		case <-p.wake:
		case <-p.stop:
			p.drain(&work)
			return
		}
		p.publishQueued(&work)
	}
}

// publishQueued takes everything queued and publishes it.
func (p *Publisher) publishQueued(work *[]batch) {
	p.mu.Lock()
	*work, p.queue = p.queue, (*work)[:0]
	p.queued = 0
	p.mu.Unlock()
	for _, b := range *work {
		for i, ev := range b.evs {
			p.publish(b.turn, i, ev)
		}
	}
	clear(*work)
}

func (p *Publisher) publish(turn uint64, index int, ev engine.Event) {
	rec := MakeRecord(turn, index, ev)
	data, err := json.Marshal(&rec)
	if err != nil {
		p.dropped[2].Add(1)
		return
	}
	msg := &nats.Msg{Subject: Subject(p.cfg.Prefix, ev.Type), Data: data, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, rec.ID)
	if err := p.cfg.Conn.PublishMsg(msg); err != nil {
		if p.dropped[1].Add(1)&1023 == 1 { // first and every 1024th: never flood the log
			p.cfg.Logger.Warn("events: publish failed", zap.Error(err), zap.Uint64("dropped_publish_errors", p.dropped[1].Load()))
		}
		return
	}
	p.published.Add(1)
}

// drain publishes what is queued at Close, then flushes, within DrainTimeout.
func (p *Publisher) drain(work *[]batch) {
	p.publishQueued(work)
	if p.cfg.Conn.IsConnected() {
		_ = p.cfg.Conn.FlushTimeout(p.cfg.DrainTimeout)
	}
}

// Close stops accepting events, publishes what is queued and flushes. Safe to
// call twice.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.stop)
	})
	<-p.stopped
	return nil
}

// Stats is a snapshot of the publisher's counters.
type Stats struct {
	Published uint64            `json:"published"`
	Dropped   map[string]uint64 `json:"dropped"`
}

// Stats returns the counters.
func (p *Publisher) Stats() Stats {
	s := Stats{Published: p.published.Load(), Dropped: map[string]uint64{}}
	for i, r := range dropReasons {
		s.Dropped[r] = p.dropped[i].Load()
	}
	return s
}

// Describe implements prometheus.Collector.
func (p *Publisher) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.descPublished
	ch <- p.descDropped
	ch <- p.descByType
}

// Collect implements prometheus.Collector.
func (p *Publisher) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(p.descPublished, prometheus.CounterValue, float64(p.published.Load()))
	for i, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(p.descDropped, prometheus.CounterValue, float64(p.dropped[i].Load()), r)
	}
	for i, t := range engine.EventTypes {
		ch <- prometheus.MustNewConstMetric(p.descByType, prometheus.CounterValue, float64(p.byType[i].Load()), string(t))
	}
	ch <- prometheus.MustNewConstMetric(p.descByType, prometheus.CounterValue, float64(p.byType[len(engine.EventTypes)].Load()), "other")
}
