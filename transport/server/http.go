package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/wire"
)

// The HTTPS + JSON endpoint: the same engine and the same credentials as
// the binary protocol, for simple agents and scripts.
//
// Authentication is per connection, as in the binary protocol: the first
// request of a connection carries a proof in headers
//
//	X-JF-Client: client id (32 hex)    X-JF-Timestamp: unix ms
//	X-JF-Nonce: 32 hex                 X-JF-MAC: 64 hex (wire.AuthMAC, bound to the TLS exporter)
//
// and later requests on the same connection need only X-JF-Client (which
// must not change). Consoles send "Authorization: Bearer <console token>".

// Header names.
const (
	HeaderClient    = "X-JF-Client"
	HeaderTimestamp = "X-JF-Timestamp"
	HeaderNonce     = "X-JF-Nonce"
	HeaderMAC       = "X-JF-MAC"
)

// chanListener hands connections the TLS accept loop already handshook to
// an http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	onDone map[net.Conn]func() // owned by mu: release hooks per conn
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{}), onDone: map[net.Conn]func(){}}
}

// push hands c to the http.Server, or closes it if the listener is gone.
func (l *chanListener) push(c net.Conn, release func()) {
	if release != nil {
		l.mu.Lock()
		l.onDone[c] = release
		l.mu.Unlock()
	}
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
		l.closed(c)
	}
}

// closed runs the release hook of c once.
func (l *chanListener) closed(c net.Conn) {
	l.mu.Lock()
	f := l.onDone[c]
	delete(l.onDone, c)
	l.mu.Unlock()
	if f != nil {
		f()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

type connKey struct{}

// httpConn is the per-connection authentication state.
type httpConn struct {
	mu     sync.Mutex
	authed bool
	id     engine.ClientID
}

func (srv *Server) newHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/enroll", srv.httpEnroll)
	mux.HandleFunc("POST /v1/checkin", srv.httpCheckIn)
	mux.HandleFunc("POST /v1/progress", srv.httpProgress)
	mux.HandleFunc("POST /v1/done", srv.httpDone)
	mux.HandleFunc("POST /v1/fail", srv.httpFail)
	mux.HandleFunc("POST /v1/jump", srv.httpJump)
	mux.HandleFunc("GET /v1/package/{release}/{platform}", srv.httpPackage)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: srv.cfg.FirstFrameTimeout,
		IdleTimeout:       srv.cfg.IdleTimeout,
		MaxHeaderBytes:    8 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, &httpConn{})
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				srv.httpLn.closed(c)
			}
		},
	}
	hs.SetKeepAlivesEnabled(true)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	hs.Protocols = &p
	return hs
}

// serveReject answers every request of an over-limit connection with 503.
func (srv *Server) serveReject(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	srv.writeErr(w, &wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: srv.retryAfterMs(), Msg: "server at its connection limit"})
}

type errorJSON struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMs uint32 `json:"retry_after_ms,omitempty"`
}

func httpStatus(c wire.ErrCode) int {
	switch c {
	case wire.CodeAuthFailed, wire.CodeNotAuthenticated, wire.CodeReplayed, wire.CodeUnknownClient, wire.CodeClockSkew:
		return http.StatusUnauthorized
	case wire.CodeForbidden, wire.CodeInstallerInvalid:
		return http.StatusForbidden
	case wire.CodeOverloaded, wire.CodeShuttingDown:
		return http.StatusServiceUnavailable
	case wire.CodeNotUpgrading:
		return http.StatusConflict
	case wire.CodeUnknownRelease:
		return http.StatusNotFound
	case wire.CodeBadRange:
		return http.StatusRequestedRangeNotSatisfiable
	case wire.CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

func (srv *Server) writeErr(w http.ResponseWriter, e *wire.Error) {
	srv.m.error(e.Code)
	if e.RetryAfterMs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfterMs+999)/1000)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus(e.Code))
	_ = json.NewEncoder(w).Encode(errorJSON{Code: e.Code.String(), Message: e.Msg, RetryAfterMs: e.RetryAfterMs})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) *wire.Error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &wire.Error{Code: wire.CodeBadRequest, Msg: "body: " + err.Error()}
	}
	return nil
}

// authClient authenticates the request's client (once per connection).
func (srv *Server) authClient(r *http.Request) (engine.ClientID, *wire.Error) {
	var id engine.ClientID
	if _, err := hex.Decode(id[:], []byte(r.Header.Get(HeaderClient))); err != nil || len(r.Header.Get(HeaderClient)) != 32 {
		return id, &wire.Error{Code: wire.CodeNotAuthenticated, Msg: HeaderClient + " must be 32 hex digits"}
	}
	hc, _ := r.Context().Value(connKey{}).(*httpConn)
	if hc == nil || r.TLS == nil {
		return id, &wire.Error{Code: wire.CodeInternal, Msg: "no connection state"}
	}
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.authed {
		if hc.id != id {
			return id, &wire.Error{Code: wire.CodeForbidden, Msg: "this connection is authenticated as another client"}
		}
		return id, nil
	}
	ts, err := strconv.ParseUint(r.Header.Get(HeaderTimestamp), 10, 64)
	var nonce [16]byte
	var mac [32]byte
	_, nerr := hex.Decode(nonce[:], []byte(r.Header.Get(HeaderNonce)))
	_, merr := hex.Decode(mac[:], []byte(r.Header.Get(HeaderMAC)))
	if err != nil || nerr != nil || merr != nil || len(r.Header.Get(HeaderNonce)) != 32 || len(r.Header.Get(HeaderMAC)) != 64 {
		return id, &wire.Error{Code: wire.CodeNotAuthenticated, Msg: "first request of a connection needs " +
			strings.Join([]string{HeaderTimestamp, HeaderNonce, HeaderMAC}, ", ")}
	}
	binding, err := exporter(*r.TLS)
	if err != nil {
		return id, &wire.Error{Code: wire.CodeInternal, Msg: "no TLS exporter"}
	}
	if err := srv.verifyProof(id, ts, nonce, mac, binding); err != nil {
		var we *wire.Error
		errors.As(err, &we)
		return id, we
	}
	hc.authed, hc.id = true, id
	return id, nil
}

type enrollReq struct {
	InstallerToken string          `json:"installer_token"`
	Kind           engine.Kind     `json:"kind"`
	Platform       engine.Platform `json:"platform"`
	Version        engine.Version  `json:"version"`
	Hostname       string          `json:"hostname,omitempty"`
}

type enrollResp struct {
	ClientID engine.ClientID `json:"client_id"`
	Secret   []byte          `json:"secret"`
}

func (srv *Server) httpEnroll(w http.ResponseWriter, r *http.Request) {
	var req enrollReq
	if e := readJSON(r, &req); e != nil {
		srv.writeErr(w, e)
		return
	}
	id, secret, err := srv.enroll(req.InstallerToken, req.Kind)
	if err != nil {
		var we *wire.Error
		errors.As(err, &we)
		srv.writeErr(w, we)
		return
	}
	writeJSON(w, enrollResp{ClientID: id, Secret: secret[:]})
}

// CheckInRequest and CheckInResponse are the JSON forms of CheckIn and
// CheckInAnswer.
type CheckInRequest struct {
	Kind     engine.Kind     `json:"kind"`
	Platform engine.Platform `json:"platform"`
	Version  engine.Version  `json:"version"`
	Flags    uint8           `json:"flags,omitempty"`
}

// CheckInResponse answers a JSON check-in; Offer is set while upgrading.
type CheckInResponse struct {
	State         engine.State   `json:"state"`
	Target        engine.Version `json:"target"`
	QueuePosition int            `json:"queue_position"`
	Lane          engine.Lane    `json:"lane"`
	RetryAfterMs  int64          `json:"retry_after_ms"`
	Offer         *OfferJSON     `json:"offer,omitempty"`
}

// OfferJSON is UpgradeOffer in JSON ([]byte fields are base64).
type OfferJSON struct {
	ReleaseID    string          `json:"release_id"`
	Platform     engine.Platform `json:"platform"`
	Target       engine.Version  `json:"target"`
	PackageSize  uint64          `json:"package_size"`
	SHA256       string          `json:"sha256"`
	Manifest     []byte          `json:"manifest"`
	Signature    []byte          `json:"signature"`
	LeaseMs      uint32          `json:"lease_ms"`
	DownloadPath string          `json:"download_path"`
}

func (srv *Server) httpCheckIn(w http.ResponseWriter, r *http.Request) {
	id, e := srv.authClient(r)
	if e != nil {
		srv.writeErr(w, e)
		return
	}
	var req CheckInRequest
	if e := readJSON(r, &req); e != nil {
		srv.writeErr(w, e)
		return
	}
	in := engine.CheckIn{ID: id, Kind: req.Kind, Platform: req.Platform, Version: req.Version}
	var a engine.Answer
	var err error
	if req.Kind == engine.KindPassive {
		// Passive clients are online only while checked in, and an HTTP
		// check-in is over with its answer (unless it starts the upgrade,
		// whose offer the answer carries); persistent kinds polling over
		// HTTP stay online so that dispatches reach their next poll.
		a, err = srv.node.CheckInOnce(r.Context(), in, nil)
	} else {
		a, err = srv.node.CheckIn(r.Context(), in)
	}
	if err != nil {
		srv.writeErr(w, engineToWire(err))
		return
	}
	srv.m.checkinHTTP.Inc()
	resp := CheckInResponse{State: a.State, Target: a.Target, QueuePosition: a.Position, Lane: a.Lane,
		RetryAfterMs: a.RetryAfter.Milliseconds()}
	if a.State == engine.StateUpgrading {
		if o, err := srv.offerForTarget(req.Platform, a.Target); err == nil {
			m := o.msg
			resp.Offer = &OfferJSON{ReleaseID: m.ReleaseID, Platform: req.Platform, Target: a.Target,
				PackageSize: m.PackageSize, SHA256: hex.EncodeToString(m.SHA256[:]), Manifest: m.Manifest,
				Signature: m.Signature[:], LeaseMs: uint32(srv.leaseTime().Milliseconds()), DownloadPath: m.DownloadPath}
		}
	}
	writeJSON(w, resp)
}

func (srv *Server) httpProgress(w http.ResponseWriter, r *http.Request) {
	id, e := srv.authClient(r)
	if e != nil {
		srv.writeErr(w, e)
		return
	}
	var req struct {
		BytesDone uint64 `json:"bytes_done"`
	}
	if e := readJSON(r, &req); e != nil {
		srv.writeErr(w, e)
		return
	}
	if err := srv.node.Progress(r.Context(), id, req.BytesDone); err != nil {
		srv.writeErr(w, engineToWire(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (srv *Server) httpDone(w http.ResponseWriter, r *http.Request) {
	id, e := srv.authClient(r)
	if e != nil {
		srv.writeErr(w, e)
		return
	}
	if err := srv.node.Progress(r.Context(), id, 0); err != nil {
		srv.writeErr(w, engineToWire(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (srv *Server) httpFail(w http.ResponseWriter, r *http.Request) {
	id, e := srv.authClient(r)
	if e != nil {
		srv.writeErr(w, e)
		return
	}
	var req struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if e := readJSON(r, &req); e != nil {
		srv.writeErr(w, e)
		return
	}
	reason := req.Code
	if req.Message != "" {
		reason += ": " + req.Message
	}
	if err := srv.node.Fail(r.Context(), id, reason); err != nil {
		srv.writeErr(w, engineToWire(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (srv *Server) httpJump(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		srv.writeErr(w, &wire.Error{Code: wire.CodeNotAuthenticated, Msg: "console bearer token required"})
		return
	}
	if _, ok := srv.ids.VerifyConsole(tok); !ok {
		srv.writeErr(w, &wire.Error{Code: wire.CodeAuthFailed, Msg: "unknown console token"})
		return
	}
	var req struct {
		ClientID engine.ClientID `json:"client_id"`
	}
	if e := readJSON(r, &req); e != nil {
		srv.writeErr(w, e)
		return
	}
	// HTTP consoles poll: no waiter, so no JumpReady push.
	a, err := srv.node.Jump(r.Context(), req.ClientID, 0)
	if err != nil {
		srv.writeErr(w, engineToWire(err))
		return
	}
	writeJSON(w, struct {
		ClientID engine.ClientID   `json:"client_id"`
		Result   engine.JumpResult `json:"result"`
		Position int               `json:"queue_position"`
		Lane     engine.Lane       `json:"lane"`
	}{req.ClientID, a.Result, a.Position, a.Lane})
}

// httpPackage serves package bytes with Range support (resume), paced by
// the shared bucket. Only an authenticated client may download.
func (srv *Server) httpPackage(w http.ResponseWriter, r *http.Request) {
	if _, e := srv.authClient(r); e != nil {
		srv.writeErr(w, e)
		return
	}
	f, man, err := srv.pkgs.Open(r.PathValue("release"), r.PathValue("platform"))
	if err != nil {
		srv.writeErr(w, &wire.Error{Code: wire.CodeUnknownRelease, Msg: "no such package"})
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-JF-SHA256", man.SHA256)
	http.ServeContent(w, r, "", time.Time{}, &pacedReader{srv: srv, ra: f, size: man.Size})
}

// pacedReader is an io.ReadSeeker over a package that takes its bytes
// from the shared bucket.
type pacedReader struct {
	srv  *Server
	ra   io.ReaderAt
	off  int64
	size int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.size-p.off, 64<<10)]
	if err := p.srv.waitBytes(len(b)); err != nil {
		return 0, err
	}
	n, err := p.ra.ReadAt(b, p.off)
	p.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	p.srv.m.chunkBytes.Add(float64(n))
	return n, err
}

func (p *pacedReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += p.off
	case io.SeekEnd:
		off += p.size
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	p.off = off
	return off, nil
}
