package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"jumpfleet/web"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServesEveryAsset(t *testing.T) {
	h := web.Handler()
	paths := web.Paths()
	slices.Sort(paths)
	want := map[string]string{"/": "text/html", "/app.css": "text/css", "/js/app.js": "javascript"}
	for p, ct := range want {
		if !slices.Contains(paths, p) {
			t.Fatalf("%s is not served; have %v", p, paths)
		}
		if got := get(t, h, "GET", p, nil).Header.Get("Content-Type"); !strings.Contains(got, ct) {
			t.Errorf("%s: Content-Type %q, want %s", p, got, ct)
		}
	}
	for _, p := range paths {
		r := get(t, h, "GET", p, nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.StatusCode)
		}
		// Module scripts are refused by browsers unless served as JavaScript.
		if strings.HasSuffix(p, ".js") && !strings.Contains(r.Header.Get("Content-Type"), "javascript") {
			t.Errorf("%s: Content-Type %q", p, r.Header.Get("Content-Type"))
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "ETag", "Cache-Control"} {
			if r.Header.Get(h) == "" {
				t.Errorf("%s: no %s header", p, h)
			}
		}
		// Revalidation with the content hash answers 304 without a body.
		r2 := get(t, h, "GET", p, map[string]string{"If-None-Match": r.Header.Get("ETag")})
		if r2.StatusCode != http.StatusNotModified || body(t, r2) != "" {
			t.Errorf("%s with its ETag: %d", p, r2.StatusCode)
		}
		if r3 := get(t, h, "HEAD", p, nil); r3.StatusCode != http.StatusOK || body(t, r3) != "" {
			t.Errorf("HEAD %s: %d", p, r3.StatusCode)
		}
	}
	if a, b := body(t, get(t, h, "GET", "/", nil)), body(t, get(t, h, "GET", "/index.html", nil)); a != b || !strings.Contains(a, "<html") {
		t.Errorf("/ and /index.html differ or are not the page")
	}
}

func apiError(t *testing.T, r *http.Response) (code, msg string) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(body(t, r)), &e); err != nil {
		t.Fatal(err)
	}
	return e.Error.Code, e.Error.Message
}

func TestErrorsUseTheAPIShape(t *testing.T) {
	h := web.Handler()
	for _, p := range []string{"/nope", "/js/", "/js/missing.js", "/static/index.html", "/../web.go", "/app.css/x"} {
		r := get(t, h, "GET", p, nil)
		if code, _ := apiError(t, r); r.StatusCode != http.StatusNotFound || code != "not_found" {
			t.Errorf("GET %s: %d %s", p, r.StatusCode, code)
		}
		if r.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: error without security headers", p)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		r := get(t, h, m, "/", nil)
		code, msg := apiError(t, r)
		if r.StatusCode != http.StatusMethodNotAllowed || code != "method_not_allowed" || r.Header.Get("Allow") != "GET, HEAD" || msg == "" {
			t.Errorf("%s /: %d %s allow %q", m, r.StatusCode, code, r.Header.Get("Allow"))
		}
	}
}

var (
	htmlRef   = regexp.MustCompile(`(?:src|href)="([^"#][^"]*)"`)
	jsImport  = regexp.MustCompile(`(?m)^\s*import\s+(?:[^"']*\s+from\s+)?["']([^"']+)["']`)
	remoteRef = regexp.MustCompile(`(?i)(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
)

// The page must work offline and under its CSP: every reference is local
// and resolves, nothing is fetched from another origin, and there is no
// inline script or style attribute (the CSP would block them).
func TestAssetsAreSelfContained(t *testing.T) {
	h := web.Handler()
	served := map[string]bool{}
	for _, p := range web.Paths() {
		served[p] = true
	}
	index := body(t, get(t, h, "GET", "/", nil))
	for _, m := range htmlRef.FindAllStringSubmatch(index, -1) {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if !served[ref] {
			t.Errorf("index.html refers to %s, which is not served", ref)
		}
	}
	if regexp.MustCompile(`<script(?:[^>]*)>\s*[^<\s]`).MatchString(index) || strings.Contains(index, " style=") || regexp.MustCompile(` on[a-z]+=`).MatchString(index) {
		t.Errorf("index.html has inline script, style or handler attributes")
	}
	for p := range served {
		text := body(t, get(t, h, "GET", p, nil))
		for _, m := range remoteRef.FindAllString(text, -1) {
			if m != "http://www.w3.org" && !strings.HasPrefix(m, "//www.w3.org") {
				t.Errorf("%s refers to another origin: %s", p, m)
			}
		}
		if !strings.HasSuffix(p, ".js") {
			continue
		}
		dir := p[:strings.LastIndex(p, "/")+1]
		for _, m := range jsImport.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if !strings.HasPrefix(target, "./") {
				t.Errorf("%s imports %q: want a relative module path", p, target)
				continue
			}
			if !served[dir+strings.TrimPrefix(target, "./")] {
				t.Errorf("%s imports %s, which is not served", p, target)
			}
		}
		if strings.Contains(text, "innerHTML") || strings.Contains(text, "eval(") {
			t.Errorf("%s uses innerHTML or eval: API data must go through textContent", p)
		}
		if strings.Contains(text, "localStorage") || strings.Contains(text, "?token=") {
			t.Errorf("%s keeps the token beyond the tab or puts it in a URL", p)
		}
	}
}
