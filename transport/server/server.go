package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"jumpfleet/engine"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/transport/wire"
)

// Server is the broker transport. Create it with New, then Start; stop it
// with Shutdown (graceful) or Close.
type Server struct {
	cfg     Config
	node    *engine.Node
	ids     *identity.Store
	pkgs    *packages.Store
	pub     ed25519.PublicKey
	m       *metrics
	log     *zap.Logger
	reg     *registry
	qdl     *deadlineWheel // QUIC streams' read deadlines; set in Start before any QUIC accept
	nonces  *nonceWindow
	bytes   *rate.Limiter // shared package bytes/s
	accept  *rate.Limiter // accepted connections/s
	hsSem   chan struct{} // handshakes in flight
	conns   atomic.Int64
	nextSID atomic.Uint64

	ipMu  sync.Mutex
	perIP map[netip.Addr]int // owned by ipMu; entries removed at zero

	tlsConf  *tls.Config
	quicConf *tls.Config

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below
	started   bool
	tcpLn     net.Listener
	quic      []quicSock // one per UDP socket on the QUIC port; transports closed last
	poller    *poller    // idle TLS sessions wait here without a goroutine; nil with NoPoller
	httpLn    *chanListener
	rejectLn  *chanListener
	httpSrv   *http.Server
	rejectSrv *http.Server

	wg       sync.WaitGroup // every goroutine the server starts
	sessWG   sync.WaitGroup // live sessions, for Shutdown
	shutting atomic.Bool
	closing  atomic.Bool
	closeMu  sync.Mutex
	closed   bool

	pushMu    sync.Mutex
	pushReady []*session // owned by pushMu
	pushWake  chan struct{}

	relMu    sync.Mutex
	releases []engine.Release    // owned by relMu; newest last
	offers   map[offerKey]*offer // owned by relMu; bounded by maxOffers
	lease    atomic.Int64        // engine LeaseTime, ns

	fdLimit  uint64
	logLimit rate.Sometimes

	// tcpOpen counts TCP connections past their handshake (binary and
	// HTTPS), each holding a descriptor; lingerFDs is how many descriptors
	// connections may hold before passive clients are no longer let
	// linger (lingerRoom): 9/10 of the open-files limit, 0 when unknown.
	tcpOpen   atomic.Int64
	lingerFDs atomic.Int64
}

// offer is a prebuilt UpgradeOffer for one (release, platform); LeaseMs is
// filled per push.
type offer struct {
	msg wire.UpgradeOffer
}

type offerKey struct {
	release  string
	platform engine.Platform
}

const maxOffers = 256

// New prepares a server; it does not listen until Start.
func New(cfg Config, node *engine.Node, ids *identity.Store, pkgs *packages.Store, releasePub ed25519.PublicKey) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if node == nil || ids == nil || pkgs == nil {
		return nil, errors.New("server: node, identity store and package store are required")
	}
	if len(releasePub) != ed25519.PublicKeySize {
		return nil, errors.New("server: release public key must be an ed25519 key")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("server: metrics: %w", err)
	}
	tc := cfg.TLS
	if tc == nil {
		cert, err := GenerateCert("localhost", "127.0.0.1", "::1")
		if err != nil {
			return nil, err
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	tc = tc.Clone()
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPNJumpfleet, ALPNHTTP2, ALPNHTTP1}
	tc.SessionTicketsDisabled = false
	qc := tc.Clone()
	qc.NextProtos = []string{ALPNJumpfleet}

	srv := &Server{
		cfg: cfg, node: node, ids: ids, pkgs: pkgs, pub: releasePub, m: m, log: cfg.Logger,
		reg:      newRegistry(),
		nonces:   newNonceWindow(cfg.AuthSkew.Milliseconds(), cfg.NonceWindowMax, cfg.NonceWindowPerClient),
		accept:   rate.NewLimiter(rate.Limit(cfg.AcceptRate), cfg.AcceptBurst),
		hsSem:    make(chan struct{}, cfg.MaxHandshakes),
		perIP:    make(map[netip.Addr]int),
		tlsConf:  tc,
		quicConf: qc,
		pushWake: make(chan struct{}, 1),
		offers:   make(map[offerKey]*offer),
		logLimit: rate.Sometimes{Interval: time.Second},
	}
	srv.bytes = rate.NewLimiter(rate.Limit(cfg.BytesPerSec), burstFor(cfg.BytesPerSec))
	srv.lease.Store(int64(engine.DefaultSettings().LeaseTime))
	srv.ctx, srv.cancel = context.WithCancel(context.Background())
	return srv, nil
}

// burstFor lets one maximal chunk through at any rate.
func burstFor(bps int64) int { return int(max(bps/10, wire.MaxFrameLimit)) }

// Start binds cfg.Listen on TCP and the same port on UDP, raises the
// open-files limit, reads the engine settings and starts serving.
func (srv *Server) Start() error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.started {
		return errors.New("server: already started")
	}
	if srv.closing.Load() {
		return errors.New("server: closed")
	}
	limit, err := raiseFDLimit()
	srv.fdLimit = limit
	srv.m.fdLimit.Set(float64(limit))
	srv.lingerFDs.Store(int64(limit / 10 * 9))
	if err != nil {
		srv.log.Warn("could not raise the open-files limit", zap.Uint64("limit", limit), zap.Error(err))
	} else {
		srv.log.Info("open-files limit", zap.Uint64("limit", limit))
	}
	if s, err := srv.node.Settings(srv.ctx); err == nil {
		srv.applySettings(s)
	}
	tcpLn, qs, err := srv.listen()
	if err != nil {
		return err
	}
	srv.tcpLn, srv.quic = tcpLn, qs
	if !srv.cfg.NoPoller {
		if srv.poller, err = newPoller(srv.reg.session); err != nil {
			_ = tcpLn.Close()
			closeQUIC(qs)
			return fmt.Errorf("server: poller: %w", err)
		}
		srv.goFn(srv.poller.run)
	}
	srv.httpLn = newChanListener(tcpLn.Addr())
	srv.rejectLn = newChanListener(tcpLn.Addr())
	srv.httpSrv = srv.newHTTPServer()
	srv.rejectSrv = &http.Server{Handler: http.HandlerFunc(srv.serveReject), ErrorLog: nil,
		ReadHeaderTimeout: srv.cfg.FirstFrameTimeout, IdleTimeout: time.Second}
	srv.started = true
	srv.goFn(func() { _ = srv.httpSrv.Serve(srv.httpLn) })
	srv.goFn(func() { _ = srv.rejectSrv.Serve(srv.rejectLn) })
	srv.goFn(func() { srv.acceptTCP(tcpLn) })
	if len(qs) > 0 {
		// Half a sweep interval a tick: a deadline is filed under the
		// tick it falls in, rounded up, and taken at the first sweep after
		// that tick starts, so it is enforced less than a sweep late.
		srv.qdl = newDeadlineWheel(srv.cfg.sweepEvery()/2, srv.now())
		srv.goFn(srv.sweepQUICDeadlines)
	}
	for _, q := range qs {
		srv.goFn(func() { srv.acceptQUIC(q.ln) })
	}
	for range srv.cfg.PushWorkers {
		srv.goFn(srv.pushWorker)
	}
	return nil
}

func (srv *Server) goFn(fn func()) {
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		fn()
	}()
}

// listen binds TCP, then UDP on the same port number (QUICSockets
// sockets, see quicsock.go). With port 0 a clash on UDP is retried with
// another TCP port.
func (srv *Server) listen() (net.Listener, []quicSock, error) {
	host, port, _ := net.SplitHostPort(srv.cfg.Listen)
	for attempt := 0; ; attempt++ {
		tl, err := net.Listen("tcp", srv.cfg.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("server: listen tcp: %w", err)
		}
		if srv.cfg.DisableQUIC {
			return tl, nil, nil
		}
		p := tl.Addr().(*net.TCPAddr).Port
		qs, err := srv.listenQUIC(net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return tl, qs, nil
		}
		_ = tl.Close()
		if port != "0" || attempt >= 10 {
			return nil, nil, fmt.Errorf("server: listen udp: %w", err)
		}
	}
}

// Addrs returns the bound TCP and UDP addresses (udp nil without QUIC).
func (srv *Server) Addrs() (tcp, udp net.Addr) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.tcpLn != nil {
		tcp = srv.tcpLn.Addr()
	}
	if len(srv.quic) > 0 {
		udp = srv.quic[0].ln.Addr()
	}
	return tcp, udp
}

// FDLimit is the open-files limit found (and raised) at Start.
func (srv *Server) FDLimit() uint64 {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.fdLimit
}

func (srv *Server) now() time.Time { return srv.cfg.Now() }

// retryAfterMs is the base retry-after plus full jitter up to the base
// again, so that clients told to wait do not return as one wave.
func (srv *Server) retryAfterMs() uint32 {
	base := srv.cfg.RetryAfter.Milliseconds()
	return uint32(base + rand.Int64N(base+1))
}

func (srv *Server) debugSometimes(msg string, f ...zap.Field) {
	srv.logLimit.Do(func() { srv.log.Debug(msg, f...) })
}

func (srv *Server) warnSometimes(msg string, f ...zap.Field) {
	srv.logLimit.Do(func() { srv.log.Warn(msg, f...) })
}

// lingerRoom reports whether a passive client on TCP may stay after its
// answer for the offer of the next free slot (PassiveLinger); overdue
// says its turn has already come (pending, retry-after 0). A lingering
// client holds a descriptor for up to the linger. When the TCP
// connections and handshakes in flight reach 9/10 of the open-files
// limit, those descriptors are what clients coming back from their
// install (each freeing a slot) need to get in at all: past that mark
// only overdue clients may linger, the ones the next free slots are for,
// and past 19/20 none. (In a rollout of 15,000 active and 85,000 passive
// clients on a 20,000-descriptor broker, ~5,000 lingering clients held
// the rest: accept failed with EMFILE for minutes and 1,700 of 2,000
// slots waited on clients that could not reconnect.) QUIC connections
// hold no descriptor of their own.
func (srv *Server) lingerRoom(overdue bool) bool {
	mark := srv.lingerFDs.Load() // 9/10 of the limit
	if mark <= 0 {
		return true
	}
	if overdue {
		mark += mark / 18 // 19/20
	}
	return srv.tcpOpen.Load()+int64(len(srv.hsSem)) < mark
}

// mayLinger decides, once descriptors are short (lingerRoom(false) is
// false), whether a passive client on TCP stays after answer a, and
// whether the answer says it is overdue. Only an overdue client may stay,
// while there is room for it (lingerRoom(true)), and only if its slot is
// expected within half a linger: a.Rejoin says when the longer-overdue
// clients ahead of it will have had theirs. A client further back would
// hold its descriptor through the linger for nothing, leave, and come
// straight back, while the clients ahead of it, the next free slots' own,
// found no room and were sent away: in a 100,000-client rollout with
// 85,000 passive clients that churn reached 1,800 refused lingers a
// second, handshakes that clients back from their install needed to free
// their slots. Sent away, it comes back at awayRetry(a).
func (srv *Server) mayLinger(a engine.Answer) bool {
	return a.Overdue() && a.Rejoin <= srv.cfg.PassiveLinger/2 && srv.lingerRoom(true)
}

// awayRetry is the retry-after of the goodbye to a passive client sent
// away (mayLinger): the engine's retry-after, or the server's jittered one
// if longer; for an overdue client its Rejoin, but no sooner than half a
// linger. An overdue client whose slot is due sooner was sent away only
// because the room was full, and the room frees as its lingering clients
// get their slots, over about a linger: back within a second or two it
// found it full again, and the clients at the head of the overdue checked
// in far more often than the rest (1/Rejoin summed over the overdue grows
// with the log of their number, and is dominated by the head).
func (srv *Server) awayRetry(a engine.Answer) time.Duration {
	if a.Overdue() {
		return max(a.Rejoin, srv.cfg.PassiveLinger/2)
	}
	return max(a.RetryAfter, time.Duration(srv.retryAfterMs())*time.Millisecond)
}

// admit applies the connection caps; it returns a release func, or the
// drop reason.
func (srv *Server) admit(addr net.Addr) (func(), string) {
	if srv.conns.Add(1) > int64(srv.cfg.MaxConns) {
		srv.conns.Add(-1)
		return nil, dropMaxConns
	}
	var ip netip.Addr
	if srv.cfg.MaxConnsPerIP > 0 {
		ip = addrIP(addr)
	}
	if ip.IsValid() {
		srv.ipMu.Lock()
		if srv.perIP[ip] >= srv.cfg.MaxConnsPerIP {
			srv.ipMu.Unlock()
			srv.conns.Add(-1)
			return nil, dropPerIP
		}
		srv.perIP[ip]++
		srv.ipMu.Unlock()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			srv.conns.Add(-1)
			if ip.IsValid() {
				srv.ipMu.Lock()
				if srv.perIP[ip]--; srv.perIP[ip] <= 0 {
					delete(srv.perIP, ip)
				}
				srv.ipMu.Unlock()
			}
		})
	}, ""
}

// addrIP is the remote IP of a TCP or UDP address, without formatting it.
func addrIP(a net.Addr) netip.Addr {
	if ap, ok := a.(interface{ AddrPort() netip.AddrPort }); ok { // *net.TCPAddr, *net.UDPAddr
		return ap.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (srv *Server) acceptTCP(ln net.Listener) {
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if srv.closing.Load() || srv.shutting.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors (or another transient failure): back off
			// instead of spinning, and say so.
			kind := "other"
			if isFDExhausted(err) {
				kind = "emfile"
			}
			srv.m.acceptErrs.WithLabelValues(kind).Inc()
			backoff = min(max(backoff*2, 5*time.Millisecond), time.Second)
			srv.warnSometimes("accept failed; backing off", zap.String("kind", kind), zap.Duration("backoff", backoff), zap.Error(err))
			select {
			case <-time.After(backoff):
			case <-srv.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		if !srv.accept.Allow() {
			srv.m.drop(dropAcceptRate)
			_ = c.Close()
			continue
		}
		select {
		case srv.hsSem <- struct{}{}:
		default:
			srv.m.drop(dropHandshakes)
			_ = c.Close()
			continue
		}
		srv.goFn(func() { srv.serveTCP(c) })
	}
}

// serveTCP handshakes (holding a handshake slot) and routes the
// connection by ALPN.
func (srv *Server) serveTCP(c net.Conn) {
	release, reason := srv.admit(c.RemoteAddr())
	pc := &parkConn{Conn: c}
	tc := tls.Server(pc, srv.tlsConf)
	_ = c.SetDeadline(srv.now().Add(srv.cfg.HandshakeTimeout))
	err := tc.Handshake()
	<-srv.hsSem
	if err != nil {
		srv.m.hsTLSFail.Inc()
		srv.m.dropHSFail.Inc()
		_ = c.Close()
		if release != nil {
			release()
		}
		return
	}
	srv.m.hsTLSOK.Inc()
	_ = c.SetDeadline(time.Time{})
	proto := tc.ConnectionState().NegotiatedProtocol
	isHTTP := proto == ALPNHTTP2 || proto == ALPNHTTP1
	if release == nil {
		// Over a cap: answer at once and close, never hang.
		srv.m.drop(reason)
		if isHTTP {
			srv.rejectLn.push(tc, nil)
			return
		}
		s := srv.newSession(tc, "tls", nil, nil)
		s.sendClose(&wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: srv.retryAfterMs(), Msg: "server at its connection limit"})
		return
	}
	srv.tcpOpen.Add(1)
	if isHTTP {
		srv.m.conns.WithLabelValues("https").Inc()
		srv.httpLn.push(tc, func() {
			srv.m.conns.WithLabelValues("https").Dec()
			srv.tcpOpen.Add(-1)
			release()
		})
		return
	}
	g := srv.m.connsTLS
	g.Inc()
	s := srv.newSession(tc, "tls", pc, func() ([32]byte, error) { return exporter(tc.ConnectionState()) })
	end := func() {
		g.Dec()
		srv.tcpOpen.Add(-1)
		release()
	}
	if srv.poller != nil {
		// This goroutine's stack grew deep in the handshake (ML-KEM,
		// ECDSA), but it ends when the session parks in the poller:
		// running the session here saves a goroutine per connection.
		s.run(end)
		return
	}
	// Without the poller the session's goroutine lives as long as the
	// connection: a fresh one starts small and, parked shallowly
	// (park.go), stays small.
	srv.goFn(func() { s.run(end) })
}

func exporter(cs tls.ConnectionState) ([32]byte, error) {
	var b [32]byte
	v, err := cs.ExportKeyingMaterial(wire.ExporterLabel, nil, 32)
	if err != nil {
		return b, err
	}
	copy(b[:], v)
	return b, nil
}

func (srv *Server) acceptQUIC(ln *quic.Listener) {
	for {
		qc, err := ln.Accept(srv.ctx)
		if err != nil {
			if srv.closing.Load() || srv.shutting.Load() || errors.Is(err, net.ErrClosed) || srv.ctx.Err() != nil {
				return
			}
			srv.m.acceptErrs.WithLabelValues("quic").Inc()
			continue
		}
		srv.m.hsQUICOK.Inc() // the accept bucket ran before the handshake (admitQUIC)
		srv.goFn(func() { srv.serveQUIC(qc) })
	}
}

func (srv *Server) serveQUIC(qc *quic.Conn) {
	release, reason := srv.admit(qc.RemoteAddr())
	ctx, cancel := context.WithTimeout(srv.ctx, srv.cfg.FirstFrameTimeout)
	st, err := qc.AcceptStream(ctx)
	cancel()
	if err != nil {
		_ = qc.CloseWithError(0, "no stream")
		if release != nil {
			release()
		}
		return
	}
	qs := &quicStream{Stream: st, conn: qc, wg: &srv.wg, wheel: srv.qdl}
	if release == nil {
		srv.m.drop(reason)
		s := srv.newSession(qs, "quic", nil, nil)
		s.sendClose(&wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: srv.retryAfterMs(), Msg: "server at its connection limit"})
		return
	}
	g := srv.m.connsQUIC
	g.Inc()
	s := srv.newSession(qs, "quic", nil, func() ([32]byte, error) { return exporter(qc.ConnectionState().TLS) })
	s.run(func() {
		g.Dec()
		release()
	})
}

// unreached hands back to the engine a start whose offer reached no
// connection (reason: the drop it is counted as): the engine frees the
// slot and puts the client first in line for when it is back, unless it
// has come back meanwhile (Engine.Unreached). gone: the client's session
// was seen closed, so the engine takes it offline even if its Disconnect
// has not arrived yet. Its callers include OnCommit
// on the engine goroutine, which must not wait on the engine's queue: the
// request is posted from a goroutine of the server's.
func (srv *Server) unreached(d engine.Dispatch, reason string, gone bool) {
	srv.m.drop(reason)
	srv.goFn(func() { _ = srv.node.UnreachedAsync(srv.ctx, d, gone) })
}

// OnCommit routes a committed engine turn's pushes to sessions. It runs
// on the engine goroutine and never blocks.
func (srv *Server) OnCommit(turn uint64, out *engine.Output) {
	for i := range out.Dispatches {
		d := &out.Dispatches[i]
		s, leaving := srv.reg.clientOrLeaving(d.Client)
		if s == nil {
			// A session that is leaving has closed: its client is gone,
			// though the engine may not have heard yet.
			srv.unreached(*d, dropPushOffline, leaving)
			continue
		}
		dc := *d
		s.enqueue(push{dispatch: &dc})
	}
	for _, jr := range out.JumpReady {
		msg := wire.JumpReady{ClientID: wire.ClientID(jr.Client), Version: wire.Version(jr.Version)}
		for _, w := range jr.Waiters {
			if s := srv.reg.session(w); s != nil && s.phase == phaseConsole {
				s.enqueue(push{ready: msg})
			}
		}
	}
	for i := range out.Events {
		ev := &out.Events[i]
		switch ev.Type {
		case engine.EvSettingsChanged:
			if ev.Settings != nil {
				srv.applySettings(*ev.Settings)
			}
		case engine.EvReleasePublished:
			srv.relMu.Lock()
			srv.releases = nil // refetched on next use, off the engine goroutine
			srv.relMu.Unlock()
		}
	}
}

func (srv *Server) applySettings(s engine.Settings) {
	srv.SetBytesPerSec(s.BytesPerSec)
	srv.lease.Store(int64(s.LeaseTime))
}

func (srv *Server) leaseTime() time.Duration { return time.Duration(srv.lease.Load()) }

// SetBytesPerSec changes the shared package-download rate.
func (srv *Server) SetBytesPerSec(bps int64) {
	if bps < 1024 {
		bps = 1024
	}
	now := srv.now()
	srv.bytes.SetLimitAt(now, rate.Limit(bps))
	srv.bytes.SetBurstAt(now, burstFor(bps))
}

func (srv *Server) waitBytes(n int) error { return srv.bytes.WaitN(srv.ctx, n) }

func (srv *Server) schedulePush(s *session) {
	srv.pushMu.Lock()
	srv.pushReady = append(srv.pushReady, s)
	srv.pushMu.Unlock()
	select {
	case srv.pushWake <- struct{}{}:
	default:
	}
}

func (srv *Server) pushWorker() {
	for {
		select {
		case <-srv.pushWake:
		case <-srv.ctx.Done():
			return
		}
		for {
			srv.pushMu.Lock()
			var s *session
			if n := len(srv.pushReady); n > 0 {
				s = srv.pushReady[n-1]
				srv.pushReady[n-1] = nil
				srv.pushReady = srv.pushReady[:n-1]
			}
			more := len(srv.pushReady) > 0
			srv.pushMu.Unlock()
			if s == nil {
				break
			}
			if more { // let another worker help
				select {
				case srv.pushWake <- struct{}{}:
				default:
				}
			}
			s.deliver()
		}
	}
}

// siteTag is the id of the newest site release ("" before any): what
// installers are bound to.
func (srv *Server) siteTag() (string, error) {
	rels, err := srv.loadReleases()
	if err != nil {
		return "", err
	}
	for i := len(rels) - 1; i >= 0; i-- {
		if rels[i].Kind == engine.ReleaseSite {
			return rels[i].ID, nil
		}
	}
	return "", nil
}

func (srv *Server) loadReleases() ([]engine.Release, error) {
	srv.relMu.Lock()
	rels := srv.releases
	srv.relMu.Unlock()
	if rels != nil {
		return rels, nil
	}
	ctx, cancel := context.WithTimeout(srv.ctx, 10*time.Second)
	defer cancel()
	rels, err := srv.node.Releases(ctx)
	if err != nil {
		return nil, err
	}
	if rels == nil {
		rels = []engine.Release{}
	}
	srv.relMu.Lock()
	srv.releases = rels
	srv.relMu.Unlock()
	return rels, nil
}

// offerFor builds (once) the UpgradeOffer of a release's package for a
// platform, verifying its signed manifest: the server never offers a
// package it cannot vouch for.
func (srv *Server) offerFor(release string, p engine.Platform) (*offer, error) {
	k := offerKey{release, p}
	srv.relMu.Lock()
	o := srv.offers[k]
	srv.relMu.Unlock()
	if o != nil {
		return o, nil
	}
	rels, err := srv.loadReleases()
	if err != nil {
		return nil, err
	}
	var tgt *engine.Target
	for i := range rels {
		if rels[i].ID != release {
			continue
		}
		for j := range rels[i].Targets {
			if rels[i].Targets[j].Platform == p {
				tgt = &rels[i].Targets[j]
			}
		}
	}
	if tgt == nil {
		return nil, fmt.Errorf("release %s has no target for %s", release, p)
	}
	signed, err := packages.ParseSigned(tgt.Package)
	if err != nil {
		return nil, err
	}
	man, err := signed.Verify(srv.pub)
	if err != nil {
		return nil, err
	}
	if man.Release != release || man.Platform != p.String() || man.Version != tgt.Version.String() {
		return nil, fmt.Errorf("manifest names %s/%s/%s, the release %s/%s/%s", man.Release, man.Platform, man.Version, release, p, tgt.Version)
	}
	o = &offer{msg: wire.UpgradeOffer{
		ReleaseID: release, Platform: wire.Platform(p), Target: wire.Version(tgt.Version),
		PackageSize: uint64(man.Size), SHA256: man.Digest(), Manifest: signed.Manifest,
		DownloadPath: "/v1/package/" + release + "/" + p.String(),
	}}
	copy(o.msg.Signature[:], signed.Signature)
	srv.relMu.Lock()
	if len(srv.offers) >= maxOffers {
		clear(srv.offers)
	}
	if prev := srv.offers[k]; prev != nil {
		o = prev // keep one pointer per key: sessions compare them
	} else {
		srv.offers[k] = o
	}
	srv.relMu.Unlock()
	return o, nil
}

// offerForTarget finds the newest site release setting target for p.
func (srv *Server) offerForTarget(p engine.Platform, target engine.Version) (*offer, error) {
	rels, err := srv.loadReleases()
	if err != nil {
		return nil, err
	}
	for i := len(rels) - 1; i >= 0; i-- {
		if rels[i].Kind != engine.ReleaseSite {
			continue
		}
		for _, t := range rels[i].Targets {
			if t.Platform == p && t.Version == target {
				return srv.offerFor(rels[i].ID, p)
			}
		}
	}
	return nil, fmt.Errorf("no release sets %s to %s", p, target)
}

// badPackage handles a dispatch whose package cannot be offered: the
// attempt fails at once so its slot is not held for a whole lease.
func (srv *Server) badPackage(d *engine.Dispatch, err error) {
	srv.warnSometimes("cannot offer package", zap.String("release", d.Release), zap.Stringer("platform", d.Platform), zap.Error(err))
	srv.m.error(wire.CodeUnknownRelease)
	ctx, cancel := context.WithTimeout(srv.ctx, 5*time.Second)
	defer cancel()
	_ = srv.node.Fail(ctx, d.Client, "server: package for "+d.Release+" cannot be offered: "+err.Error())
}

// Shutdown stops accepting, tells every session to come back later (Bye
// with a jittered retry-after), closes them and waits for their
// goroutines, or for ctx.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.shutting.Store(true)
	srv.closeListeners()
	if srv.httpSrv != nil {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = srv.httpSrv.Shutdown(hctx)
		_ = srv.rejectSrv.Shutdown(hctx)
		cancel()
	}
	// Clients come back spread over what the accept bucket can take, from
	// 1 s on (about a restart's length): uniform in [1 s, 1 s + open
	// connections ÷ AcceptRate]. The overload retry-after (5–10 s) would
	// leave the restarted broker idle.
	spread := int64(float64(srv.conns.Load()) / srv.cfg.AcceptRate * 1000)
	srv.reg.each(func(s *session) {
		s.sendClose(&wire.Bye{RetryAfterMs: uint32(1000 + rand.Int64N(spread+1))})
	})
	done := make(chan struct{})
	go func() { srv.sessWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if cerr := srv.Close(); err == nil {
		err = cerr
	}
	return err
}

func (srv *Server) closeListeners() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.tcpLn != nil {
		_ = srv.tcpLn.Close()
	}
	for _, q := range srv.quic {
		_ = q.ln.Close()
	}
}

// Close stops everything at once and waits for every goroutine the server
// started. Safe to call more than once.
func (srv *Server) Close() error {
	srv.closeMu.Lock()
	defer srv.closeMu.Unlock()
	if srv.closed {
		return nil
	}
	srv.closed = true
	srv.closing.Store(true)
	srv.closeListeners()
	srv.cancel()
	srv.mu.Lock()
	hs, rs := srv.httpSrv, srv.rejectSrv
	hl, rl := srv.httpLn, srv.rejectLn
	srv.mu.Unlock()
	if hs != nil {
		_ = hs.Close()
		_ = rs.Close()
		hl.Close()
		rl.Close()
	}
	srv.reg.each(func(s *session) { s.close() })
	srv.mu.Lock()
	if srv.poller != nil {
		srv.poller.stop()
	}
	srv.mu.Unlock()
	srv.wg.Wait()
	srv.mu.Lock()
	qs := srv.quic
	srv.quic = nil
	srv.mu.Unlock()
	closeQUIC(qs)
	return nil
}
