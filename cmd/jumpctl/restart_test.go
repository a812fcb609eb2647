package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/wire"
)

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// brokerProc is a jumpbroker child process.
type brokerProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

func startProc(t *testing.T, bin string, args ...string) *brokerProc {
	t.Helper()
	p := &brokerProc{cmd: exec.Command(bin, args...), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *brokerProc) kill() {
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown path runs
	<-p.done
}

// agent simulates an active Jump client: it stays connected, and when told
// to upgrade it "installs" for a while, then reconnects on the new version.
type agent struct {
	cred    client.Credentials
	version atomic.Pointer[wire.Version]
	acked   atomic.Bool // a check-in on the target version was answered current
}

func (a *agent) run(ctx context.Context, cfg client.Config, target wire.Version, install time.Duration) {
	for ctx.Err() == nil {
		c, err := client.Dial(ctx, cfg)
		if err != nil {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		v := *a.version.Load()
		err = c.Auth(ctx, a.cred)
		var ans wire.CheckInAnswer
		if err == nil {
			ans, err = c.CheckIn(ctx, wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v})
		}
		if err != nil {
			_ = c.Close()
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		if v == target && ans.State == wire.StateCurrent {
			a.acked.Store(true)
		}
		select {
		case m := <-c.Pushes():
			if off, ok := m.(*wire.UpgradeOffer); ok {
				sleepCtx(ctx, install)
				nv := off.Target
				a.version.Store(&nv)
			}
		case <-c.Closed():
			sleepCtx(ctx, 50*time.Millisecond)
		case <-ctx.Done():
		}
		_ = c.Close()
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func statusJSON(t *testing.T, ctx context.Context, d string) (adminapi.StatusBody, bool) {
	code, out, _ := jctl(t, ctx, d, "status", "--json")
	var s adminapi.StatusBody
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		return s, false
	}
	return s, true
}

// TestRestartMidRollout runs the broker binary, SIGKILLs it in the middle of
// a rollout, restarts it on the same data, and checks that every
// acknowledged upgrade survived, that jumpctl status tells the truth, and
// that the rollout continues to the end.
func TestRestartMidRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	t0 := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(t0).Seconds(), what) }
	defer phase("end")
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "jumpbroker")
	bargs := []string{"build", "-o", bin}
	if raceEnabled {
		bargs = append(bargs, "-race")
	}
	build := exec.Command("go", append(bargs, "jumpfleet/cmd/jumpbroker")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	phase("built")
	data := filepath.Join(tmp, "data")
	listen, admin := freeAddr(t), freeAddr(t)
	args := []string{"serve", "--data", data, "--listen", listen, "--admin", admin, "--nats-listen", "127.0.0.1:0",
		"--disable-quic", "--max-concurrent", "2", "--lease-time", "3s", "--retry-base", "10ms", "--retry-max", "100ms",
		"--log-format", "json", "--log-level", "warn"}
	p := startProc(t, bin, args...)
	ctx := ctxT(t)
	d := "--data=" + data
	ready := func(p *brokerProc) {
		waitFor(t, "broker ready", func() bool {
			select {
			case <-p.done:
				t.Fatalf("broker exited:\n%s", p.stderr)
			default:
			}
			_, ok := statusJSON(t, ctx, d)
			return ok
		})
	}
	ready(p)
	phase("ready")
	if fi, err := os.Stat(filepath.Join(data, "jumpctl.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("jumpctl.json: %v", err)
	}
	ctl, err := adminapi.ReadCtlFile(filepath.Join(data, "jumpctl.json"))
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := hex.DecodeString(ctl.CertSHA256)
	ccfg := client.Config{Addr: listen, PinSHA256: pin, Role: wire.KindActive, DialTimeout: 5 * time.Second}

	// Enroll the fleet on v1.
	var inst struct{ Token string }
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "installer", "create", "--kind", "active", "--json")), &inst); err != nil {
		t.Fatal(err)
	}
	const n = 12
	wv1 := wire.Version(v1)
	agents := make([]*agent, n)
	for i := range agents {
		c, err := client.Dial(ctx, ccfg)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := c.Enroll(ctx, wire.Enroll{InstallerToken: inst.Token, Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wv1, Hostname: "h"})
		_ = c.Close()
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = &agent{cred: cred}
		agents[i].version.Store(&wv1)
	}
	actx, acancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { acancel(); wg.Wait() }()
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.run(actx, ccfg, wire.Version(v2), 150*time.Millisecond) }()
	}
	waitFor(t, "fleet online", func() bool {
		s, ok := statusJSON(t, ctx, d)
		return ok && s.Clients == n && s.Online == n
	})

	// Publish through jumpctl; kill the broker once a few upgrades are
	// acknowledged.
	pkg := filepath.Join(tmp, "jc.pkg")
	if err := os.WriteFile(pkg, bytes.Repeat([]byte("x"), 10000), 0o600); err != nil {
		t.Fatal(err)
	}
	phase("fleet online")
	mustJctl(t, ctx, d, "release", "publish", "--id", "2.0.0", "--package", "linux-x64="+v2.String()+"="+pkg)
	acked := func() (ids []engine.ClientID) {
		for _, a := range agents {
			if a.acked.Load() {
				ids = append(ids, engine.ClientID(a.cred.ID))
			}
		}
		return ids
	}
	waitFor(t, "4 acknowledged upgrades", func() bool { return len(acked()) >= 4 })
	p.kill()
	before := acked()
	if len(before) == n {
		t.Fatalf("the rollout finished before the kill; nothing was tested")
	}
	t.Logf("killed with %d of %d upgrades acknowledged", len(before), n)

	// Restart on the same data (the agents keep trying to reconnect).
	phase("killed")
	p = startProc(t, bin, args...)
	ready(p)
	phase("restarted")
	for _, id := range before {
		var c adminapi.ClientBody
		code, out, errs := jctl(t, ctx, d, "clients", "show", id.String(), "--json")
		if code != 0 || json.Unmarshal([]byte(out), &c) != nil {
			t.Fatalf("clients show %s: %d %s", id, code, errs)
		}
		if c.State != engine.StateCurrent || c.Version != v2 {
			t.Fatalf("acknowledged upgrade of %s lost: %s on %s", id, c.State, c.Version)
		}
	}
	s, ok := statusJSON(t, ctx, d)
	if !ok || s.Clients != n || s.SiteRelease != "2.0.0" || s.MaxConcurrent != 2 || s.InFlight > 2 || s.ByState["current"] < len(before) {
		t.Fatalf("status after restart: %+v", s)
	}
	// The rollout continues to the end, never above max_concurrent.
	waitFor(t, "rollout done after restart", func() bool {
		s, ok := statusJSON(t, ctx, d)
		if ok && s.InFlight > 2 {
			t.Fatalf("in flight %d above max_concurrent 2", s.InFlight)
		}
		return ok && s.ByState["current"] == n && s.Outdated == 0 && s.ETASeconds == 0
	})
	phase("rollout done")
	var page adminapi.ClientsBody
	if err := json.Unmarshal([]byte(mustJctl(t, ctx, d, "clients", "list", "--version", v2.String(), "--json")), &page); err != nil || len(page.Clients) != n {
		t.Fatalf("clients on v2: %v %d", err, len(page.Clients))
	}
	if out := mustJctl(t, ctx, d, "status"); !strings.Contains(out, "ETA done") {
		t.Fatalf("status:\n%s", out)
	}

	// SIGINT: a graceful stop with the agents still connected, exit 0.
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("broker still running 15 s after SIGINT:\n%s", p.stderr)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(p.stderr.String(), "shutting down") {
		t.Fatalf("graceful stop: exit %d\n%s", code, p.stderr)
	}
}
