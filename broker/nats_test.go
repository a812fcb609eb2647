package broker_test

import (
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/events"
)

// TestExternalNATS: with --nats-url the broker publishes to that server.
func TestExternalNATS(t *testing.T) {
	ns, err := events.StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURL = ns.ClientURL()
	b, c := openBroker(t, cfg)
	if b.NATSURL() != ns.ClientURL() {
		t.Fatalf("broker NATS %s, want %s", b.NATSURL(), ns.ClientURL())
	}
	nlog := subscribe(t, ns.ClientURL())
	if err := c.Do(ctxT(t), "POST", "/v1/pause", nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "settings_changed on the external NATS", func() bool { return nlog.count(t, engine.EvSettingsChanged, nil) == 1 })
}

// TestAbsentNATS: a NATS that is not there does not keep the broker from
// starting or slow the engine; events wait in the NATS client's buffer.
func TestAbsentNATS(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURL = "nats://127.0.0.1:1" // nothing listens on port 1
	b, c := openBroker(t, cfg)
	ctx := ctxT(t)
	start := time.Now()
	for i := range 50 {
		if _, err := b.Node().CheckIn(ctx, engine.CheckIn{ID: cid(i), Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, Version: v1}); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, "PATCH", "/v1/settings", map[string]any{"max_concurrent": 1 + i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("50 check-ins and 50 settings changes with NATS absent: %v", time.Since(start))
	if s := status(t, c); s.Clients != 50 || s.MaxConcurrent != 50 {
		t.Fatalf("status %+v", s)
	}
	waitFor(t, "events handed to the NATS client", func() bool {
		st := b.EventStats()
		return st.Published+st.Dropped[events.DropPublishError] == 50
	})
}
