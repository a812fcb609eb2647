package adminapi

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"encoding/json"
	"io"

	"github.com/prometheus/client_golang/prometheus"

	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/store"
)

// newTestAPI builds the API over a real store and engine, served by
// httptest over TLS.
func newTestAPI(t *testing.T, mutate func(*Config)) (*Client, *Config) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	node, err := engine.Open(engine.NodeConfig{DB: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	pkgs, err := packages.OpenStore(filepath.Join(dir, "pkgs"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	ring := events.NewRing(16)
	t.Cleanup(ring.Close)
	cfg := Config{Node: node, TokenHash: sha256.Sum256([]byte("tok")), Identity: identity.New(db), Packages: pkgs,
		ReleaseKey: pub, Ring: ring, Registry: prometheus.NewRegistry(), KeepAlive: 50 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	c := &Client{BaseURL: srv.URL, Token: "tok", HTTP: srv.Client()}
	return c, &cfg
}

func TestConfigValidate(t *testing.T) {
	full := func() Config {
		pub, _, _ := ed25519.GenerateKey(nil)
		return Config{Node: &engine.Node{}, TokenHash: [32]byte{1}, Identity: &identity.Store{}, Packages: &packages.Store{},
			ReleaseKey: pub, Ring: events.NewRing(1), Registry: prometheus.NewRegistry()}
	}
	for name, mutate := range map[string]func(*Config){
		"Node": func(c *Config) { c.Node = nil }, "TokenHash": func(c *Config) { c.TokenHash = [32]byte{} },
		"Identity": func(c *Config) { c.Identity = nil }, "Packages": func(c *Config) { c.Packages = nil },
		"ReleaseKey": func(c *Config) { c.ReleaseKey = nil }, "Ring": func(c *Config) { c.Ring = nil },
		"Registry": func(c *Config) { c.Registry = nil },
	} {
		c := full()
		mutate(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v", name, err)
		}
	}
	c := full()
	if err := c.validate(); err != nil || c.MaxBody != 1<<20 || c.MaxStreams != 64 || c.HistoryLen != 100 {
		t.Fatalf("defaults: %v %+v", err, c)
	}
}

func TestStreamsAreCapped(t *testing.T) {
	c, cfg := newTestAPI(t, func(c *Config) { c.MaxStreams = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opened := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Events(ctx, "since=0-0", func(e SSE) bool {
			if e.Event == "settings_changed" {
				close(opened)
			}
			return true
		})
	}()
	// The first stream is open once it has delivered an event. OnCommit is
	// not wired here: feed the ring as the broker's OnCommit does.
	cfg.Ring.Add(1, []engine.Event{{Type: engine.EvSettingsChanged, At: time.Now()}})
	select {
	case <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("first stream delivered nothing")
	}
	err := c.Events(ctx, "", func(SSE) bool { return false })
	if ae, ok := err.(*APIError); !ok || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("second stream: %v", err)
	}
	cancel()
	<-done
	// The token is returned: a new stream opens.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	cfg.Ring.Add(2, []engine.Event{{Type: engine.EvSettingsChanged, At: time.Now()}})
	// The server returns the token when its handler notices the client
	// went away, which may be just after the client's side returned:
	// a 503 until then is expected.
	var got string
	for {
		err := c.Events(ctx2, "since=1-0", func(e SSE) bool { got = e.ID; return false })
		if ae, ok := err.(*APIError); ok && ae.Status == http.StatusServiceUnavailable && ctx2.Err() == nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil || got != "2-0" {
			t.Fatalf("stream after the first closed: %v %q", err, got)
		}
		break
	}
}

func TestDecodeErrors(t *testing.T) {
	c, _ := newTestAPI(t, nil)
	for body, code := range map[string]engine.Code{
		`{"max_concurrent": 5`:     CodeBadJSON,
		`{"max_concurrent": true}`: CodeBadType,
		`{"lease_time": "soon"}`:   engine.CodeBadSetting,
		`{"zzz": 1}`:               CodeUnknownField,
		`"just a string"`:          CodeBadType,
		`{} []`:                    CodeBadJSON,
	} {
		req, _ := http.NewRequest("PATCH", c.BaseURL+"/v1/settings", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb errorBody
		_ = decodeBody(resp, &eb)
		if eb.Error.Code != code || resp.StatusCode != httpStatus[code] {
			t.Errorf("%s: %d %s, want %s", body, resp.StatusCode, eb.Error.Code, code)
		}
	}
	// Every catalogued code has a status, and unknown ones are internal.
	if e := apiError(&engine.Error{Code: "something_new", Msg: "x"}); e.Code != CodeInternal {
		t.Errorf("uncatalogued code mapped to %s", e.Code)
	}
}

// decodeBody reads and decodes a JSON answer.
func decodeBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v)
}

// TestProfilesNeedTheToken: Go's profiles are served to the admin token
// only (they show the process's memory).
func TestProfilesNeedTheToken(t *testing.T) {
	c, _ := newTestAPI(t, nil)
	get := func(path, token string) int {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", c.BaseURL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		if got := get(path, "tok"); got != http.StatusOK {
			t.Errorf("GET %s with the token: %d, want 200", path, got)
		}
		if got := get(path, ""); got != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, got)
		}
	}
}
