// Package adminapi is jumpfleet's HTTPS + JSON admin API (docs/API.md):
// status, settings, releases, clients, jumps, retries, installers, console
// tokens, the server-sent event stream, /metrics, /healthz and /readyz.
//
// It holds no state of its own: every change goes through one engine turn
// (engine.Node), which validates before it mutates and answers only after
// the turn is durably committed, so a request is applied completely or not
// at all. The package only decodes strictly, authenticates, maps errors to
// stable codes and HTTP statuses, and encodes. The broker owns the listener
// and TLS; this package provides the http.Handler.
package adminapi

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/identity"
	"jumpfleet/packages"
)

// Config configures the API. Everything marked required must be set; New
// validates it in one place.
type Config struct {
	Node       *engine.Node      // required: the engine
	TokenHash  [32]byte          // required: SHA-256 of the admin bearer token
	Identity   *identity.Store   // required: installers and console tokens
	Packages   *packages.Store   // required: where published package bytes go
	ReleaseKey ed25519.PublicKey // required: packages must be signed by its private half
	Ring       *events.Ring      // required: feeds GET /v1/events and client history
	// Registry is served at /metrics (required). New registers the API's
	// own collectors (engine gauges, request counts) in it.
	Registry *prometheus.Registry
	// Ready reports why the broker is not ready (nil: ready), for /readyz.
	Ready func() error
	// Web, if set, serves everything outside /v1/, /metrics and the health
	// endpoints without a token (the dashboard's static files).
	Web    http.Handler
	Logger *zap.Logger
	// MaxBody caps request bodies (default 1 MiB); MaxReleaseBody caps
	// POST /v1/releases, which may carry package bytes (default 64 MiB).
	MaxBody, MaxReleaseBody int64
	// HistoryLen caps the events in a client's details (default 100).
	HistoryLen int
	// KeepAlive is the SSE keep-alive comment period (default 15s).
	KeepAlive time.Duration
	// MaxStreams caps concurrent GET /v1/events streams (default 64);
	// beyond it the stream is refused with overloaded.
	MaxStreams int
	// Now is the clock for installer creation times (default time.Now).
	Now func() time.Time
}

func (c *Config) validate() error {
	switch {
	case c.Node == nil:
		return errors.New("adminapi: Config.Node is nil")
	case c.TokenHash == [32]byte{}:
		return errors.New("adminapi: Config.TokenHash is unset")
	case c.Identity == nil:
		return errors.New("adminapi: Config.Identity is nil")
	case c.Packages == nil:
		return errors.New("adminapi: Config.Packages is nil")
	case len(c.ReleaseKey) != ed25519.PublicKeySize:
		return errors.New("adminapi: Config.ReleaseKey is not an ed25519 public key")
	case c.Ring == nil:
		return errors.New("adminapi: Config.Ring is nil")
	case c.Registry == nil:
		return errors.New("adminapi: Config.Registry is nil")
	}
	if c.Ready == nil {
		c.Ready = func() error { return nil }
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxReleaseBody <= 0 {
		c.MaxReleaseBody = 64 << 20
	}
	if c.HistoryLen <= 0 {
		c.HistoryLen = 100
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 64
	}
	return nil
}

// API serves the admin API.
type API struct {
	cfg      Config
	mux      *http.ServeMux
	requests *prometheus.CounterVec
	// publishMu serialises release publication: the package store replaces
	// a (release, platform) file in place, so two concurrent publications of
	// one id must not interleave their uploads.
	publishMu sync.Mutex
	streams   chan struct{} // one token per open event stream
}

// New builds the API and registers its collectors in cfg.Registry.
func New(cfg Config) (*API, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, mux: http.NewServeMux(), streams: make(chan struct{}, cfg.MaxStreams)}
	a.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jumpfleet_admin_requests_total", Help: "Admin API requests by route and HTTP status.",
	}, []string{"route", "code"})
	if err := cfg.Registry.Register(a.requests); err != nil {
		return nil, err
	}
	if err := cfg.Registry.Register(newEngineCollector(cfg.Node)); err != nil {
		return nil, err
	}
	a.routes()
	return a, nil
}

// Handler returns the API's handler.
func (a *API) Handler() http.Handler { return a }

// route is one path with a handler per method.
type route map[string]http.HandlerFunc

func (a *API) routes() {
	authed := map[string]route{
		"/v1/status":             {"GET": a.status},
		"/v1/settings":           {"GET": a.getSettings, "PATCH": a.patchSettings},
		"/v1/pause":              {"POST": a.pause},
		"/v1/resume":             {"POST": a.resume},
		"/v1/releases":           {"GET": a.listReleases, "POST": a.publishRelease},
		"/v1/clients":            {"GET": a.listClients},
		"/v1/clients/{id}":       {"GET": a.client},
		"/v1/clients/{id}/jump":  {"POST": a.jump},
		"/v1/clients/{id}/retry": {"POST": a.retry},
		"/v1/retry-failed":       {"POST": a.retryFailed},
		"/v1/installers":         {"GET": a.listInstallers, "POST": a.createInstaller},
		"/v1/console-tokens":     {"POST": a.createConsoleToken},
		"/v1/events":             {"GET": a.events},
		"/v1/":                   {}, // anything else under /v1/: not_found, after auth
		"/metrics":               {"GET": promhttp.HandlerFor(a.cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP},
		// Go's profiles (go tool pprof with the bearer token): the
		// full-size load runs are diagnosed with them; they read the
		// process, never change it.
		"/debug/pprof/":        {"GET": pprof.Index},
		"/debug/pprof/profile": {"GET": pprof.Profile},
		"/debug/pprof/trace":   {"GET": pprof.Trace},
	}
	for path, methods := range authed {
		a.mux.Handle(path, a.authed(path, methods))
	}
	a.mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		a.count("/healthz", http.StatusOK)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	a.mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.cfg.Ready(); err != nil {
			a.count("/readyz", http.StatusServiceUnavailable)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		a.count("/readyz", http.StatusOK)
		_, _ = w.Write([]byte("ready\n"))
	})
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Web != nil {
			a.cfg.Web.ServeHTTP(w, r)
			return
		}
		a.count("/", http.StatusNotFound)
		writeError(w, errorf(CodeNotFound, "no such path %s", r.URL.Path))
	})
}

// authed checks the bearer token, then dispatches on the method.
func (a *API) authed(pattern string, methods route) http.Handler {
	allow := make([]string, 0, len(methods))
	for m := range methods {
		allow = append(allow, m)
	}
	allowHdr := strings.Join(sortStrings(allow), ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			a.count(pattern, sw.code())
			// Changes are logged (who changed what is worth a line);
			// reads are only counted.
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				a.cfg.Logger.Info("admin change", zap.String("method", r.Method), zap.String("path", r.URL.Path),
					zap.Int("status", sw.code()), zap.String("remote", r.RemoteAddr), zap.Duration("took", time.Since(start)))
			}
		}()
		if !a.tokenOK(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="jumpfleet"`)
			writeError(sw, errorf(CodeUnauthorized, "missing or wrong bearer token"))
			return
		}
		if len(methods) == 0 {
			writeError(sw, errorf(CodeNotFound, "no such path %s", r.URL.Path))
			return
		}
		h, ok := methods[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = methods[http.MethodGet]
		}
		if !ok {
			sw.Header().Set("Allow", allowHdr)
			writeError(sw, errorf(CodeMethodNotAllowed, "%s %s: allowed methods are %s", r.Method, pattern, allowHdr))
			return
		}
		h(sw, r)
	})
}

func (a *API) tokenOK(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) || len(h) > 1024 {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], a.cfg.TokenHash[:]) == 1
}

func (a *API) count(route string, code int) {
	a.requests.WithLabelValues(route, itoa(code)).Inc()
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// statusWriter remembers the status for the request counter. It forwards
// Flush (SSE) and Unwrap (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
