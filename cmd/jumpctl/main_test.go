package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"jumpfleet/adminapi"
	"jumpfleet/broker"
	"jumpfleet/engine"
	"jumpfleet/events"
)

var (
	v1 = engine.Version{Major: 1, Minor: 0, Patch: 0, Revision: 1}
	v2 = engine.Version{Major: 2, Minor: 0, Patch: 0, Revision: 7}
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// jctl runs jumpctl with args and returns its exit status and output.
func jctl(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func mustJctl(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	code, out, errs := jctl(t, ctx, args...)
	if code != 0 {
		t.Fatalf("jumpctl %q: exit %d\n%s%s", args, code, out, errs)
	}
	return out
}

func cid(i int) engine.ClientID {
	var id engine.ClientID
	id[0], id[15] = 0xd0, byte(i)
	return id
}

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

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := broker.DefaultConfig()
	cfg.Data, cfg.Listen, cfg.Admin, cfg.NATSListen = dir, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger, cfg.Out, cfg.DisableQUIC = zap.NewNop(), io.Discard, true
	s := engine.DefaultSettings()
	s.MaxConcurrent, s.RetryLimit, s.RetryBase, s.RetryMax = 2, 1, time.Millisecond, time.Second
	cfg.Settings = events.SettingsFrom(s)
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	node := b.Node()
	const n = 6
	for i := range n {
		if _, err := node.CheckIn(ctx, engine.CheckIn{ID: cid(i), Kind: engine.KindActive, Platform: engine.PlatformWindowsX64, Version: v1}); err != nil {
			t.Fatal(err)
		}
	}
	d := "--data=" + dir

	// status, human and JSON.
	if out := mustJctl(t, ctx, d, "status"); !strings.Contains(out, "clients       6") || !strings.Contains(out, "(none published)") {
		t.Fatalf("status:\n%s", out)
	}
	var st adminapi.StatusBody
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, "status", "--json", d)), &st); err != nil || st.Clients != n {
		t.Fatalf("status --json: %v %+v", err, st)
	}

	// settings.
	if out := mustJctl(t, ctx, d, "settings", "set", "max-concurrent", "3", "lease-time", "90s"); !strings.Contains(out, "max-concurrent  3") || !strings.Contains(out, "lease-time      1m30s") {
		t.Fatalf("settings set:\n%s", out)
	}
	var set events.Settings
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "settings", "get", "--json")), &set); err != nil || set.MaxConcurrent != 3 {
		t.Fatalf("settings get --json: %v %+v", err, set)
	}
	if code, _, errs := jctl(t, ctx, d, "settings", "set", "max-concurrent", "0"); code != 1 || !strings.Contains(errs, "bad_setting") {
		t.Fatalf("out-of-range setting: exit %d %s", code, errs)
	}
	for _, args := range [][]string{{"settings", "set", "max-concurrent"}, {"settings", "set", "speed", "9"}, {"settings", "set", "max-concurrent", "many"},
		{"frobnicate"}, {"clients", "show"}, {"clients", "show", "xyz"}, {"release", "publish"}, {"installer", "create", "--kind", "robot"}, {"status", "extra"}} {
		if code, _, _ := jctl(t, ctx, append([]string{d}, args...)...); code != 2 {
			t.Errorf("jumpctl %q: exit %d, want 2", args, code)
		}
	}

	// Publish a site release from a package file, signed with DATA/release.key.
	pkgFile := filepath.Join(t.TempDir(), "jc-win64.pkg")
	if err := os.WriteFile(pkgFile, bytes.Repeat([]byte{7}, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustJctl(t, ctx, d, "release", "publish", "--id", "2.0.0", "--package", "windows-x64="+v2.String()+"="+pkgFile); !strings.Contains(out, "published site release 2.0.0") {
		t.Fatalf("publish: %s", out)
	}
	if code, _, errs := jctl(t, ctx, d, "release", "publish", "--id", "2.0.1", "--requires", "nope", "--package", "windows-x64=2.0.1="+pkgFile); code != 1 || !strings.Contains(errs, "dependency_missing") {
		t.Fatalf("publish with a missing dependency: exit %d %s", code, errs)
	}
	if code, _, errs := jctl(t, ctx, d, "release", "publish", "--id", "2.0.1", "--key", filepath.Join(dir, "nokey"), "--package", "windows-x64=2.0.1="+pkgFile); code != 1 || !strings.Contains(errs, "release key") {
		t.Fatalf("publish without a key: exit %d %s", code, errs)
	}
	var rels adminapi.ReleasesBody
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "release", "list", "--json")), &rels); err != nil || len(rels.Releases) != 1 || rels.Releases[0].Targets[0].Size != 4096 {
		t.Fatalf("release list: %v %+v", err, rels)
	}
	if out := mustJctl(t, ctx, d, "release", "list"); !strings.Contains(out, "windows-x64 2.0.0-r7 (4 KiB)") {
		t.Fatalf("release list:\n%s", out)
	}
	waitFor(t, "3 upgrading", func() bool {
		s, _ := node.Status(ctx)
		return s.InFlight == 3 && s.ByState["pending"] == 3
	})

	// clients list / show, jump.
	var page adminapi.ClientsBody
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "clients", "list", "--state", "pending", "--json")), &page); err != nil || len(page.Clients) != 3 {
		t.Fatalf("clients list --state pending: %v %+v", err, page)
	}
	lastPending := page.Clients[2].ID.String()
	if out := mustJctl(t, ctx, d, "clients", "list", "--limit", "4"); !strings.Contains(out, "more: --cursor 4") || strings.Count(out, "\n") != 6 {
		t.Fatalf("clients list --limit 4:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "clients", "list", "--limit", "4", "--all"); strings.Count(out, "windows-x64") != n {
		t.Fatalf("clients list --all:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "jump", lastPending); !strings.Contains(out, "upgrade pending") || !strings.Contains(out, "jump lane, position 1") {
		t.Fatalf("jump:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "clients", "show", lastPending); !strings.Contains(out, "jump lane, position 1") || !strings.Contains(out, "jump_requested") {
		t.Fatalf("clients show:\n%s", out)
	}
	if code, _, errs := jctl(t, ctx, d, "jump", cid(99).String()); code != 1 || !strings.Contains(errs, "unknown_client") {
		t.Fatalf("jump to an unknown client: exit %d %s", code, errs)
	}

	// Fail one upgrade (retry limit 1: failed at once), retry it.
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "clients", "list", "--state", "upgrading", "--json")), &page); err != nil || len(page.Clients) != 3 {
		t.Fatalf("upgrading: %v %+v", err, page)
	}
	failing := page.Clients[0].ID
	if err := node.Fail(ctx, failing, "hash_mismatch"); err != nil {
		t.Fatal(err)
	}
	if out := mustJctl(t, ctx, d, "clients", "show", failing.String()); !strings.Contains(out, "hash_mismatch") || !strings.Contains(out, "state          failed") {
		t.Fatalf("failed client:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "retry", failing.String()); !strings.Contains(out, "now pending") {
		t.Fatalf("retry:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "retry", "--all-failed"); !strings.Contains(out, "retried 0") {
		t.Fatalf("retry --all-failed:\n%s", out)
	}

	// Pause / resume.
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "pause", "--json")), &set); err != nil || !set.Paused {
		t.Fatalf("pause: %v %+v", err, set)
	}
	if out := mustJctl(t, ctx, d, "status"); !strings.Contains(out, "PAUSED") {
		t.Fatalf("status while paused:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "resume"); !strings.Contains(out, "paused          false") {
		t.Fatalf("resume:\n%s", out)
	}

	// status --watch follows the rollout to the end while clients finish.
	var wg sync.WaitGroup
	var watchCode int
	var watchOut string
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchCode, watchOut, _ = jctl(t, ctx, d, "status", "--watch", "--interval", "20ms", "--until-done")
	}()
	waitFor(t, "all current", func() bool {
		p, err := node.List(ctx, engine.Filter{State: engine.StateUpgrading}, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Clients {
			if _, err := node.CheckIn(ctx, engine.CheckIn{ID: c.ID, Kind: engine.KindActive, Platform: engine.PlatformWindowsX64, Version: v2}); err != nil {
				t.Fatal(err)
			}
		}
		s, _ := node.Status(ctx)
		return s.ByState["current"] == n
	})
	wg.Wait()
	if watchCode != 0 || !strings.Contains(watchOut, "100.0%  6/6 current") || !strings.Contains(watchOut, "ETA done") {
		t.Fatalf("status --watch: exit %d\n%q", watchCode, watchOut)
	}
	if out := mustJctl(t, ctx, d, "jump", lastPending); !strings.Contains(out, "allowed") {
		t.Fatalf("jump after the upgrade:\n%s", out)
	}

	// Installers and console tokens.
	if out := mustJctl(t, ctx, d, "installer", "create", "--kind", "passive"); !strings.Contains(out, "jfi_") || !strings.Contains(out, `site release "2.0.0"`) {
		t.Fatalf("installer create:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "installer", "list"); !strings.Contains(out, "passive") || !strings.Contains(out, "yes") {
		t.Fatalf("installer list:\n%s", out)
	}
	if out := mustJctl(t, ctx, d, "console-token", "create", "alice"); !strings.Contains(out, "jfc_") {
		t.Fatalf("console-token create:\n%s", out)
	}

	// Connection options: explicit flags work; a wrong pin or token is refused.
	ctl, err := adminapi.ReadCtlFile(filepath.Join(dir, "jumpctl.json"))
	if err != nil {
		t.Fatal(err)
	}
	mustJctl(t, ctx, "--admin", ctl.AdminURL, "--token", ctl.Token, "--fingerprint", ctl.CertSHA256, "status")
	if code, _, errs := jctl(t, ctx, "--admin", ctl.AdminURL, "--token", ctl.Token, "--fingerprint", strings.Repeat("ab", 32), "status"); code != 1 || !strings.Contains(errs, "fingerprint") {
		t.Fatalf("wrong pin: exit %d %s", code, errs)
	}
	if code, _, errs := jctl(t, ctx, d, "--token", "jfa_wrong", "status"); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Fatalf("wrong token: exit %d %s", code, errs)
	}
	if code, _, errs := jctl(t, ctx, "--data", t.TempDir(), "status"); code != 1 || !strings.Contains(errs, "jumpctl.json") {
		t.Fatalf("no jumpctl.json: exit %d %s", code, errs)
	}
}
