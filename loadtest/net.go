package loadtest

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/wire"
)

// NetDialer connects agents to a broker over the network with the client
// library (transport/client): protocol v1 over TLS or QUIC, or the HTTPS +
// JSON endpoint (steady check-ins only).
type NetDialer struct {
	Addr     string // host:port of the client listener
	Protocol string // tls, quic or https
	Pin      []byte // SHA-256 of the broker's certificate
	// ReleaseKey is the publisher key packages must verify against.
	ReleaseKey  ed25519.PublicKey
	DialTimeout time.Duration
	// SourceAddrs spreads TLS and HTTPS connections round-robin over that
	// many loopback source addresses (127.1.0.1, 127.1.0.2, ...; 0 or 1:
	// the kernel's choice). One source address has ~64k ephemeral ports
	// towards one server address, and a storm leaves many of them in
	// TIME_WAIT; only for a broker on loopback.
	SourceAddrs int
	// QUICSockets is how many UDP sockets (shared quic.Transports) carry
	// this process's QUIC connections, round-robin (default 64). A socket
	// per connection would cost a descriptor each and stop a process at
	// its open-files limit (20,000 here); one socket for all would make
	// one receive queue the bottleneck.
	QUICSockets int
	// QUICKeepAlive and QUICIdleTimeout override the client library's
	// QUIC keep-alive (15 s) and quic-go's idle timeout (30 s). After a
	// broker crash a QUIC client hears of it only when it next sends: its
	// keep-alive reaches the restarted broker, which answers with a
	// stateless reset; a client whose reset is lost waits for its idle
	// timeout. So the keep-alive bounds when a crashed broker's clients
	// start to come back, and the idle timeout bounds the last of them; a
	// shorter keep-alive costs one packet each way per client per period
	// (client.DefaultQUICKeepAlive has the measurements). 0: the
	// library's defaults.
	QUICKeepAlive, QUICIdleTimeout time.Duration
	// AddedRTT holds back every datagram of this process's shared QUIC
	// sockets for that long before it is sent (delayConn): the agents'
	// round-trip time to the broker, which loopback does not have. 0:
	// none.
	AddedRTT time.Duration
	// Resume lets agents resume TLS sessions (over TLS and QUIC) with one
	// ticket cache per load process, as real agents keep their ticket
	// across an upgrade's restart: the post-install reconnect, which holds
	// the upgrade slot, is then a resumed handshake (no certificate
	// signature on the broker). A restarted broker has new ticket keys, so
	// a storm's reconnects are full handshakes either way.
	Resume bool

	seq      atomic.Uint64 // round-robin over sources and sockets
	qmu      sync.Mutex
	qts      []*quic.Transport      // owned by qmu; created on first use
	sessions tls.ClientSessionCache // owned by qmu; created on first use
	closed   bool                   // owned by qmu
}

// maxSourceAddrs keeps sources within 127.1.0.0/16 (and out of 127.0.0.x,
// where brokers listen).
const maxSourceAddrs = 65000

func (d *NetDialer) config(role wire.Kind) client.Config {
	to := d.DialTimeout
	if to == 0 {
		to = 20 * time.Second
	}
	proto := d.Protocol
	if proto == "https" {
		proto = "tls"
	}
	cfg := client.Config{Addr: d.Addr, Protocol: proto, PinSHA256: d.Pin, Role: role, DialTimeout: to, PushBuffer: 4}
	switch proto {
	case "tls":
		if n := min(d.SourceAddrs, maxSourceAddrs); n > 1 {
			i := int(d.seq.Add(1) % uint64(n))
			// 127.1.0.0/16, skipping .0 and .255 in the last byte.
			cfg.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 1, byte(i/254), byte(1+i%254))}
		}
	case "quic":
		cfg.QUICTransport = d.quicTransport()
		if d.QUICKeepAlive > 0 || d.QUICIdleTimeout > 0 {
			ka := d.QUICKeepAlive
			if ka == 0 {
				ka = client.DefaultQUICKeepAlive
			}
			cfg.QUIC = &quic.Config{KeepAlivePeriod: ka, MaxIdleTimeout: d.QUICIdleTimeout}
		}
	}
	if d.Resume {
		cfg.TLS = &tls.Config{ClientSessionCache: d.sessionCache()}
	}
	return cfg
}

// sessionCache is the process's TLS ticket cache (Resume).
func (d *NetDialer) sessionCache() tls.ClientSessionCache {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	if d.sessions == nil {
		d.sessions = tls.NewLRUClientSessionCache(4096)
	}
	return d.sessions
}

// quicTransport returns one of the dialer's shared QUIC sockets, or nil
// (a socket of the connection's own) when they cannot be had.
func (d *NetDialer) quicTransport() *quic.Transport {
	n := d.QUICSockets
	if n <= 0 {
		n = 64
	}
	i := int(d.seq.Add(1) % uint64(n))
	d.qmu.Lock()
	defer d.qmu.Unlock()
	if d.closed {
		return nil
	}
	if d.qts == nil {
		d.qts = make([]*quic.Transport, n)
	}
	if d.qts[i] == nil {
		uc, err := net.ListenUDP("udp", &net.UDPAddr{})
		if err != nil {
			return nil
		}
		var pc net.PacketConn = uc
		if d.AddedRTT > 0 {
			pc = newDelayConn(uc, d.AddedRTT)
		}
		d.qts[i] = &quic.Transport{Conn: pc}
	}
	return d.qts[i]
}

// DelayDropped is how many datagrams the AddedRTT queues dropped (full
// or failed after the delay).
func (d *NetDialer) DelayDropped() int64 {
	d.qmu.Lock()
	defer d.qmu.Unlock()
	var n int64
	for _, t := range d.qts {
		if t == nil {
			continue
		}
		if dc, ok := t.Conn.(*delayConn); ok {
			n += dc.dropped.Load()
		}
	}
	return n
}

// Close closes the shared QUIC sockets (and every connection on them).
// Idempotent; dials after it use a socket of their own.
func (d *NetDialer) Close() error {
	d.qmu.Lock()
	qts := d.qts
	d.qts, d.closed = nil, true
	d.qmu.Unlock()
	for _, t := range qts {
		if t != nil {
			_ = t.Close()
			_ = t.Conn.Close() // a transport does not close a socket it was given
		}
	}
	return nil
}

var hostname, _ = os.Hostname()

// Enroll implements Dialer.
func (d *NetDialer) Enroll(ctx context.Context, token string, a AgentSpec) (Identity, AgentConn, error) {
	m := wire.Enroll{InstallerToken: token, Kind: wire.Kind(a.Kind), Platform: wire.Platform(a.Platform),
		Version: toWire(a.Version), Hostname: hostname}
	id := Identity{Kind: a.Kind, Platform: a.Platform}
	if d.Protocol == "https" {
		h, err := client.DialHTTP(ctx, d.config(wire.Kind(a.Kind)))
		if err != nil {
			return id, nil, wrapNet(err)
		}
		cred, err := h.Enroll(ctx, m)
		if err != nil {
			h.Close()
			return id, nil, wrapNet(err)
		}
		id.ID, id.Secret = engine.ClientID(cred.ID), cred.Secret
		return id, newHTTPAgent(h, id), nil
	}
	c := newNetConn(d, id)
	if err := c.dial(ctx); err != nil {
		return id, nil, err
	}
	cred, err := c.c.Enroll(ctx, m)
	if err != nil {
		c.Close()
		return id, nil, wrapNet(err)
	}
	c.id.ID, c.id.Secret = engine.ClientID(cred.ID), cred.Secret
	return c.id, c, nil
}

// Dial implements Dialer.
func (d *NetDialer) Dial(ctx context.Context, id Identity) (AgentConn, error) {
	if d.Protocol == "https" {
		h, err := client.DialHTTP(ctx, d.config(wire.Kind(id.Kind)))
		if err != nil {
			return nil, wrapNet(err)
		}
		return newHTTPAgent(h, id), nil
	}
	c := newNetConn(d, id)
	if err := c.dial(ctx); err != nil {
		return nil, err
	}
	if err := c.c.Auth(ctx, client.Credentials{ID: wire.ClientID(id.ID), Secret: id.Secret}); err != nil {
		c.Close()
		return nil, wrapNet(err)
	}
	return c, nil
}

// DialConsole implements Dialer.
func (d *NetDialer) DialConsole(ctx context.Context, token string) (ConsoleConn, error) {
	if d.Protocol == "https" {
		return nil, &codedError{code: "unsupported", msg: "consoles speak protocol v1 (tls or quic)"}
	}
	k := &netConsole{ready: make(chan engine.ClientID, 64)}
	cfg := d.config(wire.KindConsole)
	cfg.OnPush = func(m wire.Msg) {
		if r, ok := m.(*wire.JumpReady); ok {
			select {
			case k.ready <- engine.ClientID(r.ClientID):
			default: // the console drains it every jump; a full channel only loses a notice
			}
		}
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return nil, wrapNet(err)
	}
	if err := c.ConsoleAuth(ctx, token); err != nil {
		c.Close()
		return nil, wrapNet(err)
	}
	k.c = c
	return k, nil
}

func toWire(v engine.Version) wire.Version {
	return wire.Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch, Revision: v.Revision}
}

func fromWire(v wire.Version) engine.Version {
	return engine.Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch, Revision: v.Revision}
}

// wrapNet gives a client-library error its stable code (and retry-after)
// for the summary and the agents' backoff.
func wrapNet(err error) error {
	if err == nil {
		return nil
	}
	ra := client.RetryAfter(err)
	var (
		we *wire.Error
		de *client.DownloadError
		he *client.HTTPError
		rl *client.RetryLaterError
		by *client.ByeError
		ne net.Error
	)
	code := "other"
	switch {
	case errors.As(err, &we):
		code = we.Code.String()
	case errors.As(err, &de):
		code = de.Code.String()
	case errors.As(err, &he):
		code = he.Code
		if code == "" {
			code = fmt.Sprintf("http_%d", he.Status)
		}
		ra = max(ra, he.RetryAfter)
	case errors.As(err, &rl):
		code = "retry_later"
	case errors.As(err, &by):
		code = "bye"
	case errors.Is(err, context.DeadlineExceeded):
		code = "timeout"
	case errors.Is(err, context.Canceled):
		code = "canceled"
	case errors.Is(err, net.ErrClosed):
		code = "closed"
	case errors.Is(err, syscall.ECONNREFUSED):
		code = "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		code = "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		code = "eof"
	case errors.As(err, &ne) && ne.Timeout():
		code = "net_timeout"
	case errors.As(err, &ne):
		code = "net"
	}
	return &codedError{code: code, msg: err.Error(), retry: ra}
}

// netConn is an agent's protocol v1 connection.
type netConn struct {
	d      *NetDialer
	id     Identity
	c      *client.Conn
	offers chan Offer
	retry  atomic.Int64 // from a RetryLater or Bye push
}

func newNetConn(d *NetDialer, id Identity) *netConn {
	return &netConn{d: d, id: id, offers: make(chan Offer, 2)}
}

func (c *netConn) dial(ctx context.Context) error {
	cfg := c.d.config(wire.Kind(c.id.Kind))
	// Pushes are handled on the library's reader goroutine, without
	// blocking: an offer goes to a small channel (the broker sends one per
	// dispatch), a retry-after is remembered for the reconnect.
	cfg.OnPush = func(m wire.Msg) {
		switch m := m.(type) {
		case *wire.UpgradeOffer:
			o := Offer{Release: m.ReleaseID, Target: fromWire(m.Target), Size: int64(m.PackageSize),
				Lease: time.Duration(m.LeaseMs) * time.Millisecond, Opaque: m}
			select {
			case c.offers <- o:
			default:
			}
		case *wire.RetryLater:
			c.retry.Store(int64(time.Duration(m.RetryAfterMs) * time.Millisecond))
		case *wire.Bye:
			c.retry.Store(int64(time.Duration(m.RetryAfterMs) * time.Millisecond))
		}
	}
	conn, err := client.Dial(ctx, cfg)
	if err != nil {
		return wrapNet(err)
	}
	c.c = conn
	return nil
}

func (c *netConn) CheckIn(ctx context.Context, v engine.Version, flags uint8) (Answer, error) {
	a, err := c.c.CheckIn(ctx, wire.CheckIn{Kind: wire.Kind(c.id.Kind), Platform: wire.Platform(c.id.Platform),
		Version: toWire(v), Flags: flags})
	if err != nil {
		return Answer{}, wrapNet(err)
	}
	return Answer{State: engine.State(a.State), Target: fromWire(a.Target), Position: int(a.QueuePosition),
		Lane: engine.Lane(a.Lane), RetryAfter: time.Duration(a.RetryAfterMs) * time.Millisecond}, nil
}

func (c *netConn) Heartbeat(ctx context.Context) error { return wrapNet(c.c.Heartbeat(ctx)) }
func (c *netConn) Offers() <-chan Offer                { return c.offers }
func (c *netConn) Closed() <-chan struct{}             { return c.c.Closed() }

func (c *netConn) RetryAfter() time.Duration {
	return max(time.Duration(c.retry.Load()), client.RetryAfter(c.c.Err()))
}

// Fetch downloads into memory and verifies signature, size and hash (the
// library does, against the release key).
func (c *netConn) Fetch(ctx context.Context, o Offer) error {
	offer, ok := o.Opaque.(*wire.UpgradeOffer)
	if !ok {
		return &codedError{code: "bad_request", msg: "offer not from this connection"}
	}
	f := newMemFile(int(offer.PackageSize))
	defer f.recycle()
	return wrapNet(c.c.Download(ctx, offer, c.d.ReleaseKey, f, client.DownloadOptions{}))
}

func (c *netConn) Done(context.Context) error { return wrapNet(c.c.Done()) }

func (c *netConn) Fail(_ context.Context, code uint16, msg string) error {
	return wrapNet(c.c.Fail(wire.ErrCode(code), msg))
}

// Close says goodbye and closes (a passive client leaving, or any agent
// restarting after an install).
func (c *netConn) Close() error {
	select {
	case <-c.c.Closed():
		return nil
	default:
	}
	_ = c.c.Bye()
	return nil
}

// memFile is a download target in memory.
type memFile struct {
	mu sync.Mutex
	b  []byte
}

// memFiles recycles download targets. Every agent of a rollout fetches a
// package of the same size; a fresh buffer per download and VerifyFile's
// copy buffer were a sixth of a load process's allocations in a QUIC
// rollout (bench/RESULTS.md, fourteenth pass), and the simulated fleet's
// collections compete with the broker for the same cores.
var memFiles sync.Pool

// newMemFile returns a zeroed file of size bytes: a recycled buffer is
// cleared so that a chunk the download never wrote cannot pass
// verification with a previous download's bytes.
func newMemFile(size int) *memFile {
	if f, _ := memFiles.Get().(*memFile); f != nil && cap(f.b) >= size {
		f.b = f.b[:size]
		clear(f.b)
		return f
	}
	return &memFile{b: make([]byte, size)}
}

// recycle gives f back once nothing reads or writes it any more
// (Download returns only after its request goroutines have finished).
func (f *memFile) recycle() { memFiles.Put(f) }

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(f.b)) {
		return 0, fmt.Errorf("write at %d+%d outside %d bytes", off, len(p), len(f.b))
	}
	return copy(f.b[off:], p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off >= int64(len(f.b)) {
		return 0, fmt.Errorf("read at %d outside %d bytes", off, len(f.b))
	}
	n := copy(p, f.b[off:])
	if n < len(p) {
		return n, fmt.Errorf("short read")
	}
	return n, nil
}

// httpAgent checks in over the HTTPS + JSON endpoint (one keep-alive
// connection per agent). It serves the steady comparison; it has no pushes.
type httpAgent struct {
	h      *client.HTTPConn
	id     Identity
	cred   client.Credentials
	closed chan struct{}
	once   sync.Once
}

func newHTTPAgent(h *client.HTTPConn, id Identity) *httpAgent {
	return &httpAgent{h: h, id: id, cred: client.Credentials{ID: wire.ClientID(id.ID), Secret: id.Secret},
		closed: make(chan struct{})}
}

func (a *httpAgent) CheckIn(ctx context.Context, v engine.Version, flags uint8) (Answer, error) {
	ans, err := a.h.CheckIn(ctx, a.cred, wire.CheckIn{Kind: wire.Kind(a.id.Kind), Platform: wire.Platform(a.id.Platform),
		Version: toWire(v), Flags: flags})
	if err != nil {
		return Answer{}, wrapNet(err)
	}
	out := Answer{Position: ans.QueuePosition, RetryAfter: time.Duration(ans.RetryAfterMs) * time.Millisecond}
	out.State, _ = engine.ParseState(ans.State)
	out.Target, _ = engine.ParseVersion(ans.Target)
	return out, nil
}

func (a *httpAgent) Heartbeat(context.Context) error { return nil }
func (a *httpAgent) Offers() <-chan Offer            { return nil }
func (a *httpAgent) Fetch(context.Context, Offer) error {
	return &codedError{code: "unsupported", msg: "https agents do not upgrade in jumpload"}
}
func (a *httpAgent) Done(context.Context) error                 { return nil }
func (a *httpAgent) Fail(context.Context, uint16, string) error { return nil }
func (a *httpAgent) Closed() <-chan struct{}                    { return a.closed }
func (a *httpAgent) RetryAfter() time.Duration                  { return 0 }
func (a *httpAgent) Close() error {
	a.once.Do(func() { close(a.closed) })
	return a.h.Close()
}

// netConsole is an access console's protocol v1 connection.
type netConsole struct {
	c     *client.Conn
	ready chan engine.ClientID
}

func (k *netConsole) Jump(ctx context.Context, id engine.ClientID) (engine.JumpResult, error) {
	a, err := k.c.Jump(ctx, wire.ClientID(id))
	if err != nil {
		return 0, wrapNet(err)
	}
	return engine.JumpResult(a.Result), nil
}

func (k *netConsole) Ready() <-chan engine.ClientID { return k.ready }
func (k *netConsole) Close() error                  { return k.c.Close() }
