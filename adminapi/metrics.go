package adminapi

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"jumpfleet/engine"
)

// engineCollector exports the engine's status as gauges. A scrape asks the
// engine at most once per second (one engine turn), whatever the number of
// scrapers.
type engineCollector struct {
	node *engine.Node

	mu   sync.Mutex
	at   time.Time     // guarded by mu
	last engine.Status // guarded by mu
	ok   bool          // guarded by mu

	clients, online, outdated, inFlight, maxConc, queue, perMin, eta, paused *prometheus.Desc
}

func newEngineCollector(n *engine.Node) *engineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("jumpfleet_"+name, help, labels, nil)
	}
	return &engineCollector{node: n,
		clients:  d("clients", "Clients by upgrade state and kind.", "state", "kind"),
		online:   d("clients_online", "Clients online, by kind.", "kind"),
		outdated: d("clients_outdated_not_seen", "Clients on an old version not seen since the release."),
		inFlight: d("upgrades_in_flight", "Upgrades holding a slot."),
		maxConc:  d("max_concurrent", "The max_concurrent setting."),
		queue:    d("queue_length", "Queued clients by lane.", "lane"),
		perMin:   d("upgrades_per_minute", "Upgrades completed in the last minute."),
		eta:      d("eta_seconds", "Estimated seconds until the rollout is done (-1: unknown)."),
		paused:   d("paused", "1 while new upgrade starts are paused."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.clients, c.online, c.outdated, c.inFlight, c.maxConc, c.queue, c.perMin, c.eta, c.paused} {
		ch <- d
	}
}

func (c *engineCollector) status() (engine.Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ok || time.Since(c.at) >= time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := c.node.Status(ctx)
		cancel()
		if err == nil {
			c.last, c.at, c.ok = s, time.Now(), true
		}
	}
	return c.last, c.ok
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.status()
	if !ok {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for kind, m := range s.ByKind {
		for state, n := range m {
			if state == "online" {
				g(c.online, float64(n), kind)
				continue
			}
			g(c.clients, float64(n), state, kind)
		}
	}
	g(c.outdated, float64(s.Outdated))
	g(c.inFlight, float64(s.InFlight))
	g(c.maxConc, float64(s.MaxConcurrent))
	g(c.queue, float64(s.JumpLane), "jump")
	g(c.queue, float64(s.NormalLane), "normal")
	g(c.perMin, float64(s.UpgradesPerMin))
	g(c.eta, s.ETASeconds)
	p := 0.0
	if s.Paused {
		p = 1
	}
	g(c.paused, p)
}

func zapRelease(r engine.Release) []zap.Field {
	return []zap.Field{zap.String("id", r.ID), zap.String("kind", string(r.Kind)), zap.String("requires", r.Requires),
		zap.Int("targets", len(r.Targets))}
}
