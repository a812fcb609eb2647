package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/zap"

	"jumpfleet/adminapi"
	"jumpfleet/broker"
	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/packages"
	"jumpfleet/web"
)

const chromium = "/usr/bin/chromium"

// deadline bounds every wait: generous, because the machine may be busy
// with other tests; nothing here asserts on speed.
const deadline = 20 * time.Second

var (
	v1 = engine.Version{Major: 24, Minor: 2, Patch: 0, Revision: 3}
	v2 = engine.Version{Major: 24, Minor: 3, Patch: 1, Revision: 7}
)

// env is one broker with the dashboard and one browser tab signed out on it.
type env struct {
	t     *testing.T
	b     *broker.Broker
	api   *adminapi.Client
	token string
	url   string
	tab   context.Context

	mu      sync.Mutex
	console []string // page exceptions and console errors
}

// settings are quick rollout settings for tests: few slots, no start pacing.
func settings() engine.Settings {
	s := engine.DefaultSettings()
	s.MaxConcurrent, s.StartsPerSec, s.StartBurst = 5, 100000, 100000
	s.LeaseTime, s.RetryLimit, s.RetryBase, s.RetryMax = 10*time.Minute, 2, time.Millisecond, time.Second
	return s
}

func start(t *testing.T) *env {
	t.Helper()
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser tests need Chromium at %s (Debian package chromium; .ci/deps.sh installs it): %v", chromium, err)
	}
	dir := t.TempDir()
	cfg := broker.DefaultConfig()
	cfg.Data = dir
	cfg.Listen = "127.0.0.1:0"
	cfg.DisableQUIC = true
	cfg.Admin = "127.0.0.1:0"
	cfg.NATSListen = "127.0.0.1:0"
	cfg.Logger = zap.NewNop()
	cfg.Out = io.Discard
	cfg.Settings = events.SettingsFrom(settings())
	cfg.Web = web.Handler()
	b, err := broker.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctl, err := adminapi.ReadCtlFile(filepath.Join(dir, broker.CtlFileName))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, b: b, api: adminapi.NewClient(ctl.AdminURL, ctl.Token, ctl.CertSHA256), token: ctl.Token, url: ctl.AdminURL}

	// Trust exactly the broker's self-signed key, as an admin's browser
	// would after accepting it once; every other certificate error stays
	// an error.
	cert := b.Certificate()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, tcancel := chromedp.NewContext(actx)
	// The whole test gets one deadline; cancelling closes the browser.
	tab, dcancel := context.WithTimeout(tab, 90*time.Second)
	e.tab = tab
	msgs := chromedp.Console(tab)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			// Failed requests are the browser's own log (source
			// "network"): a refused token is expected there. Script
			// exceptions and console.error calls are bugs.
			if m.IsException() || m.Type == "error" && m.Source == "" {
				e.mu.Lock()
				e.console = append(e.console, m.String())
				e.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		dcancel()
		tcancel()
		acancel()
		<-done
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, m := range e.console {
			t.Errorf("browser console: %s", m)
		}
	})
	e.do(chromedp.Navigate(e.url + "/"))
	e.waitJS(`!document.getElementById("page-login").hidden`, "the login page")
	return e
}

// do runs browser actions, failing the test on error.
func (e *env) do(steps ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	if err := chromedp.Do(e.tab, steps...); err != nil {
		e.t.Fatalf("browser: %v", err)
	}
}

// js evaluates expr in the page.
func js[T any](e *env, expr string) T {
	e.t.Helper()
	v, err := chromedp.Run(e.tab, chromedp.Evaluate[T](expr))
	if err != nil {
		e.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is true in the page.
func (e *env) waitJS(expr, what string) {
	e.t.Helper()
	e.waitFor(what, func() bool { return js[bool](e, "!!("+expr+")") })
}

// waitFor polls cond with real time (the broker has real sockets), also
// giving a driver the chance to move the rollout between checks.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			e.screenshot("timeout")
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) text(id string) string {
	e.t.Helper()
	return js[string](e, fmt.Sprintf(`(document.getElementById(%q) || {}).textContent || ""`, id))
}

// screenshot saves the whole page under the test's artifact directory
// (kept with go test -artifacts) and logs the path.
func (e *env) screenshot(name string) {
	e.t.Helper()
	png, err := chromedp.Run(e.tab, chromedp.FullScreenshot(100))
	if err != nil {
		e.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(e.t.ArtifactDir(), name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.t.Logf("screenshot: %s", p)
}

// login signs in through the form, as an admin would.
func (e *env) login() {
	e.t.Helper()
	e.do(chromedp.SendKeys(chromedp.CSS("#token"), e.token), chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	e.waitJS(`!document.getElementById("page-overview").hidden && document.getElementById("c-current").textContent !== "–"`, "the overview after sign-in")
}

// goTo opens a page through the navigation bar.
func (e *env) goTo(page string) {
	e.t.Helper()
	e.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`nav a[data-page=%q]`, page))))
	e.waitJS(fmt.Sprintf(`!document.getElementById("page-%s").hidden`, page), page+" page")
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	e.t.Cleanup(cancel)
	return ctx
}

// cid makes client id number i: c0 then i big-endian, so ids sort by i.
func cid(i int) engine.ClientID {
	var id engine.ClientID
	id[0] = 0xc0
	binary.BigEndian.PutUint32(id[12:], uint32(i))
	return id
}

// enroll checks clients [from, to) in on v1, online (an active client's
// check-in stands for its connection).
func (e *env) enroll(from, to int, kind engine.Kind, p engine.Platform) {
	e.t.Helper()
	node := e.b.Node()
	for i := from; i < to; i++ {
		if _, err := node.CheckIn(e.ctx(), engine.CheckIn{ID: cid(i), Kind: kind, Platform: p, Version: v1}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// publish installs a base release and a site release with v2 for the
// given platforms, signed with the broker's release key as jumpctl does.
func (e *env) publish(id string, plats ...engine.Platform) {
	e.t.Helper()
	priv := e.b.ReleaseKey()
	if err := e.api.Do(e.ctx(), "POST", "/v1/releases", map[string]any{"id": "base-" + id, "kind": "base"}, nil); err != nil {
		e.t.Fatal(err)
	}
	var pkgs []any
	for _, p := range plats {
		pkgs = append(pkgs, signedPackage(priv, id, p, v2, bytes.Repeat([]byte("jumpfleet "+p.String()), 64)))
	}
	if err := e.api.Do(e.ctx(), "POST", "/v1/releases", map[string]any{"id": id, "kind": "site", "requires": "base-" + id, "packages": pkgs}, nil); err != nil {
		e.t.Fatal(err)
	}
}

func signedPackage(priv ed25519.PrivateKey, rel string, p engine.Platform, v engine.Version, content []byte) map[string]any {
	sum := sha256.Sum256(content)
	m := packages.Manifest{Release: rel, Platform: p.String(), Version: v.String(), Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
	return map[string]any{"platform": p.String(), "version": v.String(), "size": m.Size, "sha256": m.SHA256,
		"signature": base64.StdEncoding.EncodeToString(packages.Sign(priv, m)),
		"content":   base64.StdEncoding.EncodeToString(content)}
}

func (e *env) status() adminapi.StatusBody {
	e.t.Helper()
	var s adminapi.StatusBody
	if err := e.api.Do(e.ctx(), "GET", "/v1/status", nil, &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// clients lists every client matching query (all pages).
func (e *env) clients(query string) []adminapi.ClientJSON {
	e.t.Helper()
	var out []adminapi.ClientJSON
	cursor := ""
	for {
		var page adminapi.ClientsBody
		q := "/v1/clients?limit=1000&" + query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		if err := e.api.Do(e.ctx(), "GET", q, nil, &page); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, page.Clients...)
		if cursor = page.NextCursor; cursor == "" {
			return out
		}
	}
}

// finish completes up to n upgrades in flight: each client reports
// progress and checks in on its target version. It returns how many.
func (e *env) finish(n int) int {
	e.t.Helper()
	node := e.b.Node()
	done := 0
	for _, c := range e.clients("state=upgrading") {
		if done == n {
			break
		}
		if err := node.Progress(e.ctx(), c.ID, 4096); err != nil {
			e.t.Fatal(err)
		}
		if _, err := node.CheckIn(e.ctx(), engine.CheckIn{ID: c.ID, Kind: c.Kind, Platform: c.Platform, Version: c.Target}); err != nil {
			e.t.Fatal(err)
		}
		done++
	}
	return done
}

// jsonString quotes s for a JavaScript expression.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// num parses the dashboard's formatted integers ("1,234").
func num(s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c >= '0' && c <= '9':
			n = n*10 + int(c-'0')
		case c == ',':
		default:
			return -1
		}
	}
	return n
}

// set gives a form control a value as a user would (input and change
// events fire), for selects and for clearing fields before typing.
func (e *env) set(id, value string) {
	e.t.Helper()
	js[chromedp.Void](e, fmt.Sprintf(`(() => { const el = document.getElementById(%q); el.value = %s;
		el.dispatchEvent(new Event("input", {bubbles: true})); el.dispatchEvent(new Event("change", {bubbles: true})); })()`, id, jsonString(value)))
}

// typeInto replaces a text field's content with keystrokes.
func (e *env) typeInto(id, text string) {
	e.t.Helper()
	// Clear the field as a user does, with an input event: a page that
	// refills untouched forms (the settings page, when its GET or a
	// settings_changed event lands) must see the field as edited from
	// here on. Cleared silently, a refill between the clearing and the
	// keys turned "0" into "30" under CI's load (TestSettings).
	js[chromedp.Void](e, fmt.Sprintf(`(() => { const el = document.getElementById(%q); el.value = "";
		el.dispatchEvent(new Event("input", { bubbles: true })); })()`, id))
	e.do(chromedp.SendKeys(chromedp.CSS("#"+id), text))
}

func (e *env) click(css string) {
	e.t.Helper()
	e.do(chromedp.Click(chromedp.CSS(css)))
}

// rows returns the client table as "id state kind platform version" lines.
func (e *env) rows() []string {
	e.t.Helper()
	return js[[]string](e, `[...document.querySelectorAll("#cl-rows tr[data-id]")].map(r =>
		[r.dataset.id, r.dataset.state, r.cells[1].textContent, r.cells[2].textContent, r.cells[3].querySelector(".mono").textContent].join(" "))`)
}

// chromedpKey presses one key in the focused element.
func chromedpKey(key string) chromedp.Action[chromedp.Void] {
	keys := map[string]string{"Escape": "\u001b", "Enter": "\r", "Tab": "\t"}
	return chromedp.KeyEvent(keys[key])
}
