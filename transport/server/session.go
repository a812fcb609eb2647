package server

import (
	"cmp"
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"jumpfleet/engine"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/transport/wire"
)

// stream is what a session runs over: a *tls.Conn, or one QUIC stream.
type stream interface {
	io.Reader
	io.Writer
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Close() error
}

type phase uint8

const (
	phaseHello phase = iota
	phaseAuth
	phaseClient
	phaseConsole
)

// push is one undelivered server-initiated message.
type push struct {
	dispatch *engine.Dispatch // UpgradeOffer
	ready    wire.JumpReady   // when dispatch is nil
}

// session is one connection speaking protocol v1. Fields without a note
// belong to the session goroutine.
type session struct {
	srv     *Server
	sid     uint64 // also the console's waiter id for engine.Jump
	conn    stream
	proto   string
	binding func() ([32]byte, error) // TLS exporter of this connection
	checkin prometheus.Counter
	r       *wire.Reader
	onFrame func(wire.MsgType, []byte) error
	park    *parkConn // TLS only: shallow parking while idle (park.go)
	onEnd   func()    // run once when the session ends, on whichever goroutine ends it

	// Parking without a goroutine (poller.go). pstate is shared with
	// wakers; the rest belongs to the session goroutine.
	pstate atomic.Int32 // running, parked or wakeRequested
	polled bool         // socket registered with the poller
	wakeT  *time.Timer  // fires s.wake at the read deadline while parked
	armFn  func(uintptr)
	armErr error

	phase     phase
	maxFrame  int // negotiated payload limit
	role      wire.Kind
	client    engine.ClientID // fixed at Auth/EnrollOK
	bound     bool            // client registered in the push registry
	checkedIn bool
	rdl       time.Time // read deadline in force
	linger    time.Time // passive: leave by then unless upgrading
	pkg       *openPkg  // package being served
	lastRetry time.Duration
	in        wire.CheckIn
	cache     answerCache // the last answer, while it provably still holds
	ans       wire.CheckInAnswer

	wmu  sync.Mutex
	out  *[]byte   // owned by wmu: encoded frames not yet written; pooled, nil when empty
	wmax int       // owned by wmu: payload limit of frames we send
	wdl  time.Time // owned by wmu: write deadline in force

	pmu       sync.Mutex
	pq        []push // owned by pmu; at most cfg.PushQueue
	scheduled bool   // owned by pmu: in the push workers' list

	leaving bool          // owned by the client's registry shard lock
	gone    chan struct{} // closed once the engine knows the client left

	offer      atomic.Pointer[offer] // the upgrade offered on this connection
	closed     atomic.Bool
	peerClosed atomic.Bool // the peer closed its side (EOF)
	closeOnce  sync.Once
}

type openPkg struct {
	release  string
	platform wire.Platform
	f        packages.ReadAtCloser
	size     int64
}

var errSessionClosed = errors.New("session closed")

func (srv *Server) newSession(conn stream, proto string, park *parkConn, binding func() ([32]byte, error)) *session {
	s := &session{srv: srv, sid: srv.nextSID.Add(1), conn: conn, proto: proto, binding: binding, park: park}
	if park != nil {
		park.own = true
		s.r = wire.NewReader(&sessReader{tls: conn, p: park}, wire.PreHelloMaxFrame)
	} else {
		s.r = wire.NewReader(conn, wire.PreHelloMaxFrame)
	}
	s.wmax = wire.PreHelloMaxFrame
	s.onFrame = s.handleFrame
	switch proto {
	case "quic":
		s.checkin = srv.m.checkinQUIC
	default:
		s.checkin = srv.m.checkinTLS
	}
	return s
}

// run serves the session until it ends; onEnd (may be nil) runs once
// after that, on whichever goroutine ends it. For a TLS session that
// goes idle, run returns early and the session continues on a fresh
// goroutine when its peer sends (poller.go). The session holds its own
// count in the server's WaitGroups from here to end.
func (s *session) run(onEnd func()) {
	s.onEnd = onEnd
	s.srv.sessWG.Add(1)
	s.srv.wg.Add(1) // the caller's goroutine is counted, so this is never from zero
	s.srv.reg.addSession(s)
	switch {
	case s.srv.shutting.Load():
		s.sendClose(&wire.Error{Code: wire.CodeShuttingDown, RetryAfterMs: s.srv.retryAfterMs(), Msg: "server is stopping"})
	case s.srv.closing.Load():
		// Close has already told every registered session to end.
	default:
		s.setReadDeadline(s.srv.now().Add(s.srv.cfg.FirstFrameTimeout))
		s.loop()
		return
	}
	s.end()
}

// loop reads frames until the session ends (and ends it) or parks
// without a goroutine.
func (s *session) loop() {
	for !s.closed.Load() {
		s.armRead()
		if s.park != nil {
			s.park.nonblock = true
		}
		err := s.r.ReadFrame(s.onFrame)
		if err == nil {
			continue
		}
		if err == errWouldBlock {
			// The input is drained: wait for more (idle).
			if err = s.idle(); err == nil {
				continue
			}
			if err == errParked {
				return
			}
		}
		s.fail(err)
		break
	}
	s.end()
}

var errParked = errors.New("session parked")

// end releases the session (finish), then the caller's resources, then
// its WaitGroup counts.
func (s *session) end() {
	s.finish()
	if s.onEnd != nil {
		s.onEnd()
	}
	s.srv.sessWG.Done()
	s.srv.wg.Done()
}

// idle runs when tls needs bytes the socket has not delivered yet: it
// sends the answers gathered so far in one write, then waits (awake).
func (s *session) idle() error {
	if err := s.flush(); err != nil {
		return err
	}
	if s.srv.poller == nil {
		return s.park.park() // on this goroutine, shallowly (park.go)
	}
	// A busy connection's next frame usually comes soon: wait for it on
	// this goroutine for ParkAfter before moving to the poller, whose
	// round trip (epoll_ctl, the poller's wake-up, a new goroutine) costs
	// a few µs a frame. Idle connections (heartbeats every 30 s) end up
	// in the poller, where they cost no goroutine.
	if hot := s.srv.cfg.ParkAfter; hot > 0 {
		if hd := s.srv.now().Add(hot); hd.Before(s.rdl) {
			if err := s.park.hotPark(hd); !errors.Is(err, os.ErrDeadlineExceeded) {
				return err // bytes, or the connection failed
			}
		}
	}
	return s.awake()
}

// awake reads what the socket holds or, when that is nothing, parks the
// session without a goroutine (errParked). It checks the read deadline
// itself: a session woken by its deadline's timer must not reach armRead,
// which would extend the deadline.
func (s *session) awake() error {
	for {
		if s.closed.Load() {
			return errSessionClosed
		}
		if !s.srv.now().Before(s.rdl) {
			return os.ErrDeadlineExceeded
		}
		got, err := s.park.tryRead()
		if err != nil || got {
			return err
		}
		if ok, err := s.sleep(); ok || err != nil {
			return cmp.Or(err, errParked)
		}
		// A wake came in while parking: look again.
	}
}

// resume continues a woken session on its fresh goroutine.
func (s *session) resume() {
	switch err := s.awake(); err {
	case errParked:
		return
	case nil:
		s.loop()
	default:
		s.fail(err)
		s.end()
	}
}

// Park states. A waker that finds the session running leaves
// wakeRequested, so a session that is about to park looks again instead.
const (
	running int32 = iota
	parked
	wakeRequested
)

// sleep arms the read-deadline timer and the poller, then parks. It
// reports false if a wake came in meanwhile (the caller looks again).
// Once it reports true the session belongs to whoever wakes it. A socket
// the poller refuses is waited on by this goroutine (park.go) instead.
func (s *session) sleep() (bool, error) {
	if d := s.rdl.Sub(s.srv.now()); s.wakeT == nil {
		s.wakeT = time.AfterFunc(d, s.wake)
	} else {
		s.wakeT.Reset(d)
	}
	if s.armFn == nil {
		s.armFn = s.armPoll
	}
	s.armErr = nil
	if err := s.park.rc.Control(s.armFn); err != nil {
		return false, err // closed
	}
	if s.armErr != nil {
		s.srv.debugSometimes("poller refused a socket; waiting on its goroutine", zap.Error(s.armErr))
		return false, s.park.park()
	}
	s.polled = true
	if s.pstate.CompareAndSwap(running, parked) {
		return true, nil
	}
	s.pstate.Store(running)
	return false, nil
}

func (s *session) armPoll(fd uintptr) {
	s.armErr = s.srv.poller.arm(int(fd), s.sid, !s.polled)
}

// wake continues a parked session on a fresh goroutine (counted by the
// session's own WaitGroup count, taken in run). Readability, the read
// deadline's timer and close call it, from any goroutine.
func (s *session) wake() {
	for {
		switch s.pstate.Load() {
		case parked:
			if s.pstate.CompareAndSwap(parked, running) {
				go s.resume()
				return
			}
		case running:
			if s.pstate.CompareAndSwap(running, wakeRequested) {
				return
			}
		default:
			return
		}
	}
}

// armRead keeps the read deadline right for the phase. Persistent
// sessions refresh it lazily (only once half of it is used up), which
// keeps timer updates off the per-frame path.
func (s *session) armRead() {
	cfg := &s.srv.cfg
	if s.phase == phaseHello || s.phase == phaseAuth {
		return // set once per phase
	}
	if !s.linger.IsZero() && s.offer.Load() == nil {
		if !s.rdl.Equal(s.linger) {
			s.setReadDeadline(s.linger)
		}
		return
	}
	now := s.srv.now()
	if s.rdl.Sub(now) < cfg.IdleTimeout/2 {
		s.setReadDeadline(now.Add(cfg.IdleTimeout))
	}
}

func (s *session) setReadDeadline(t time.Time) {
	s.rdl = t
	_ = s.conn.SetReadDeadline(t)
}

// fail ends the session after a read or handling error, telling the peer
// why when that helps it.
func (s *session) fail(err error) {
	if s.closed.Load() {
		return
	}
	// Answers still gathered go out first: a client may pipeline its
	// requests and half-close.
	_ = s.flush()
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		s.sendClose(we)
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		if !s.linger.IsZero() && s.offer.Load() == nil {
			// A passive client's linger ran out: a polite goodbye.
			s.sendClose(&wire.Bye{RetryAfterMs: uint32(s.lastRetry.Milliseconds())})
			return
		}
		s.sendClose(&wire.Error{Code: wire.CodeTimeout, Msg: "deadline passed in phase " + s.phase.String()})
	case errors.Is(err, io.EOF):
		// The peer closed: a close_notify now would cost a record and a
		// write (4% of a short connection's CPU) that nobody reads.
		s.peerClosed.Store(true)
	case errors.Is(err, net.ErrClosed), errors.Is(err, errSessionClosed):
	default:
		s.srv.debugSometimes("session read failed", zap.Error(err))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (p phase) String() string {
	switch p {
	case phaseHello:
		return "hello"
	case phaseAuth:
		return "auth"
	case phaseClient:
		return "client"
	}
	return "console"
}

// Writes. The session goroutine's answers on TLS are gathered in s.out
// while more input is already buffered and leave in one write (one TLS
// record, one syscall) when the input is drained: run flushes before it
// parks, fail before it closes. A pipelined Hello + Auth + CheckIn is
// answered with a single write. Everything else (QUIC, pushes from other
// goroutines, a full buffer) is written at once, behind what was gathered.

// flushAt is the gathered size that is written without waiting.
const flushAt = 8 << 10

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write sends an answer from the session goroutine (gathered on TLS).
func (s *session) write(m wire.Msg) error { return s.send(m, s.park == nil) }

// writeNow sends a frame at once (pushes, from any goroutine).
func (s *session) writeNow(m wire.Msg) error { return s.send(m, true) }

// send encodes m behind the gathered frames and writes them all if now.
// A frame above the negotiated limit is refused and nothing of it sent.
func (s *session) send(m wire.Msg, now bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return errSessionClosed
	}
	if err := s.appendLocked(m); err != nil {
		return err
	}
	if now || len(*s.out) >= flushAt {
		return s.flushLocked()
	}
	return nil
}

func (s *session) appendLocked(m wire.Msg) error {
	if s.out == nil {
		s.out = outPool.Get().(*[]byte)
	}
	start := len(*s.out)
	b, err := wire.AppendFrame(*s.out, m)
	if err == nil && len(b)-start-wire.HeaderLen > s.wmax {
		b, err = b[:start], &wire.Error{Code: wire.CodeFrameTooLarge, Msg: "frame above the negotiated maximum"}
	}
	*s.out = b
	return err
}

// flush writes what the session goroutine gathered.
func (s *session) flush() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.out == nil {
		return nil
	}
	if s.closed.Load() {
		s.dropOutLocked()
		return errSessionClosed
	}
	return s.flushLocked()
}

// flushLocked writes the gathered frames under a write deadline refreshed
// lazily. A failed write means the peer stopped reading (deadline) or went
// away: the session is disconnected.
func (s *session) flushLocked() error {
	if s.out == nil {
		return nil
	}
	b := *s.out
	var err error
	if len(b) > 0 {
		if now := s.srv.now(); s.wdl.Sub(now) < s.srv.cfg.WriteTimeout/2 {
			s.wdl = now.Add(s.srv.cfg.WriteTimeout)
			_ = s.conn.SetWriteDeadline(s.wdl)
		}
		_, err = s.conn.Write(b)
	}
	s.dropOutLocked()
	if err != nil && !errors.Is(err, errSessionClosed) {
		if q, ok := s.conn.(*quicStream); ok {
			// A write cut by its deadline may have sent part of a frame:
			// reset the stream rather than end it with a FIN after a torn
			// frame, which the client would read as a bad frame.
			q.CancelWrite(0)
		}
		s.kick(dropSlowReader)
	}
	return err
}

func (s *session) dropOutLocked() {
	if cap(*s.out) <= 128<<10 {
		*s.out = (*s.out)[:0]
		outPool.Put(s.out)
	}
	s.out = nil
}

// sendClose writes a last frame (behind any gathered ones) with a short
// deadline and closes.
func (s *session) sendClose(m wire.Msg) {
	if e, ok := m.(*wire.Error); ok {
		s.srv.m.error(e.Code)
	}
	s.wmu.Lock()
	if !s.closed.Load() {
		s.wdl = s.srv.now().Add(time.Second)
		_ = s.conn.SetWriteDeadline(s.wdl)
		if s.appendLocked(m) == nil {
			_, _ = s.conn.Write(*s.out)
		}
	}
	if s.out != nil {
		s.dropOutLocked()
	}
	s.wmu.Unlock()
	s.close()
}

// sendError answers a request with a non-closing error.
func (s *session) sendError(code wire.ErrCode, msg string) error {
	s.srv.m.error(code)
	return s.write(&wire.Error{Code: code, Msg: msg})
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.park != nil && s.peerClosed.Load() {
			_ = s.park.Conn.Close() // the TCP connection, without close_notify
			return
		}
		_ = s.conn.Close()
	})
	s.wake() // a parked session has no goroutine to notice
}

// kick disconnects the session from another goroutine, counting why.
func (s *session) kick(reason string) {
	if !s.closed.Load() {
		s.srv.m.drop(reason)
	}
	s.close()
}

// finish runs once the session goroutine is done: the engine hears that
// the client went offline (unless a newer connection took over), and
// everything the session held is released.
func (s *session) finish() {
	s.close()
	if s.bound {
		if s.srv.reg.unbindBegin(s) {
			if s.checkedIn {
				// Posted, not awaited: the engine applies requests in the
				// order they were queued, so a newer connection's CheckIn
				// (queued only after unbindEnd below) still comes after it.
				ctx, cancel := context.WithTimeout(s.srv.ctx, 5*time.Second)
				_ = s.srv.node.DisconnectAsync(ctx, s.client)
				cancel()
			}
			s.srv.reg.unbindEnd(s)
		}
		close(s.gone)
	}
	s.srv.reg.removeSession(s)
	if s.park != nil {
		s.park.release()
	}
	if s.wakeT != nil {
		s.wakeT.Stop()
	}
	if s.pkg != nil {
		_ = s.pkg.f.Close()
		s.pkg = nil
	}
	s.pmu.Lock()
	s.pq = nil
	s.pmu.Unlock()
}

// handleFrame is the protocol state machine (PROTOCOL.md §5). A returned
// *wire.Error is sent and closes the connection.
func (s *session) handleFrame(t wire.MsgType, p []byte) error {
	if !t.FromClient() {
		return &wire.Error{Code: wire.CodeUnexpectedMessage, Msg: t.String() + " is a server message"}
	}
	switch t {
	case wire.TypeBye:
		var m wire.Bye
		if err := m.Unmarshal(p); err != nil {
			return err
		}
		s.peerClosed.Store(true) // it is going; no close_notify (see fail)
		s.close()
		return nil
	case wire.TypeError:
		s.close() // the peer gave up; nothing to answer
		return nil
	}
	switch s.phase {
	case phaseHello:
		if t != wire.TypeHello {
			return &wire.Error{Code: wire.CodeUnexpectedMessage, Msg: "the first frame must be Hello"}
		}
		return s.hello(p)
	case phaseAuth:
		switch t {
		case wire.TypeEnroll:
			return s.enroll(p)
		case wire.TypeAuth:
			return s.auth(p)
		case wire.TypeConsoleAuth:
			return s.consoleAuth(p)
		case wire.TypeHello:
			return &wire.Error{Code: wire.CodeUnexpectedMessage, Msg: "second Hello"}
		}
		return &wire.Error{Code: wire.CodeNotAuthenticated, Msg: t.String() + " before authentication"}
	case phaseClient:
		switch t {
		case wire.TypeCheckIn:
			return s.checkIn(p)
		case wire.TypeHeartbeat:
			if len(p) != 0 {
				return &wire.Error{Code: wire.CodeBadFrame, Msg: "trailing bytes"}
			}
			return s.write(&wire.HeartbeatAck{})
		case wire.TypeChunkRequest:
			return s.chunk(p)
		case wire.TypeProgress:
			return s.progress(p)
		case wire.TypeDone:
			return s.done(p)
		case wire.TypeFail:
			return s.failUpgrade(p)
		case wire.TypeJumpRequest:
			return &wire.Error{Code: wire.CodeForbidden, Msg: "only access consoles may request jumps"}
		}
	case phaseConsole:
		switch t {
		case wire.TypeJumpRequest:
			return s.jump(p)
		case wire.TypeHeartbeat:
			if len(p) != 0 {
				return &wire.Error{Code: wire.CodeBadFrame, Msg: "trailing bytes"}
			}
			return s.write(&wire.HeartbeatAck{})
		case wire.TypeCheckIn, wire.TypeChunkRequest, wire.TypeProgress, wire.TypeDone, wire.TypeFail:
			return &wire.Error{Code: wire.CodeForbidden, Msg: "a console cannot act as a client"}
		}
	}
	return &wire.Error{Code: wire.CodeUnexpectedMessage, Msg: t.String() + " not expected in phase " + s.phase.String()}
}

func (s *session) hello(p []byte) error {
	var h wire.Hello
	if err := h.Unmarshal(p); err != nil {
		return err
	}
	v, maxFrame, err := h.Negotiate(wire.ProtocolVersion, wire.ProtocolVersion, uint32(s.srv.cfg.MaxFrame))
	if err != nil {
		return err
	}
	s.role = h.Role
	s.maxFrame = int(maxFrame)
	s.r.SetMaxFrame(int(maxFrame))
	s.wmu.Lock()
	s.wmax = int(maxFrame)
	s.wmu.Unlock()
	if err := s.write(&wire.HelloAck{Version: v, MaxFrame: maxFrame, HeartbeatMs: uint32(s.srv.cfg.Heartbeat.Milliseconds())}); err != nil {
		return err
	}
	s.phase = phaseAuth
	s.setReadDeadline(s.srv.now().Add(s.srv.cfg.FirstFrameTimeout))
	return nil
}

func (s *session) enroll(p []byte) error {
	var m wire.Enroll
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	if !s.role.IsClient() {
		return &wire.Error{Code: wire.CodeBadKind, Msg: "Enroll needs a client role in Hello"}
	}
	if m.Kind != s.role {
		return &wire.Error{Code: wire.CodeKindMismatch, Msg: "Enroll kind differs from the Hello role"}
	}
	id, secret, err := s.srv.enroll(m.InstallerToken, engine.Kind(m.Kind))
	if err != nil {
		return err
	}
	if err := s.write(&wire.EnrollOK{ClientID: wire.ClientID(id), Secret: secret}); err != nil {
		return err
	}
	s.authenticated(id)
	return nil
}

func (s *session) auth(p []byte) error {
	var m wire.Auth
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	if !s.role.IsClient() {
		return &wire.Error{Code: wire.CodeBadKind, Msg: "Auth needs a client role in Hello"}
	}
	binding, err := s.binding()
	if err != nil {
		return &wire.Error{Code: wire.CodeInternal, Msg: "no TLS exporter on this connection"}
	}
	id := engine.ClientID(m.ClientID)
	if err := s.srv.verifyProof(id, m.TimestampMs, m.Nonce, m.MAC, binding); err != nil {
		return err
	}
	if err := s.write(&wire.AuthOK{}); err != nil {
		return err
	}
	s.authenticated(id)
	return nil
}

func (s *session) authenticated(id engine.ClientID) {
	s.client = id
	s.phase = phaseClient
	s.gone = make(chan struct{})
	s.srv.reg.bind(s, 10*time.Second)
	s.bound = true
	s.rdl = time.Time{} // armRead takes over with the idle timeout
}

func (s *session) consoleAuth(p []byte) error {
	var m wire.ConsoleAuth
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	if s.role != wire.KindConsole {
		return &wire.Error{Code: wire.CodeBadKind, Msg: "ConsoleAuth needs role console in Hello"}
	}
	if _, ok := s.srv.ids.VerifyConsole(m.ConsoleToken); !ok {
		return &wire.Error{Code: wire.CodeAuthFailed, Msg: "unknown console token"}
	}
	if err := s.write(&wire.AuthOK{}); err != nil {
		return err
	}
	s.phase = phaseConsole
	s.rdl = time.Time{}
	return nil
}

func (s *session) checkIn(p []byte) error {
	m := &s.in
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	if m.Kind != s.role {
		return &wire.Error{Code: wire.CodeKindMismatch, Msg: "CheckIn kind differs from the Hello role"}
	}
	in := engine.CheckIn{ID: s.client, Kind: engine.Kind(m.Kind),
		Platform: engine.Platform(m.Platform), Version: engine.Version(m.Version)}
	if c := &s.cache; c.ok && m.Platform == c.platform && m.Version == c.version && s.srv.node.Epoch() == c.epoch {
		// A current client on the target, unchanged, and no release
		// since: the engine would answer exactly this (engine.Node.Epoch).
		// Its in-memory last check-in is refreshed at most every
		// checkInRefresh, without waiting.
		s.ans = c.ans
		if err := s.write(&s.ans); err != nil {
			return err
		}
		s.checkin.Inc()
		if now := s.srv.now(); now.Sub(c.forwarded) >= checkInRefresh {
			c.forwarded = now
			_ = s.srv.node.Post(s.srv.ctx, func(e *engine.Engine, t time.Time) (any, error) { return e.CheckIn(t, in) })
		}
		return nil
	}
	epoch := s.srv.node.Epoch() // read before asking: a release in between invalidates
	var a engine.Answer
	var err error
	sentAway := false
	if s.role == wire.KindPassive {
		// A passive client told to come back later leaves with its answer
		// (PROTOCOL.md): offline in the engine in the same turn, so that no
		// later turn starts it while its goodbye is on the way. Counted
		// online until its connection closed, it was started in that
		// moment now and then, the offer went to a closing socket, and the
		// slot waited for the lease to end; the attempt failed and the
		// client went to the back of the queue (tls26, tls27: each of
		// their late passive clients). Only an overdue one stays.
		stay := engine.Answer.Overdue
		if s.park != nil && !s.srv.lingerRoom(false) {
			// Descriptors are short (lingerRoom): on TCP even an overdue
			// client leaves, unless its slot is due within the linger
			// (mayLinger).
			stay = func(a engine.Answer) bool {
				sentAway = !s.srv.mayLinger(a)
				return !sentAway
			}
		}
		a, err = s.srv.node.CheckInOnce(s.srv.ctx, in, stay)
	} else {
		a, err = s.srv.node.CheckIn(s.srv.ctx, in)
	}
	if err != nil {
		return s.engineError(err)
	}
	s.checkedIn = true
	s.ans = wire.CheckInAnswer{State: wire.State(a.State), Target: wire.Version(a.Target),
		QueuePosition: uint32(min(a.Position, 1<<32-1)), Lane: wire.Lane(a.Lane),
		RetryAfterMs: uint32(a.RetryAfter.Milliseconds())}
	s.cache.ok = false
	if a.State == engine.StateCurrent && s.role != wire.KindPassive && (a.Target.IsZero() || a.Target == in.Version) {
		s.cache = answerCache{ok: true, epoch: epoch, platform: m.Platform, version: m.Version, ans: s.ans, forwarded: s.srv.now()}
	}
	if err := s.write(&s.ans); err != nil {
		return err
	}
	s.checkin.Inc()
	if s.role == wire.KindPassive {
		s.lastRetry = a.RetryAfter
		s.linger = s.srv.now().Add(s.srv.cfg.PassiveLinger)
		if sentAway {
			// No linger: a goodbye now that says when to come back, for
			// an overdue client when the longer-overdue clients ahead of
			// it will have had their slots (the oldest soonest).
			s.srv.m.drop(dropNoLingerRoom)
			s.lastRetry = s.srv.awayRetry(a)
			s.linger = s.srv.now()
		}
	}
	if a.State == engine.StateUpgrading {
		// A reconnecting client whose upgrade is under way: offer again so
		// that it can resume.
		if o, err := s.srv.offerForTarget(engine.Platform(m.Platform), a.Target); err == nil {
			s.sendOffer(o, s.srv.leaseTime(), s.park == nil)
		}
	} else {
		s.dropFinishedOffer(a.State)
	}
	return nil
}

// answerCache holds a current, up-to-date persistent client's last
// check-in answer and the engine epoch it was valid for.
type answerCache struct {
	ok        bool
	epoch     uint64
	platform  wire.Platform
	version   wire.Version
	ans       wire.CheckInAnswer
	forwarded time.Time
}

// checkInRefresh bounds how stale the engine's record of a cached client's
// last check-in may get.
const checkInRefresh = 30 * time.Second

// dropFinishedOffer forgets the connection's offer after a check-in
// answered st, but only when the upgrade is over (current) or abandoned
// (failed). A pending answer does not end an offer: the client's check-in
// and its dispatch can fall in the same engine turn, whose answer still
// says pending while OnCommit's push has already set the offer; dropping
// it then would refuse the client's download (not_upgrading) and hold its
// slot until the lease ends.
func (s *session) dropFinishedOffer(st engine.State) {
	if st != engine.StateCurrent && st != engine.StateFailed {
		return
	}
	if o := s.offer.Load(); o != nil {
		s.offer.CompareAndSwap(o, nil)
	}
}

// sendOffer pushes an UpgradeOffer unless this very offer was already
// sent on this connection.
func (s *session) sendOffer(o *offer, lease time.Duration, now bool) {
	if prev := s.offer.Swap(o); prev == o {
		return
	}
	m := o.msg
	m.LeaseMs = uint32(max(lease, 0).Milliseconds())
	if s.send(&m, now) == nil {
		s.srv.m.pushes.WithLabelValues("UpgradeOffer").Inc()
	}
}

// engineError turns an engine failure into an Error frame: a closing code
// ends the session, others answer the request and go on.
func (s *session) engineError(err error) error {
	we := engineToWire(err)
	if we.Code.Closes() {
		if we.Code == wire.CodeShuttingDown || we.Code == wire.CodeOverloaded || we.Code == wire.CodeInternal {
			we.RetryAfterMs = s.srv.retryAfterMs()
		}
		return we
	}
	return s.sendError(we.Code, we.Msg)
}

func (s *session) progress(p []byte) error {
	var m wire.Progress
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	if err := s.srv.node.Progress(s.srv.ctx, s.client, m.BytesDone); err != nil {
		return s.engineError(err)
	}
	return nil
}

func (s *session) done(p []byte) error {
	if len(p) != 0 {
		return &wire.Error{Code: wire.CodeBadFrame, Msg: "trailing bytes"}
	}
	o := s.offer.Load()
	if o == nil {
		return s.sendError(wire.CodeNotUpgrading, "no upgrade offered on this connection")
	}
	// The install starts now: renew the lease; success is the next
	// CheckIn with the target version.
	if err := s.srv.node.Progress(s.srv.ctx, s.client, o.msg.PackageSize); err != nil {
		return s.engineError(err)
	}
	return nil
}

func (s *session) failUpgrade(p []byte) error {
	var m wire.Fail
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	reason := m.Code.String()
	if m.Msg != "" {
		reason += ": " + m.Msg
	}
	if err := s.srv.node.Fail(s.srv.ctx, s.client, reason); err != nil {
		return s.engineError(err)
	}
	s.offer.Store(nil)
	return nil
}

func (s *session) chunk(p []byte) error {
	var m wire.ChunkRequest
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	o := s.offer.Load()
	if o == nil {
		return s.sendError(wire.CodeNotUpgrading, "no upgrade offered on this connection")
	}
	if m.ReleaseID != o.msg.ReleaseID || m.Platform != o.msg.Platform {
		return s.sendError(wire.CodeUnknownRelease, "not the release offered on this connection")
	}
	size := o.msg.PackageSize
	maxLen := uint64(wire.MaxChunkData(s.maxFrame))
	if m.Length == 0 || uint64(m.Length) > maxLen || m.Offset >= size {
		return s.sendError(wire.CodeBadRange, "offset must be below the package size and length 1..max_frame-16")
	}
	if s.pkg == nil || s.pkg.release != m.ReleaseID || s.pkg.platform != m.Platform {
		if s.pkg != nil {
			_ = s.pkg.f.Close()
			s.pkg = nil
		}
		f, man, err := s.srv.pkgs.Open(m.ReleaseID, m.Platform.String())
		if err != nil {
			s.srv.warnSometimes("package not servable", zap.String("release", m.ReleaseID), zap.Error(err))
			return s.sendError(wire.CodeUnknownRelease, "package not available on this server")
		}
		if uint64(man.Size) != size || man.Digest() != o.msg.SHA256 {
			_ = f.Close()
			s.srv.warnSometimes("stored package differs from its signed manifest", zap.String("release", m.ReleaseID))
			return s.sendError(wire.CodeUnknownRelease, "package on this server differs from its manifest")
		}
		s.pkg = &openPkg{release: m.ReleaseID, platform: m.Platform, f: f, size: man.Size}
	}
	n := int(min(uint64(m.Length), size-m.Offset))
	// Delay, do not refuse: every download shares one bytes/s bucket.
	if err := s.srv.waitBytes(n); err != nil {
		return &wire.Error{Code: wire.CodeShuttingDown, RetryAfterMs: s.srv.retryAfterMs(), Msg: "server is stopping"}
	}
	bp := chunkBuf(n)
	defer putChunkBuf(bp)
	buf := (*bp)[:n]
	if _, err := s.pkg.f.ReadAt(buf, int64(m.Offset)); err != nil && !errors.Is(err, io.EOF) {
		return &wire.Error{Code: wire.CodeInternal, Msg: "reading the package failed"}
	}
	s.srv.m.chunkBytes.Add(float64(n))
	return s.write(&wire.Chunk{Offset: m.Offset, Data: buf})
}

var chunkPool sync.Pool

func chunkBuf(n int) *[]byte {
	if v, ok := chunkPool.Get().(*[]byte); ok && cap(*v) >= n {
		return v
	}
	b := make([]byte, n)
	return &b
}

func putChunkBuf(b *[]byte) { chunkPool.Put(b) }

func (s *session) jump(p []byte) error {
	var m wire.JumpRequest
	if err := m.Unmarshal(p); err != nil {
		return err
	}
	ans := wire.JumpAnswer{ClientID: m.ClientID}
	a, err := s.srv.node.Jump(s.srv.ctx, engine.ClientID(m.ClientID), s.sid)
	switch {
	case err == nil:
		ans.Result = wire.JumpResult(a.Result)
		ans.QueuePosition = uint32(min(a.Position, 1<<32-1))
		ans.Lane = wire.Lane(a.Lane)
		if a.State == engine.StateFailed && a.Result != engine.JumpUpgradePending {
			ans.Result = wire.JumpFailed
		}
	case engine.CodeOf(err) == engine.CodeUnknownClient:
		ans.Result = wire.JumpUnknown
	default:
		return s.engineError(err)
	}
	return s.write(&ans)
}

// enqueue adds a push; OnCommit calls it, so it never blocks. A session
// whose queue is full is not reading fast enough and is disconnected.
func (s *session) enqueue(p push) {
	s.pmu.Lock()
	if s.closed.Load() {
		s.pmu.Unlock()
		s.unreached(p)
		return
	}
	if len(s.pq) >= s.srv.cfg.PushQueue {
		s.pmu.Unlock()
		s.kick(dropPushQueue)
		s.unreached(p)
		return
	}
	s.pq = append(s.pq, p)
	sched := !s.scheduled
	s.scheduled = true
	s.pmu.Unlock()
	if sched {
		s.srv.schedulePush(s)
	}
}

// unreached hands back to the engine a start whose offer this closed
// session can no longer deliver (Engine.Unreached; the engine ignores it
// if the client has come back meanwhile). Not if this session already
// sent an offer: the push may repeat one the client got with its
// check-in's answer, and the client may be installing.
func (s *session) unreached(p push) {
	if p.dispatch != nil && s.offer.Load() == nil {
		s.srv.unreached(*p.dispatch, dropPushClosed, true)
	}
}

// deliver writes the queued pushes (on a push worker).
func (s *session) deliver() {
	s.pmu.Lock()
	items := s.pq
	s.pq = nil
	s.scheduled = false
	s.pmu.Unlock()
	for k, p := range items {
		if s.closed.Load() {
			for _, p := range items[k:] {
				s.unreached(p)
			}
			return
		}
		if p.dispatch == nil {
			jr := p.ready
			if s.writeNow(&jr) == nil {
				s.srv.m.pushes.WithLabelValues("JumpReady").Inc()
			}
			continue
		}
		d := p.dispatch
		o, err := s.srv.offerFor(d.Release, d.Platform)
		if err != nil {
			s.srv.badPackage(d, err)
			continue
		}
		s.sendOffer(o, d.Lease.Sub(s.srv.now()), true)
	}
}

// verifyProof checks an Auth proof (PROTOCOL.md §6), in the documented
// order.
func (srv *Server) verifyProof(id engine.ClientID, tsMs uint64, nonce [16]byte, mac [32]byte, binding [32]byte) error {
	secret, ok, err := srv.ids.Secret(id)
	if err != nil {
		return &wire.Error{Code: wire.CodeInternal, RetryAfterMs: srv.retryAfterMs(), Msg: "credential store unavailable"}
	}
	if !ok {
		return &wire.Error{Code: wire.CodeUnknownClient, Msg: "client id not enrolled"}
	}
	now := srv.now()
	nowMs := now.UnixMilli()
	if d := int64(tsMs) - nowMs; d > srv.cfg.AuthSkew.Milliseconds() || -d > srv.cfg.AuthSkew.Milliseconds() {
		return &wire.Error{Code: wire.CodeClockSkew, Msg: "timestamp too far from server time " + now.UTC().Format(time.RFC3339)}
	}
	want := wire.AuthMAC(&secret, wire.ClientID(id), tsMs, &nonce, &binding)
	if !hmac.Equal(want[:], mac[:]) {
		return &wire.Error{Code: wire.CodeAuthFailed, Msg: "proof does not match"}
	}
	switch srv.nonces.add(nowMs, id, nonce) {
	case nonceReplayed:
		return &wire.Error{Code: wire.CodeReplayed, Msg: "nonce already used"}
	case nonceFull:
		srv.m.drop(dropNonceWindow)
		return &wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: srv.retryAfterMs(), Msg: "too many recent authentications"}
	}
	return nil
}

// enroll redeems an installer token against the current site tag.
func (srv *Server) enroll(token string, kind engine.Kind) (engine.ClientID, [32]byte, error) {
	tag, err := srv.siteTag()
	if err != nil {
		return engine.ClientID{}, [32]byte{}, engineToWire(err)
	}
	id, secret, err := srv.ids.EnrollKind(srv.now(), token, tag, kind)
	if err != nil {
		code := wire.CodeInternal
		switch identity.CodeOf(err) {
		case identity.CodeAuthFailed:
			// PROTOCOL.md §7: an unknown installer token is installer_invalid.
			code = wire.CodeInstallerInvalid
		case identity.CodeInstallerInvalid:
			code = wire.CodeInstallerInvalid
		case identity.CodeKindMismatch:
			code = wire.CodeKindMismatch
		}
		msg := err.Error()
		if ie, ok := errors.AsType[*identity.Error](err); ok {
			msg = ie.Msg
		}
		return id, secret, &wire.Error{Code: code, Msg: msg}
	}
	return id, secret, nil
}

// engineCodes maps engine error codes to the wire catalogue; any other
// engine code is internal on the wire.
var engineCodes = map[engine.Code]wire.ErrCode{
	engine.CodeBadKind:        wire.CodeBadKind,
	engine.CodeBadVersion:     wire.CodeBadVersion,
	engine.CodeBadPlatform:    wire.CodeBadPlatform,
	engine.CodeUnknownClient:  wire.CodeUnknownClient,
	engine.CodeUnknownRelease: wire.CodeUnknownRelease,
	engine.CodeNotUpgrading:   wire.CodeNotUpgrading,
	engine.CodeKindMismatch:   wire.CodeKindMismatch,
	engine.CodeOverloaded:     wire.CodeOverloaded,
	engine.CodeClosed:         wire.CodeShuttingDown,
	engine.CodeBadRequest:     wire.CodeBadRequest,
}

// engineToWire maps engine errors to the wire catalogue.
func engineToWire(err error) *wire.Error {
	var ee *engine.Error
	if !errors.As(err, &ee) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &wire.Error{Code: wire.CodeShuttingDown, Msg: "server is stopping"}
		}
		return &wire.Error{Code: wire.CodeInternal, Msg: "internal error"}
	}
	code, ok := engineCodes[ee.Code]
	if !ok {
		code = wire.CodeInternal
	}
	return &wire.Error{Code: code, Msg: ee.Msg}
}
