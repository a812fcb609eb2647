package broker_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"jumpfleet/adminapi"
	"jumpfleet/broker"
	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/packages"
)

// testConfig is a broker on loopback with free ports and quick settings.
func testConfig(t testing.TB, dir string) broker.Config {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.Data = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin = "127.0.0.1:0"
	cfg.NATSListen = "127.0.0.1:0"
	cfg.Logger = zap.NewNop()
	cfg.Out = io.Discard
	s := engine.DefaultSettings()
	s.MaxConcurrent, s.StartsPerSec, s.StartBurst = 5, 100000, 100000
	s.LeaseTime, s.RetryLimit, s.RetryBase, s.RetryMax = time.Minute, 1, time.Millisecond, time.Second
	cfg.Settings = events.SettingsFrom(s)
	return cfg
}

func openBroker(t testing.TB, cfg broker.Config) (*broker.Broker, *adminapi.Client) {
	t.Helper()
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctl, err := adminapi.ReadCtlFile(filepath.Join(cfg.Data, broker.CtlFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(cfg.Data, broker.CtlFileName)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("jumpctl.json mode %v", fi.Mode().Perm())
	}
	if ctl.AdminURL != b.AdminURL() || ctl.CertSHA256 != b.Fingerprint() {
		t.Fatalf("jumpctl.json %+v does not match the broker (%s %s)", ctl, b.AdminURL(), b.Fingerprint())
	}
	return b, adminapi.NewClient(ctl.AdminURL, ctl.Token, ctl.CertSHA256)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond with real time (the broker has real sockets).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cid(i int) engine.ClientID {
	var id engine.ClientID
	id[0], id[15] = 0xc0, byte(i)
	return id
}

var (
	v1 = engine.Version{Major: 1, Minor: 0, Patch: 0, Revision: 1}
	v2 = engine.Version{Major: 2, Minor: 0, Patch: 0, Revision: 7}
)

// signedPackage makes a package body for POST /v1/releases.
func signedPackage(priv ed25519.PrivateKey, rel string, p engine.Platform, v engine.Version, content []byte) map[string]any {
	sum := sha256.Sum256(content)
	m := packages.Manifest{Release: rel, Platform: p.String(), Version: v.String(), Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	return map[string]any{"platform": p.String(), "version": v.String(), "size": m.Size, "sha256": m.SHA256,
		"signature": base64.StdEncoding.EncodeToString(packages.Sign(priv, m)),
		"content":   base64.StdEncoding.EncodeToString(content)}
}

func status(t *testing.T, c *adminapi.Client) adminapi.StatusBody {
	t.Helper()
	var s adminapi.StatusBody
	if err := c.Do(ctxT(t), "GET", "/v1/status", nil, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// natsLog records every event message seen on the broker's NATS.
type natsLog struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

func subscribe(t *testing.T, url string) *natsLog {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l := &natsLog{}
	if _, err := nc.Subscribe("jumpfleet.events.>", func(m *nats.Msg) {
		l.mu.Lock()
		l.msgs = append(l.msgs, m)
		l.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *natsLog) records(t *testing.T) []events.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]events.Record, 0, len(l.msgs))
	for _, m := range l.msgs {
		var r events.Record
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatalf("event body %s: %v", m.Data, err)
		}
		if m.Subject != "jumpfleet.events."+string(r.Type) {
			t.Fatalf("subject %s carries a %s event", m.Subject, r.Type)
		}
		if h := m.Header.Get("Nats-Msg-Id"); h != r.ID {
			t.Fatalf("Nats-Msg-Id %q, body id %q", h, r.ID)
		}
		out = append(out, r)
	}
	return out
}

func (l *natsLog) count(t *testing.T, typ engine.EventType, client *engine.ClientID) int {
	n := 0
	for _, r := range l.records(t) {
		if r.Type == typ && (client == nil || r.Client == *client) {
			n++
		}
	}
	return n
}

// TestRollout drives a real broker through a rollout: publish, queue,
// max_concurrent change, jump, completion, failure and retry, pause and
// resume, checked through the admin API, NATS and the SSE stream.
func TestRollout(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	b, c := openBroker(t, cfg)
	ctx := ctxT(t)
	nlog := subscribe(t, b.NATSURL())

	// The SSE stream, from the start.
	var sseMu sync.Mutex
	var sse []adminapi.SSE
	sctx, scancel := context.WithCancel(ctx)
	sseDone := make(chan error, 1)
	go func() {
		sseDone <- c.Events(sctx, "", func(e adminapi.SSE) bool {
			sseMu.Lock()
			sse = append(sse, e)
			sseMu.Unlock()
			return true
		})
	}()
	defer func() { scancel(); <-sseDone }()

	const n = 20
	node := b.Node()
	for i := range n {
		if _, err := node.CheckIn(ctx, engine.CheckIn{ID: cid(i), Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, Version: v1}); err != nil {
			t.Fatal(err)
		}
	}
	if s := status(t, c); s.Clients != n || s.ByState["current"] != n || s.InFlight != 0 {
		t.Fatalf("before the release: %+v", s)
	}

	// A site release that requires a base release: base first.
	priv := b.ReleaseKey()
	if err := c.Do(ctx, "POST", "/v1/releases", map[string]any{"id": "base-1", "kind": "base"}, nil); err != nil {
		t.Fatal(err)
	}
	pkg := bytes.Repeat([]byte("jumpfleet package "), 100)
	var rel adminapi.ReleaseOut
	err := c.Do(ctx, "POST", "/v1/releases", map[string]any{"id": "2.0.0", "kind": "site", "requires": "base-1",
		"packages": []any{signedPackage(priv, "2.0.0", engine.PlatformLinuxX64, v2, pkg)}}, &rel)
	if err != nil {
		t.Fatal(err)
	}
	if len(rel.Targets) != 1 || rel.Targets[0].Version != v2 || rel.Targets[0].Size != int64(len(pkg)) {
		t.Fatalf("published %+v", rel)
	}
	if f, m, err := packagesOpen(dir, "2.0.0", "linux-x64"); err != nil || m.Size != int64(len(pkg)) {
		t.Fatalf("package not stored: %v %+v", err, m)
	} else {
		_ = f.Close()
	}

	// The sweep queues every online outdated client; 5 start.
	waitFor(t, "5 in flight, 15 pending", func() bool {
		s := status(t, c)
		return s.InFlight == 5 && s.ByState["pending"] == 15 && s.SiteRelease == "2.0.0"
	})

	// Raise max_concurrent mid-way: three more start.
	var set events.Settings
	if err := c.Do(ctx, "PATCH", "/v1/settings", map[string]any{"max_concurrent": 8}, &set); err != nil {
		t.Fatal(err)
	}
	if set.MaxConcurrent != 8 || set.RetryLimit != 1 {
		t.Fatalf("settings after patch: %+v", set)
	}
	waitFor(t, "8 in flight", func() bool { return status(t, c).InFlight == 8 })

	// Jump to the last pending client: refused, front of the queue.
	var pend adminapi.ClientsBody
	if err := c.Do(ctx, "GET", "/v1/clients?state=pending&limit=1000", nil, &pend); err != nil {
		t.Fatal(err)
	}
	if len(pend.Clients) != 12 || pend.NextCursor != "" {
		t.Fatalf("pending list: %d clients, next %q", len(pend.Clients), pend.NextCursor)
	}
	last := pend.Clients[len(pend.Clients)-1].ID
	var ja adminapi.JumpBody
	if err := c.Do(ctx, "POST", "/v1/clients/"+last.String()+"/jump", nil, &ja); err != nil {
		t.Fatal(err)
	}
	if ja.Result != "upgrade_pending" || ja.Lane != "jump" || ja.Position != 1 {
		t.Fatalf("jump answer %+v", ja)
	}

	// Pause, then free all 8 slots by completing the upgrades: nothing
	// starts while paused.
	if err := c.Do(ctx, "POST", "/v1/pause", nil, &set); err != nil || !set.Paused {
		t.Fatalf("pause: %v %+v", err, set)
	}
	var up adminapi.ClientsBody
	if err := c.Do(ctx, "GET", "/v1/clients?state=upgrading", nil, &up); err != nil || len(up.Clients) != 8 {
		t.Fatalf("upgrading list: %v %d", err, len(up.Clients))
	}
	failing := up.Clients[0].ID
	if err := node.Fail(ctx, failing, "install_failed: disk full"); err != nil {
		t.Fatal(err)
	}
	for _, ci := range up.Clients[1:] {
		if err := node.Progress(ctx, ci.ID, 1000); err != nil {
			t.Fatal(err)
		}
		if _, err := node.CheckIn(ctx, engine.CheckIn{ID: ci.ID, Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, Version: v2}); err != nil {
			t.Fatal(err)
		}
	}
	s := status(t, c)
	if s.InFlight != 0 || s.ByState["current"] != 7 || s.ByState["failed"] != 1 || s.ByState["pending"] != 12 || !s.Paused {
		t.Fatalf("paused with free slots: %+v", s)
	}
	// Details: the failed client shows its error and history.
	var det adminapi.ClientBody
	if err := c.Do(ctx, "GET", "/v1/clients/"+failing.String(), nil, &det); err != nil {
		t.Fatal(err)
	}
	if det.State != engine.StateFailed || !strings.Contains(det.LastError, "disk full") || det.Attempts != 1 || len(det.History) < 3 {
		t.Fatalf("failed client details %+v", det)
	}
	if h := det.History; h[0].Type != engine.EvQueued || h[len(h)-1].Type != engine.EvFailed {
		t.Fatalf("history %v", h)
	}

	// Resume: the jumped client starts first.
	if err := c.Do(ctx, "POST", "/v1/resume", nil, &set); err != nil || set.Paused {
		t.Fatalf("resume: %v %+v", err, set)
	}
	waitFor(t, "8 in flight after resume", func() bool { return status(t, c).InFlight == 8 })
	var jc adminapi.ClientBody
	if err := c.Do(ctx, "GET", "/v1/clients/"+last.String(), nil, &jc); err != nil || jc.State != engine.StateUpgrading {
		t.Fatalf("jumped client after resume: %v %+v", err, jc.State)
	}

	// Retry the failed client, then a retry of a non-failed one is refused.
	var rc adminapi.ClientJSON
	if err := c.Do(ctx, "POST", "/v1/clients/"+failing.String()+"/retry", nil, &rc); err != nil || rc.State != engine.StatePending {
		t.Fatalf("retry: %v %+v", err, rc)
	}
	var ae *adminapi.APIError
	if err := c.Do(ctx, "POST", "/v1/clients/"+failing.String()+"/retry", nil, nil); !asAPIError(err, &ae) || ae.Code != engine.CodeBadRequest || ae.Status != 400 {
		t.Fatalf("second retry: %v", err)
	}

	// Finish the rollout: every upgrading client comes back on v2.
	waitFor(t, "rollout done", func() bool {
		var page adminapi.ClientsBody
		if err := c.Do(ctx, "GET", "/v1/clients?state=upgrading", nil, &page); err != nil {
			t.Fatal(err)
		}
		for _, ci := range page.Clients {
			if _, err := node.CheckIn(ctx, engine.CheckIn{ID: ci.ID, Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, Version: v2}); err != nil {
				t.Fatal(err)
			}
		}
		s := status(t, c)
		return s.ByState["current"] == n && s.ETASeconds == 0
	})
	// The jumped client became current: a jump is now allowed.
	if err := c.Do(ctx, "POST", "/v1/clients/"+last.String()+"/jump", nil, &ja); err != nil || ja.Result != "allowed" {
		t.Fatalf("jump after upgrade: %v %+v", err, ja)
	}

	// NATS saw it all, as documented.
	waitFor(t, "NATS events", func() bool { return nlog.count(t, engine.EvUpgraded, nil) == n })
	recs := nlog.records(t)
	checkIDsIncrease(t, recs)
	for typ, want := range map[engine.EventType]int{engine.EvReleasePublished: 2, engine.EvQueued: n, engine.EvStarted: n + 1,
		engine.EvFailed: 1, engine.EvRetried: 1, engine.EvJumpRequested: 1, engine.EvJumpReady: 1, engine.EvSettingsChanged: 3, engine.EvProgress: 7} {
		if got := nlog.count(t, typ, nil); got != want {
			t.Errorf("NATS %s events: %d, want %d", typ, got, want)
		}
	}
	for _, r := range recs {
		if r.Type == engine.EvSettingsChanged && r.Settings == nil {
			t.Errorf("settings_changed without settings: %+v", r)
		}
	}
	// The SSE stream saw the same events in the same order.
	waitFor(t, "SSE events", func() bool {
		sseMu.Lock()
		defer sseMu.Unlock()
		return countSSE(sse) >= len(recs)
	})
	sseMu.Lock()
	var ids []string
	for _, e := range sse {
		if e.ID != "" {
			ids = append(ids, e.ID)
		}
	}
	sseMu.Unlock()
	for i, r := range recs {
		if ids[i] != r.ID {
			t.Fatalf("SSE event %d is %s, NATS has %s", i, ids[i], r.ID)
		}
	}
	if st := b.EventStats(); st.Published < uint64(len(recs)) || st.Dropped[events.DropQueueFull] != 0 {
		t.Fatalf("publisher stats %+v", st)
	}

	// Metrics carry the engine gauges and the process collector.
	text := metrics(t, c)
	for _, want := range []string{"process_cpu_seconds_total", `jumpfleet_clients{kind="active",state="current"} 20`,
		"jumpfleet_upgrades_in_flight 0", `jumpfleet_queue_length{lane="jump"} 0`, "jumpfleet_events_published_total",
		`jumpfleet_admin_requests_total{code="200",route="/v1/status"}`,
		fmt.Sprintf(`jumpfleet_engine_events_total{type="upgraded"} %d`, n), `jumpfleet_engine_events_total{type="failed"} 1`,
		`jumpfleet_engine_events_total{type="lease_expired"} 0`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func countSSE(evs []adminapi.SSE) int {
	n := 0
	for _, e := range evs {
		if e.ID != "" {
			n++
		}
	}
	return n
}

func checkIDsIncrease(t *testing.T, recs []events.Record) {
	t.Helper()
	var pt uint64
	pi := -1
	for _, r := range recs {
		tn, ix, ok := events.ParseID(r.ID)
		if !ok || tn < pt || (tn == pt && ix <= pi) {
			t.Fatalf("event id %s after %d-%d", r.ID, pt, pi)
		}
		pt, pi = tn, ix
	}
}

func metrics(t *testing.T, c *adminapi.Client) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctxT(t), "GET", c.BaseURL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func asAPIError(err error, target **adminapi.APIError) bool {
	e, ok := err.(*adminapi.APIError)
	if ok {
		*target = e
	}
	return ok
}

func packagesOpen(dir, rel, platform string) (packages.ReadAtCloser, packages.Manifest, error) {
	s, err := packages.OpenStore(filepath.Join(dir, "packages"))
	if err != nil {
		return nil, packages.Manifest{}, err
	}
	return s.Open(rel, platform)
}

var _ = fmt.Sprint
