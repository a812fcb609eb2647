// Package client is the jumpfleet agent library and the reference for
// agent authors: it connects to a broker over TLS 1.3 or QUIC, speaks
// protocol v1 (docs/PROTOCOL.md), enrolls or authenticates, checks in,
// keeps heartbeats, follows pushes, downloads and verifies packages, and
// reconnects with capped exponential backoff and full jitter, honouring
// the server's retry-after. The load tester drives brokers with it.
//
// A Conn has one reader goroutine. Requests are answered in order, so a
// Conn keeps a FIFO of waiting calls; frames the server sends unasked
// (UpgradeOffer, JumpReady, Bye, and RetryLater or Error with no request
// waiting) are pushes, delivered on Pushes() or to Config.OnPush.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"jumpfleet/transport/wire"
)

// ALPN is the protocol name the broker routes to protocol v1.
const ALPN = "jumpfleet/1"

// Config configures Dial. Validate fills defaults.
type Config struct {
	// Addr is host:port; the same port serves TLS (TCP) and QUIC (UDP).
	Addr string
	// Protocol is "tls" (default) or "quic".
	Protocol string
	// TLS carries RootCAs/ServerName (and a ClientSessionCache for
	// resumption). NextProtos and MinVersion are set by Dial.
	TLS *tls.Config
	// PinSHA256, when set, replaces chain verification by a pin on the
	// SHA-256 of the server's leaf certificate (DER).
	PinSHA256 []byte
	// Role is sent in Hello: active, passive, jumpoint or console.
	Role wire.Kind
	// MaxFrame is the largest payload this client accepts (default 64 KiB).
	MaxFrame uint32
	// DialTimeout bounds connect + handshake + Hello (default 10s).
	DialTimeout time.Duration
	// PushBuffer is the capacity of Pushes() (default 16); a push that
	// finds it full is dropped and counted (Dropped).
	PushBuffer int
	// OnPush, if set, receives pushes instead of the channel. It runs on
	// the reader goroutine and must not block.
	OnPush func(wire.Msg)
	// Now is the clock used for Auth timestamps (default time.Now).
	Now func() time.Time
	// QUICTransport, if set, carries QUIC connections over its one UDP
	// socket instead of a new socket per connection (a load generator
	// with many connections needs this to stay under its open-files
	// limit). The caller owns and closes it.
	QUICTransport *quic.Transport
	// QUIC overrides the QUIC settings (default: DefaultQUICKeepAlive,
	// quic-go's 30 s idle timeout).
	QUIC *quic.Config
	// LocalAddr, if set, is the source address of TLS (and HTTPS)
	// connections, a *net.TCPAddr (port 0: any). A load generator spreads
	// its connections over many 127.x.y.z sources with it: one source
	// address has at most ~64k ports towards one server address. QUIC
	// connections leave from their QUICTransport's socket instead.
	LocalAddr net.Addr
}

// DefaultQUICKeepAlive is how often an idle QUIC connection sends a
// PING. It keeps NAT bindings (often 30 s for UDP) and the idle timeout
// from ending a quiet connection.
//
// It is also when a client of a crashed server could learn of the crash,
// but mostly does not: the restarted server answers a packet of a
// connection it does not know with a stateless reset only if the packet
// is longer than 42 bytes (quic-go's fixed reset size; a reset must be
// shorter than what it answers), and a keep-alive PING is 25 bytes with
// the server's 4-byte connection IDs (41 with 20-byte ones). Only packets
// that carry more (the first keep-alive after traffic also carries an
// ACK; stream data) draw a reset, and quic-go drops resets beyond 4
// queued. The rest learn at their idle timeout (quic-go's 30 s by
// default), counted from the last packet they received: in a fleet that
// was quiet for more than one keep-alive before the crash, nearly every
// client. Measured with 5,000 clients killed 3 s after their check-ins
// (jumpload storm, so many first keep-alives still carried an ACK):
// keep-alive 15 s / idle 30 s: 80 % back by 14.7 s, the rest at 40–45 s;
// 5 s / 30 s: 40 % by 4.5 s, the rest at 30–35 s; 5 s / 15 s: 60 % by
// 5.5 s, the rest at 17–20 s. The idle timeout, not the keep-alive, bounds
// a crash's tail. A shorter pair costs one PING and one ACK per client
// per period on each side (100,000 clients at 5 s: 20,000 packets/s each
// way instead of 6,700), so the defaults stay at 15 s / 30 s and a
// deployment that wants a faster return after a crash sets Config.QUIC;
// a graceful restart (Bye with a jittered retry-after) needs neither.
const DefaultQUICKeepAlive = 15 * time.Second

// Validate fills defaults and checks fields.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("client: Addr is required")
	}
	switch c.Protocol {
	case "":
		c.Protocol = "tls"
	case "tls", "quic":
	default:
		return fmt.Errorf("client: protocol %q: want tls or quic", c.Protocol)
	}
	if c.Role == 0 {
		c.Role = wire.KindActive
	}
	if c.Role < wire.KindActive || c.Role > wire.KindConsole {
		return fmt.Errorf("client: role %d unknown", c.Role)
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	if c.MaxFrame < wire.PreHelloMaxFrame {
		return fmt.Errorf("client: max frame must be at least %d", wire.PreHelloMaxFrame)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.PushBuffer == 0 {
		c.PushBuffer = 16
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LocalAddr != nil {
		if _, ok := c.LocalAddr.(*net.TCPAddr); !ok {
			return fmt.Errorf("client: LocalAddr %v is a %T, want *net.TCPAddr", c.LocalAddr, c.LocalAddr)
		}
	}
	return nil
}

// netDialer is the TCP dialer of TLS and HTTPS connections.
func (c *Config) netDialer() *net.Dialer {
	return &net.Dialer{LocalAddr: c.LocalAddr}
}

func (c *Config) tlsConfig() *tls.Config {
	var tc *tls.Config
	if c.TLS != nil {
		tc = c.TLS.Clone()
	} else {
		tc = &tls.Config{}
	}
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPN}
	if len(c.PinSHA256) > 0 {
		pin := append([]byte(nil), c.PinSHA256...)
		tc.InsecureSkipVerify = true // replaced by the pin below
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("client: server sent no certificate")
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if !bytes.Equal(sum[:], pin) {
				return errors.New("client: server certificate does not match the pin")
			}
			return nil
		}
	}
	return tc
}

// Credentials are what enrollment gives a client; keep them secret.
type Credentials struct {
	ID     wire.ClientID
	Secret [32]byte
}

// stream is a TLS connection or a QUIC stream.
type stream interface {
	io.ReadWriter
	SetDeadline(time.Time) error
	Close() error
}

// Conn is one connection to the broker. Methods are safe for concurrent
// use; answers come back in request order.
type Conn struct {
	cfg     Config
	raw     stream
	binding [32]byte
	ack     wire.HelloAck
	r       *wire.Reader

	wmu sync.Mutex
	w   *wire.Writer // owned by wmu

	pmu     sync.Mutex
	pending []*call // owned by pmu: FIFO of requests awaiting answers

	pushes  chan wire.Msg
	dropped atomic.Int64

	done      chan struct{} // closed when the reader exits
	errMu     sync.Mutex
	err       error // why the connection ended
	closeOnce sync.Once
	hbStop    chan struct{}
	hbOnce    sync.Once
	wg        sync.WaitGroup
}

type call struct {
	ch chan wire.Msg // capacity 1
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan wire.Msg, 1)} }}

// Dial connects, handshakes, and exchanges Hello/HelloAck.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	c, _, err := dial(ctx, cfg, nil, nil)
	return c, err
}

// DialAuth connects and authenticates in one round trip after the TLS
// handshake: Hello, Auth and (if first is not nil) the first CheckIn go out
// in one write, pipelined (PROTOCOL.md §5 "Pipelining"), and their answers
// are read in order. Auth needs only the TLS exporter, known once the
// handshake is done. It returns the first CheckIn's answer (zero without
// first); a RetryLater answer is a *RetryLaterError with the Conn still
// returned and usable.
func DialAuth(ctx context.Context, cfg Config, cred Credentials, first *wire.CheckIn) (*Conn, wire.CheckInAnswer, error) {
	return dial(ctx, cfg, &cred, first)
}

func dial(ctx context.Context, cfg Config, cred *Credentials, first *wire.CheckIn) (*Conn, wire.CheckInAnswer, error) {
	var ans wire.CheckInAnswer
	if err := cfg.Validate(); err != nil {
		return nil, ans, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	tc := cfg.tlsConfig()
	var raw stream
	var cs tls.ConnectionState
	switch cfg.Protocol {
	case "tls":
		d := tls.Dialer{NetDialer: cfg.netDialer(), Config: tc}
		nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
		if err != nil {
			return nil, ans, err
		}
		t := nc.(*tls.Conn)
		raw, cs = t, t.ConnectionState()
	case "quic":
		qcfg := &quic.Config{KeepAlivePeriod: DefaultQUICKeepAlive}
		if cfg.QUIC != nil {
			qcfg = cfg.QUIC.Clone()
		}
		qcfg.HandshakeIdleTimeout = cfg.DialTimeout
		var qc *quic.Conn
		var err error
		if cfg.QUICTransport != nil {
			var ua *net.UDPAddr
			if ua, err = net.ResolveUDPAddr("udp", cfg.Addr); err != nil {
				return nil, ans, err
			}
			qc, err = cfg.QUICTransport.Dial(ctx, ua, tc, qcfg)
		} else {
			qc, err = quic.DialAddr(ctx, cfg.Addr, tc, qcfg)
		}
		if err != nil {
			return nil, ans, err
		}
		st, err := qc.OpenStreamSync(ctx)
		if err != nil {
			_ = qc.CloseWithError(0, "")
			return nil, ans, err
		}
		raw, cs = &quicStream{Stream: st, conn: qc}, qc.ConnectionState().TLS
	}
	c := &Conn{cfg: cfg, raw: raw, pushes: make(chan wire.Msg, cfg.PushBuffer), done: make(chan struct{}), hbStop: make(chan struct{})}
	b, err := cs.ExportKeyingMaterial(wire.ExporterLabel, nil, 32)
	if err != nil {
		_ = raw.Close()
		return nil, ans, err
	}
	copy(c.binding[:], b)
	c.r = wire.NewReader(raw, wire.PreHelloMaxFrame)
	c.w = wire.NewWriter(raw, wire.PreHelloMaxFrame)
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	fail := func(err error) (*Conn, wire.CheckInAnswer, error) {
		_ = raw.Close()
		return nil, ans, err
	}
	// Everything before the first answer goes out in one write: every
	// frame here fits the pre-Hello limit.
	msgs := []wire.Msg{&wire.Hello{Magic: wire.Magic, MinVersion: wire.ProtocolVersion, MaxVersion: wire.ProtocolVersion,
		Role: cfg.Role, MaxFrame: cfg.MaxFrame}}
	if cred != nil {
		m, err := c.authMsg(*cred)
		if err != nil {
			return fail(err)
		}
		msgs = append(msgs, m)
		if first != nil {
			msgs = append(msgs, first)
		}
	}
	var out []byte
	for _, m := range msgs {
		if out, err = wire.AppendFrame(out, m); err != nil {
			return fail(err)
		}
	}
	if _, err := raw.Write(out); err != nil {
		return fail(err)
	}
	m, err := c.r.ReadMsg()
	if err != nil {
		return fail(err)
	}
	switch m := m.(type) {
	case *wire.HelloAck:
		c.ack = *m
	case *wire.Error:
		return fail(m)
	default:
		return fail(fmt.Errorf("client: %s instead of HelloAck", m.Type()))
	}
	c.r.SetMaxFrame(int(c.ack.MaxFrame))
	c.w.SetMaxFrame(int(c.ack.MaxFrame))
	var firstErr error
	for _, req := range msgs[1:] {
		m, err := c.r.ReadMsg()
		if err != nil {
			return fail(err)
		}
		switch a := m.(type) {
		case *wire.Error:
			return fail(a)
		case *wire.AuthOK:
			if req.Type() == wire.TypeAuth {
				continue
			}
		case *wire.CheckInAnswer:
			if req.Type() == wire.TypeCheckIn {
				ans = *a
				continue
			}
		case *wire.RetryLater:
			if req.Type() == wire.TypeCheckIn {
				firstErr = &RetryLaterError{RetryAfter: time.Duration(a.RetryAfterMs) * time.Millisecond}
				continue
			}
		}
		return fail(fmt.Errorf("client: %s in answer to %s", m.Type(), req.Type()))
	}
	_ = raw.SetDeadline(time.Time{})
	c.wg.Add(1)
	go c.readLoop()
	return c, ans, firstErr
}

// HelloAck returns what the server negotiated.
func (c *Conn) HelloAck() wire.HelloAck { return c.ack }

// Pushes delivers server-initiated messages (unless Config.OnPush is set).
func (c *Conn) Pushes() <-chan wire.Msg { return c.pushes }

// Dropped counts pushes lost to a full Pushes() buffer.
func (c *Conn) Dropped() int64 { return c.dropped.Load() }

// Closed is closed when the connection has ended; Err says why.
func (c *Conn) Closed() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up).
func (c *Conn) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Conn) setErr(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Close closes the connection and waits for its goroutines. Idempotent.
func (c *Conn) Close() error {
	c.abort(net.ErrClosed)
	c.wg.Wait()
	return nil
}

// abort closes the connection with err as its reason (unless it already
// ended) without waiting for the goroutines, so that one of them may call
// it. The reader then exits and Closed fires.
func (c *Conn) abort(err error) {
	c.closeOnce.Do(func() {
		c.setErr(err)
		c.hbOnce.Do(func() { close(c.hbStop) })
		_ = c.raw.Close()
	})
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	defer c.failPending()
	for {
		m, err := c.r.ReadMsg()
		if err != nil {
			c.setErr(err)
			_ = c.raw.Close()
			return
		}
		switch m := m.(type) {
		case *wire.UpgradeOffer, *wire.JumpReady:
			c.push(m)
		case *wire.Bye:
			c.setErr(&ByeError{RetryAfter: time.Duration(m.RetryAfterMs) * time.Millisecond})
			c.push(m)
		case *wire.RetryLater:
			if !c.answer(m) {
				c.push(m)
			}
		case *wire.Error:
			if m.Code.Closes() || !m.Code.Known() {
				c.setErr(m)
			}
			if !c.answer(m) {
				c.push(m)
			}
		default:
			if !c.answer(m) {
				c.setErr(fmt.Errorf("client: unsolicited %s", m.Type()))
				_ = c.raw.Close()
				return
			}
		}
	}
}

func (c *Conn) push(m wire.Msg) {
	if c.cfg.OnPush != nil {
		c.cfg.OnPush(m)
		return
	}
	select {
	case c.pushes <- m:
	default:
		c.dropped.Add(1)
	}
}

// answer gives m to the oldest waiting call.
func (c *Conn) answer(m wire.Msg) bool {
	c.pmu.Lock()
	if len(c.pending) == 0 {
		c.pmu.Unlock()
		return false
	}
	cl := c.pending[0]
	c.pending[0] = nil
	c.pending = c.pending[1:]
	c.pmu.Unlock()
	cl.ch <- m
	return true
}

func (c *Conn) failPending() {
	c.pmu.Lock()
	p := c.pending
	c.pending = nil
	c.pmu.Unlock()
	for _, cl := range p {
		cl.ch <- nil
	}
}

// send writes m without waiting for an answer.
func (c *Conn) send(m wire.Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.WriteMsg(m)
}

// roundTrip writes m and waits for its answer. ctx ending closes the
// connection: a late answer would otherwise be taken by the next request.
func (c *Conn) roundTrip(ctx context.Context, m wire.Msg) (wire.Msg, error) {
	cl := callPool.Get().(*call)
	c.wmu.Lock()
	c.pmu.Lock()
	select {
	case <-c.done:
		c.pmu.Unlock()
		c.wmu.Unlock()
		callPool.Put(cl)
		return nil, c.connErr()
	default:
	}
	c.pending = append(c.pending, cl)
	c.pmu.Unlock()
	err := c.w.WriteMsg(m)
	c.wmu.Unlock()
	if err != nil {
		_ = c.raw.Close() // the reader fails the call
	}
	select {
	case ans := <-cl.ch:
		callPool.Put(cl)
		if ans == nil {
			return nil, c.connErr()
		}
		switch a := ans.(type) {
		case *wire.Error:
			return nil, a
		case *wire.RetryLater:
			return nil, &RetryLaterError{RetryAfter: time.Duration(a.RetryAfterMs) * time.Millisecond}
		}
		return ans, nil
	case <-ctx.Done():
		_ = c.raw.Close() // cl stays with the reader, which fails it
		return nil, ctx.Err()
	}
}

func (c *Conn) connErr() error {
	<-c.done
	if err := c.Err(); err != nil {
		return err
	}
	return net.ErrClosed
}

// RetryLaterError is the server's RetryLater answer to a request.
type RetryLaterError struct{ RetryAfter time.Duration }

func (e *RetryLaterError) Error() string { return fmt.Sprintf("retry later (after %v)", e.RetryAfter) }

// ByeError is why a connection ended after the server's Bye.
type ByeError struct{ RetryAfter time.Duration }

func (e *ByeError) Error() string {
	return fmt.Sprintf("server said bye (retry after %v)", e.RetryAfter)
}

// RetryAfter extracts a server-given retry-after from err (Error with
// retry_after_ms, RetryLater, Bye); 0 if none.
func RetryAfter(err error) time.Duration {
	var we *wire.Error
	var rl *RetryLaterError
	var by *ByeError
	switch {
	case errors.As(err, &we):
		return time.Duration(we.RetryAfterMs) * time.Millisecond
	case errors.As(err, &rl):
		return rl.RetryAfter
	case errors.As(err, &by):
		return by.RetryAfter
	}
	return 0
}

func unexpected(m wire.Msg, want string) error {
	return fmt.Errorf("client: got %s, want %s", m.Type(), want)
}

// Enroll redeems an installer token; the connection is then authenticated
// as the new client.
func (c *Conn) Enroll(ctx context.Context, m wire.Enroll) (Credentials, error) {
	ans, err := c.roundTrip(ctx, &m)
	if err != nil {
		return Credentials{}, err
	}
	ok, isOK := ans.(*wire.EnrollOK)
	if !isOK {
		return Credentials{}, unexpected(ans, "EnrollOK")
	}
	return Credentials{ID: ok.ClientID, Secret: ok.Secret}, nil
}

// Auth proves the client's secret, bound to this connection.
func (c *Conn) Auth(ctx context.Context, cred Credentials) error {
	m, err := c.authMsg(cred)
	if err != nil {
		return err
	}
	return c.AuthRaw(ctx, m)
}

// authMsg builds a fresh proof bound to this connection.
func (c *Conn) authMsg(cred Credentials) (*wire.Auth, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, err
	}
	ts := uint64(c.cfg.Now().UnixMilli())
	mac := wire.AuthMAC(&cred.Secret, cred.ID, ts, &nonce, &c.binding)
	return &wire.Auth{ClientID: cred.ID, TimestampMs: ts, Nonce: nonce, MAC: mac}, nil
}

// AuthRaw sends a prepared Auth (tests use it to replay proofs).
func (c *Conn) AuthRaw(ctx context.Context, m *wire.Auth) error {
	ans, err := c.roundTrip(ctx, m)
	if err != nil {
		return err
	}
	if _, ok := ans.(*wire.AuthOK); !ok {
		return unexpected(ans, "AuthOK")
	}
	return nil
}

// Binding is this connection's TLS exporter value (what Auth binds to).
func (c *Conn) Binding() [32]byte { return c.binding }

// ConsoleAuth authenticates an access console.
func (c *Conn) ConsoleAuth(ctx context.Context, token string) error {
	ans, err := c.roundTrip(ctx, &wire.ConsoleAuth{ConsoleToken: token})
	if err != nil {
		return err
	}
	if _, ok := ans.(*wire.AuthOK); !ok {
		return unexpected(ans, "AuthOK")
	}
	return nil
}

// CheckIn reports the client's state and returns the server's answer. A
// RetryLater answer is a *RetryLaterError.
func (c *Conn) CheckIn(ctx context.Context, m wire.CheckIn) (wire.CheckInAnswer, error) {
	ans, err := c.roundTrip(ctx, &m)
	if err != nil {
		return wire.CheckInAnswer{}, err
	}
	a, ok := ans.(*wire.CheckInAnswer)
	if !ok {
		return wire.CheckInAnswer{}, unexpected(ans, "CheckInAnswer")
	}
	return *a, nil
}

// Heartbeat sends one heartbeat and waits for its ack.
func (c *Conn) Heartbeat(ctx context.Context) error {
	ans, err := c.roundTrip(ctx, &wire.Heartbeat{})
	if err != nil {
		return err
	}
	if _, ok := ans.(*wire.HeartbeatAck); !ok {
		return unexpected(ans, "HeartbeatAck")
	}
	return nil
}

// StartHeartbeats sends heartbeats at the interval the server asked for
// (HelloAck) until Close. The goroutine belongs to the Conn. A heartbeat
// that fails (no answer within one interval, or an error) closes the
// connection with a *HeartbeatError as its Err: a silent or broken server
// must make Closed fire so that the caller's reconnect loop runs, rather
// than leave a connection that looks up and is not.
func (c *Conn) StartHeartbeats() {
	d := time.Duration(c.ack.HeartbeatMs) * time.Millisecond
	if d <= 0 {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), d)
				err := c.Heartbeat(ctx)
				cancel()
				if err != nil {
					c.abort(&HeartbeatError{Err: err})
					return
				}
			case <-c.hbStop:
				return
			case <-c.done:
				return
			}
		}
	}()
}

// Jump asks (as a console) to jump to a client.
func (c *Conn) Jump(ctx context.Context, id wire.ClientID) (wire.JumpAnswer, error) {
	ans, err := c.roundTrip(ctx, &wire.JumpRequest{ClientID: id})
	if err != nil {
		return wire.JumpAnswer{}, err
	}
	a, ok := ans.(*wire.JumpAnswer)
	if !ok {
		return wire.JumpAnswer{}, unexpected(ans, "JumpAnswer")
	}
	return *a, nil
}

// Progress reports download progress (renews the upgrade lease). The
// server answers only misuse, as a push-like Error.
func (c *Conn) Progress(bytesDone uint64) error { return c.send(&wire.Progress{BytesDone: bytesDone}) }

// Done reports the package verified and installed.
func (c *Conn) Done() error { return c.send(&wire.Done{}) }

// Fail reports a failed upgrade with a code from 32-63.
func (c *Conn) Fail(code wire.ErrCode, msg string) error {
	return c.send(&wire.Fail{Code: code, Msg: msg})
}

// Bye says the client is leaving, then closes.
func (c *Conn) Bye() error {
	err := c.send(&wire.Bye{})
	_ = c.Close()
	return err
}

// quicStream closes the QUIC connection with its stream.
type quicStream struct {
	*quic.Stream
	conn *quic.Conn
}

func (q *quicStream) Close() error {
	_ = q.Stream.Close()
	return q.conn.CloseWithError(0, "")
}

// HeartbeatError is the Err of a connection that StartHeartbeats closed
// because a heartbeat failed.
type HeartbeatError struct{ Err error }

func (e *HeartbeatError) Error() string { return "client: heartbeat failed: " + e.Err.Error() }
func (e *HeartbeatError) Unwrap() error { return e.Err }
