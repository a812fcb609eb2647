// Package web is jumpfleet's admin dashboard: plain HTML, CSS and JavaScript
// modules embedded in the binary and served at / of the admin listener
// (docs/API.md). There is no build step and nothing is fetched from the
// network at run time, so the dashboard works on a closed management network
// and is exactly what was reviewed in the repository.
//
// The static files need no token (they hold no data); every piece of fleet
// data is fetched by the page from the token-protected /v1/ API with a bearer
// header. The token lives in the tab's sessionStorage and never appears in a
// URL, so it does not leak into logs, history or Referer headers.
//
// The event stream (GET /v1/events) is read with fetch() rather than
// EventSource because EventSource cannot send an Authorization header and the
// API accepts the token nowhere else.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// Security headers sent with every answer. The policy allows only this
// origin's own scripts, styles and API: no inline script, no framing (the
// dashboard can pause a fleet rollout, so clickjacking matters), no
// referrer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "camera=(), microphone=(), geolocation=()",
}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

var (
	loadOnce sync.Once
	assets   map[string]asset // by URL path ("/", "/js/app.js", ...)
	loadErr  error
)

// load reads the embedded tree once. ETags are content hashes: the embedded
// files have no modification time, and a new binary must not be shadowed by
// a browser cache.
func load() {
	assets = map[string]asset{}
	loadErr = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = http.DetectContentType(body)
		}
		sum := sha256.Sum256(body)
		urlPath := strings.TrimPrefix(p, "static")
		if urlPath == "/index.html" {
			urlPath = "/"
		}
		assets[urlPath] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
}

// Paths lists the URL paths the handler serves, for tests and diagnostics.
func Paths() []string {
	loadOnce.Do(load)
	out := make([]string, 0, len(assets))
	for p := range assets {
		out = append(out, p)
	}
	return out
}

// Handler serves the dashboard. Mount it as the admin API's fallback for
// every path outside /v1/, /metrics and the health endpoints (broker.Config
// Web). Only GET and HEAD are served; unknown paths and other methods get the
// admin API's JSON error shape with its stable codes.
func Handler() http.Handler {
	loadOnce.Do(load)
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	if loadErr != nil {
		writeError(w, http.StatusInternalServerError, "internal", "dashboard assets: "+loadErr.Error())
		return
	}
	p := r.URL.Path
	if p == "/index.html" {
		p = "/"
	}
	a, ok := assets[p]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such path "+r.URL.Path)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path+": allowed methods are GET, HEAD")
		return
	}
	h.Set("Content-Type", a.ctype)
	// Revalidate every time: the files are tiny and a stale app.js talking
	// to a newer API would be worse than one round trip.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// writeError answers in the admin API's error shape (docs/API.md, Errors).
func writeError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	data, _ := json.Marshal(&body)
	_, _ = w.Write(append(data, '\n'))
}
