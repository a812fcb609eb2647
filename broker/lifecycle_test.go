package broker_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"jumpfleet/adminapi"
	"jumpfleet/broker"
	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/transport/client"
	"jumpfleet/transport/wire"
)

// TestEventStream checks the SSE stream's type filter, Last-Event-ID
// replay and gap reporting with a small ring.
func TestEventStream(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.EventRing = 8
	b, c := openBroker(t, cfg)
	ctx := ctxT(t)
	node := b.Node()
	// 5 check-ins (no events: no release), then 3 settings changes: 3 events.
	for i := range 5 {
		if _, err := node.CheckIn(ctx, engine.CheckIn{ID: cid(i), Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, Version: v1}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := c.Do(ctx, "PATCH", "/v1/settings", map[string]any{"max_concurrent": 10 + i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(query, lastID string, n int) []adminapi.SSE {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var got []adminapi.SSE
		cl := *c
		if lastID != "" {
			query += "&since=" + lastID
		}
		err := cl.Events(sctx, query, func(e adminapi.SSE) bool {
			got = append(got, e)
			return len(got) < n
		})
		if err != nil || len(got) < n {
			t.Fatalf("events %q: %v, got %d of %d", query, err, len(got), n)
		}
		return got
	}
	// Replay everything held since before the first event: 3 settings events.
	got := collect("types=settings_changed", "0-0", 3)
	var first events.Record
	if err := json.Unmarshal(got[0].Data, &first); err != nil || first.Settings == nil || first.Settings.MaxConcurrent != 10 {
		t.Fatalf("first replayed event %s: %v", got[0].Data, err)
	}
	// Resume after the first: the next two.
	got = collect("types=settings_changed", got[0].ID, 2)
	var second events.Record
	_ = json.Unmarshal(got[0].Data, &second)
	if second.Settings.MaxConcurrent != 11 {
		t.Fatalf("resumed at %s", got[0].Data)
	}
	// Overflow the ring (8): 9 more events; a resume from the first id
	// reports a gap, then continues from the oldest held.
	for i := range 9 {
		if err := c.Do(ctx, "PATCH", "/v1/settings", map[string]any{"max_concurrent": 20 + i}, nil); err != nil {
			t.Fatal(err)
		}
	}
	got = collect("", first.ID, 2)
	if got[0].Event != "gap" || got[1].Event != "settings_changed" {
		t.Fatalf("after overflow: %q then %q", got[0].Event, got[1].Event)
	}
	var oldest events.Record
	_ = json.Unmarshal(got[1].Data, &oldest)
	if oldest.Settings.MaxConcurrent != 20+9-8 {
		t.Fatalf("oldest held after overflow: %s", got[1].Data)
	}
	// A subscriber follows new events, filtered.
	live := make(chan adminapi.SSE, 4)
	lctx, lcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		// Resuming from a held id makes the start deterministic: whenever
		// the stream opens, it begins after that event.
		done <- c.Events(lctx, "types=jump_requested&since="+oldest.ID, func(e adminapi.SSE) bool { live <- e; return true })
	}()
	if err := c.Do(ctx, "PATCH", "/v1/settings", map[string]any{"max_concurrent": 3}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := node.PublishRelease(ctx, engine.Release{ID: "r2", Kind: engine.ReleaseSite,
		Targets: []engine.Target{{Platform: engine.PlatformLinuxX64, Version: v2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Jump(ctx, cid(4), 0); err != nil {
		t.Fatal(err)
	}
	// The release makes more events at once than the tiny ring holds, so a
	// gap may come first; the filtered event follows.
	for ok := false; !ok; {
		select {
		case e := <-live:
			if e.Event == "gap" {
				continue
			}
			if e.Event != "jump_requested" || !strings.Contains(string(e.Data), cid(4).String()) {
				t.Fatalf("live event %s %s", e.Event, e.Data)
			}
			ok = true
		case <-time.After(10 * time.Second):
			t.Fatal("no live jump_requested event")
		}
	}
	lcancel()
	<-done
}

// TestShutdownAndReopen: a graceful shutdown says Bye to connected
// clients with a retry-after; Close after Shutdown is a no-op; reopening
// keeps the admin token (only its hash is stored) and the state.
func TestShutdownAndReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Heartbeat = events.Duration(45 * time.Second)
	b, c := openBroker(t, cfg)
	ctx := ctxT(t)
	token := c.Token
	if b.NewAdminToken() != token || !strings.HasPrefix(token, "jfa_") {
		t.Fatalf("first start token %q vs file %q", b.NewAdminToken(), token)
	}
	var inst struct{ Token string }
	if err := c.Do(ctx, "POST", "/v1/installers", map[string]string{"kind": "active"}, &inst); err != nil {
		t.Fatal(err)
	}
	addr := b.ClientAddrs()[0].String()
	fp := sha256.Sum256(b.Certificate().Certificate[0])
	ccfg := client.Config{Addr: addr, PinSHA256: fp[:], Role: wire.KindActive, DialTimeout: 5 * time.Second}
	conn, err := client.Dial(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ms := conn.HelloAck().HeartbeatMs; ms != 45_000 {
		t.Fatalf("HelloAck asks for a heartbeat every %d ms, want --heartbeat's 45000", ms)
	}
	cred, err := conn.Enroll(ctx, wire.Enroll{InstallerToken: inst.Token, Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wire.Version(v1), Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if ans, err := conn.CheckIn(ctx, wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wire.Version(v1)}); err != nil || ans.State != wire.StateCurrent {
		t.Fatalf("check-in: %+v %v", ans, err)
	}
	if s := status(t, c); s.Clients != 1 || s.Online != 1 {
		t.Fatalf("status: %+v", s)
	}

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-conn.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("client connection still open after Shutdown")
	}
	var bye *client.ByeError
	if err := conn.Err(); !errors.As(err, &bye) || bye.RetryAfter <= 0 {
		t.Fatalf("client was not sent away with a retry-after: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("client listener still accepts after Shutdown")
	}

	// Reopen on the same data and ports: the token in jumpctl.json still
	// works, no new one is made, the client is known and can log in.
	cfg2 := testConfig(t, dir)
	cfg2.Listen = addr
	b2, err := broker.Open(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.NewAdminToken() != "" {
		t.Fatal("a restart made a new admin token")
	}
	ctl, err := adminapi.ReadCtlFile(filepath.Join(dir, broker.CtlFileName))
	if err != nil || ctl.Token != token || ctl.AdminURL != b2.AdminURL() {
		t.Fatalf("jumpctl.json after restart: %v %+v", err, ctl)
	}
	c2 := adminapi.NewClient(ctl.AdminURL, ctl.Token, ctl.CertSHA256)
	if s := status(t, c2); s.Clients != 1 || s.Online != 0 {
		t.Fatalf("status after restart: %+v", s)
	}
	conn2, err := client.Dial(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := conn2.Auth(ctx, cred); err != nil {
		t.Fatalf("auth after restart: %v", err)
	}

	// --reset-admin-token: the old token stops working.
	_ = b2.Close()
	cfg3 := testConfig(t, dir)
	cfg3.ResetAdminToken = true
	b3, c3 := openBroker(t, cfg3)
	if b3.NewAdminToken() == "" || c3.Token == token {
		t.Fatal("reset did not make a new token")
	}
	old := adminapi.NewClient(b3.AdminURL(), token, b3.Fingerprint())
	var ae *adminapi.APIError
	if err := old.Do(ctx, "GET", "/v1/status", nil, nil); !errors.As(err, &ae) || ae.Code != "unauthorized" {
		t.Fatalf("old token after reset: %v", err)
	}
	status(t, c3)
}
