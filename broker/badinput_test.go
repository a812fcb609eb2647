package broker_test

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/events"
)

// raw sends a request with a literal body and returns the status, the
// error code (if any) and the body.
func raw(t *testing.T, c *adminapi.Client, method, path, token, body string) (int, string, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, c.BaseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(data, &eb)
	if resp.StatusCode >= 400 && (eb.Error.Code == "" || eb.Error.Message == "") && !strings.HasPrefix(path, "/readyz") {
		t.Fatalf("%s %s: %d without a JSON error: %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, eb.Error.Code, data
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	b, c := openBroker(t, testConfig(t, dir))
	ctx := ctxT(t)
	tok := c.Token
	for i := range 3 {
		if _, err := b.Node().CheckIn(ctx, engine.CheckIn{ID: cid(i), Kind: engine.KindPassive, Platform: engine.PlatformWindowsX64, Version: v1}); err != nil {
			t.Fatal(err)
		}
	}
	var before events.Settings
	if err := c.Do(ctx, "GET", "/v1/settings", nil, &before); err != nil {
		t.Fatal(err)
	}
	priv := b.ReleaseKey()
	_, otherKey, _ := ed25519.GenerateKey(nil)
	pkg := []byte("package bytes")
	good := signedPackage(priv, "3.0.0", engine.PlatformWindowsX64, v2, pkg)
	enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	withPkg := func(id string, mutate func(map[string]any)) string {
		p := signedPackage(priv, id, engine.PlatformWindowsX64, v2, pkg)
		if mutate != nil {
			mutate(p)
		}
		return enc(map[string]any{"id": id, "kind": "site", "packages": []any{p}})
	}
	big := `{"max_concurrent": 5, "x": "` + strings.Repeat("a", 2<<20) + `"}`

	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/v1/status", "", "", 401, "unauthorized"},
		{"wrong token", "GET", "/v1/status", tok + "x", "", 401, "unauthorized"},
		{"no token on metrics", "GET", "/metrics", "", "", 401, "unauthorized"},
		{"no token on profiles", "GET", "/debug/pprof/heap", "", "", 401, "unauthorized"},
		{"no token on patch", "PATCH", "/v1/settings", "", `{"max_concurrent": 1}`, 401, "unauthorized"},
		{"malformed json", "PATCH", "/v1/settings", tok, `{"max_concurrent":`, 400, "bad_json"},
		{"not json", "PATCH", "/v1/settings", tok, `max_concurrent=5`, 400, "bad_json"},
		{"empty body", "PATCH", "/v1/settings", tok, ``, 400, "bad_json"},
		{"trailing data", "PATCH", "/v1/settings", tok, `{"max_concurrent": 3} {}`, 400, "bad_json"},
		{"unknown field", "PATCH", "/v1/settings", tok, `{"max_concurency": 3}`, 400, "unknown_field"},
		{"string for int", "PATCH", "/v1/settings", tok, `{"max_concurrent": "3"}`, 400, "bad_type"},
		{"fraction for int", "PATCH", "/v1/settings", tok, `{"max_concurrent": 2.5}`, 400, "bad_type"},
		{"number for duration", "PATCH", "/v1/settings", tok, `{"lease_time": 60}`, 400, "bad_type"},
		{"array body", "PATCH", "/v1/settings", tok, `[1]`, 400, "bad_type"},
		{"bad duration", "PATCH", "/v1/settings", tok, `{"lease_time": "forever"}`, 400, "bad_setting"},
		{"zero max_concurrent", "PATCH", "/v1/settings", tok, `{"max_concurrent": 0}`, 400, "bad_setting"},
		{"huge max_concurrent", "PATCH", "/v1/settings", tok, `{"max_concurrent": 1000001}`, 400, "bad_setting"},
		{"half valid patch", "PATCH", "/v1/settings", tok, `{"max_concurrent": 77, "retry_limit": 0}`, 400, "bad_setting"},
		{"retry_base above max", "PATCH", "/v1/settings", tok, `{"retry_base": "2h", "retry_max": "1h"}`, 400, "bad_setting"},
		{"lease too short", "PATCH", "/v1/settings", tok, `{"lease_time": "10ms", "max_concurrent": 9}`, 400, "bad_setting"},
		{"body too large", "PATCH", "/v1/settings", tok, big, 413, "too_large"},
		{"pause with body", "POST", "/v1/pause", tok, `{"really": true}`, 400, "unknown_field"},
		{"wrong method", "DELETE", "/v1/settings", tok, ``, 405, "method_not_allowed"},
		{"unknown path", "GET", "/v1/nope", tok, ``, 404, "not_found"},
		{"unknown root path", "GET", "/nope", "", ``, 404, "not_found"},
		{"bad signature", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) {
			p["signature"] = signedPackage(otherKey, "3.0.0", engine.PlatformWindowsX64, v2, pkg)["signature"]
		}), 400, "bad_signature"},
		{"signature of another release", "POST", "/v1/releases", tok, withPkg("3.0.1", func(p map[string]any) {
			p["signature"] = good["signature"]
		}), 400, "bad_signature"},
		{"signature not base64", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) { p["signature"] = "!!" }), 400, "bad_signature"},
		{"content differs", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) { p["content"] = "cGFja2FnZSBieXRlcyE=" }), 400, "bad_package"},
		{"no content, none stored", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) { delete(p, "content") }), 400, "bad_package"},
		{"missing dependency", "POST", "/v1/releases", tok, `{"id": "3.0.0", "kind": "site", "requires": "base-9", "packages": [` + enc(good) + `]}`, 409, "dependency_missing"},
		{"unknown platform", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) { p["platform"] = "amiga" }), 400, "bad_platform"},
		{"bad version", "POST", "/v1/releases", tok, withPkg("3.0.0", func(p map[string]any) { p["version"] = "3.0" }), 400, "bad_version"},
		{"base with packages", "POST", "/v1/releases", tok, `{"id": "b", "kind": "base", "packages": [` + enc(good) + `]}`, 400, "bad_request"},
		{"bad kind", "POST", "/v1/releases", tok, `{"id": "b", "kind": "hotfix"}`, 400, "bad_request"},
		{"unknown release field", "POST", "/v1/releases", tok, `{"id": "b", "kind": "base", "notes": "x"}`, 400, "unknown_field"},
		{"cursor past the end", "GET", "/v1/clients?cursor=3", tok, ``, 400, "bad_cursor"},
		{"cursor far past the end", "GET", "/v1/clients?cursor=999999", tok, ``, 400, "bad_cursor"},
		{"cursor not a number", "GET", "/v1/clients?cursor=abc", tok, ``, 400, "bad_cursor"},
		{"negative cursor", "GET", "/v1/clients?cursor=-1", tok, ``, 400, "bad_cursor"},
		{"limit zero", "GET", "/v1/clients?limit=0", tok, ``, 400, "bad_request"},
		{"limit too big", "GET", "/v1/clients?limit=1001", tok, ``, 400, "bad_request"},
		{"unknown state", "GET", "/v1/clients?state=asleep", tok, ``, 400, "bad_request"},
		{"unknown kind", "GET", "/v1/clients?kind=robot", tok, ``, 400, "bad_kind"},
		{"unknown query", "GET", "/v1/clients?color=red", tok, ``, 400, "bad_request"},
		{"bad id prefix", "GET", "/v1/clients?q=XYZ", tok, ``, 400, "bad_request"},
		{"unknown client", "GET", "/v1/clients/" + cid(99).String(), tok, ``, 404, "unknown_client"},
		{"malformed client id", "GET", "/v1/clients/xyz", tok, ``, 404, "unknown_client"},
		{"jump unknown client", "POST", "/v1/clients/" + cid(99).String() + "/jump", tok, ``, 404, "unknown_client"},
		{"retry a current client", "POST", "/v1/clients/" + cid(1).String() + "/retry", tok, ``, 400, "bad_request"},
		{"retry-failed bad limit", "POST", "/v1/retry-failed", tok, `{"limit": 0}`, 400, "bad_request"},
		{"installer without kind", "POST", "/v1/installers", tok, `{}`, 400, "bad_kind"},
		{"installer bad kind", "POST", "/v1/installers", tok, `{"kind": "robot"}`, 400, "bad_kind"},
		{"installer numeric kind", "POST", "/v1/installers", tok, `{"kind": 1}`, 400, "bad_type"},
		{"console token without name", "POST", "/v1/console-tokens", tok, `{"name": ""}`, 400, "bad_request"},
	}
	for _, tc := range cases {
		status, code, body := raw(t, c, tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: got %d %s, want %d %s (%s)", tc.name, status, code, tc.status, tc.code, body)
		}
	}
	if _, _, body := raw(t, c, "DELETE", "/v1/settings", tok, ""); !strings.Contains(string(body), "GET, PATCH") {
		t.Errorf("405 body does not list the allowed methods: %s", body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if status, _, body := raw(t, c, "GET", p, "", ""); status != 200 {
			t.Errorf("%s: %d %s", p, status, body)
		}
	}

	// Nothing was applied.
	var after events.Settings
	if err := c.Do(ctx, "GET", "/v1/settings", nil, &after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("settings changed by refused requests:\n before %+v\n after  %+v", before, after)
	}
	var rels adminapi.ReleasesBody
	if err := c.Do(ctx, "GET", "/v1/releases", nil, &rels); err != nil || len(rels.Releases) != 0 || rels.SiteRelease != "" {
		t.Fatalf("releases after refused requests: %v %+v", err, rels)
	}
	if _, err := os.Stat(filepath.Join(dir, "packages", "3.0.0")); !os.IsNotExist(err) {
		t.Fatalf("a refused release left package files: %v", err)
	}
	if s := status(t, c); s.ByState["current"] != 3 || s.ByState["pending"] != 0 {
		t.Fatalf("status after refused requests: %+v", s)
	}

	// Paging: valid cursors walk every client once; a duplicate publication
	// is refused and leaves the first alone.
	seen := map[engine.ClientID]bool{}
	cursor := ""
	for {
		var page adminapi.ClientsBody
		if err := c.Do(ctx, "GET", "/v1/clients?limit=2&cursor="+cursor, nil, &page); err != nil {
			t.Fatal(err)
		}
		for _, ci := range page.Clients {
			if seen[ci.ID] {
				t.Fatalf("client %s listed twice", ci.ID)
			}
			seen[ci.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 3 {
		t.Fatalf("paging saw %d clients", len(seen))
	}
	if err := c.Do(ctx, "POST", "/v1/releases", map[string]any{"id": "3.0.0", "kind": "site", "packages": []any{good}}, nil); err != nil {
		t.Fatal(err)
	}
	dup := signedPackage(priv, "3.0.0", engine.PlatformWindowsX64, v2, []byte("other bytes"))
	var ae *adminapi.APIError
	err := c.Do(ctx, "POST", "/v1/releases", map[string]any{"id": "3.0.0", "kind": "site", "packages": []any{dup}}, nil)
	if !asAPIError(err, &ae) || ae.Code != engine.CodeDuplicateRelease || ae.Status != 409 {
		t.Fatalf("duplicate release: %v", err)
	}
	if f, m, err := packagesOpen(dir, "3.0.0", "windows-x64"); err != nil || m.Size != int64(len(pkg)) {
		t.Fatalf("the duplicate replaced the live package: %v %+v", err, m)
	} else {
		_ = f.Close()
	}

	// Installers made before a site release are reported invalid after it.
	var inst struct {
		Token     string `json:"token"`
		Installer struct {
			Valid bool `json:"valid"`
		} `json:"installer"`
	}
	if err := c.Do(ctx, "POST", "/v1/installers", map[string]string{"kind": "passive"}, &inst); err != nil || !inst.Installer.Valid || !strings.HasPrefix(inst.Token, "jfi_") {
		t.Fatalf("create installer: %v %+v", err, inst)
	}
	if err := c.Do(ctx, "POST", "/v1/releases", map[string]any{"id": "3.1.0", "kind": "site",
		"packages": []any{signedPackage(priv, "3.1.0", engine.PlatformWindowsX64, engine.Version{Major: 3, Minor: 1}, pkg)}}, nil); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Installers []struct {
			Valid bool `json:"valid"`
		} `json:"installers"`
		SiteRelease string `json:"site_release"`
	}
	if err := c.Do(ctx, "GET", "/v1/installers", nil, &list); err != nil || len(list.Installers) != 1 || list.Installers[0].Valid || list.SiteRelease != "3.1.0" {
		t.Fatalf("installers after a site release: %v %+v", err, list)
	}
	var ct map[string]string
	if err := c.Do(ctx, "POST", "/v1/console-tokens", map[string]string{"name": "alice"}, &ct); err != nil || !strings.HasPrefix(ct["token"], "jfc_") {
		t.Fatalf("console token: %v %v", err, ct)
	}
	if name, ok := b.Identity().VerifyConsole(ct["token"]); !ok || name != "alice" {
		t.Fatalf("console token does not verify: %q %v", name, ok)
	}
}
