package loadtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"jumpfleet/engine"
	"jumpfleet/packages"
	"jumpfleet/store"
)

// InProc is a broker in this process: a real engine.Node over a Pebble store
// with an in-memory stand-in for the transport (enrollment, push routing,
// signed packages). It implements Dialer, Control and Restarter, so every
// scenario runs against it without sockets, including inside a synctest
// bubble. It is the fake the package's tests use and what `jumpload
// --protocol inproc` measures (the engine alone, no network).
type InProc struct {
	db   *store.DB
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey

	next    atomic.Uint64 // client ids and console waiters are numbered
	dropped atomic.Int64  // pushes that found a full channel

	mu         sync.Mutex
	node       *engine.Node // nil while restarting
	closed     bool
	conns      map[engine.ClientID]*inprocConn // owned by mu
	consoles   map[uint64]*inprocConsole       // by waiter id; owned by mu
	installers map[string]installer            // token → what it enrolls
	secrets    map[engine.ClientID][32]byte
	packages   map[string]inprocPackage // by release id
	site       string                   // newest site release ("" before any)
}

type installer struct {
	kind engine.Kind
	site string
}

type inprocPackage struct {
	signed  packages.Signed
	content []byte
}

// ErrorCode is implemented by errors that carry a stable code.
type ErrorCode interface{ ErrorCode() string }

// codedError is a transport error with its wire-protocol code and the
// broker's retry-after, if it gave one.
type codedError struct {
	code, msg string
	retry     time.Duration
}

func (e *codedError) Error() string             { return e.code + ": " + e.msg }
func (e *codedError) ErrorCode() string         { return e.code }
func (e *codedError) RetryAfter() time.Duration { return e.retry }

// CodeOf names err by its stable code, for the summary's error counts.
func CodeOf(err error) string {
	var ce ErrorCode
	var ee *engine.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		return ce.ErrorCode()
	case errors.As(err, &ee):
		return string(ee.Code)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// NewInProc opens a store in dir and starts an engine on it.
func NewInProc(dir string) (*InProc, error) {
	db, err := store.Open(dir, store.Options{})
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		db.Close()
		return nil, err
	}
	b := &InProc{db: db, priv: priv, pub: pub, conns: map[engine.ClientID]*inprocConn{},
		consoles: map[uint64]*inprocConsole{}, installers: map[string]installer{},
		secrets: map[engine.ClientID][32]byte{}, packages: map[string]inprocPackage{}}
	if b.node, err = b.open(); err != nil {
		db.Close()
		return nil, err
	}
	return b, nil
}

func (b *InProc) open() (*engine.Node, error) {
	return engine.Open(engine.NodeConfig{DB: b.db, OnCommit: b.onCommit})
}

// Close stops the engine and closes the store. Safe to call twice.
func (b *InProc) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	node := b.node
	b.node = nil
	conns := b.takeConnsLocked()
	b.mu.Unlock()
	for _, c := range conns {
		c.drop(0)
	}
	var err error
	if node != nil {
		err = node.Close()
	}
	return errors.Join(err, b.db.Close())
}

// Dropped counts pushes that found an agent's channel full (never expected:
// the engine dispatches a client at most once at a time).
func (b *InProc) Dropped() int64 { return b.dropped.Load() }

func (b *InProc) takeConnsLocked() []*inprocConn {
	out := make([]*inprocConn, 0, len(b.conns))
	for _, c := range b.conns {
		out = append(out, c)
	}
	clear(b.conns)
	for _, c := range b.consoles {
		c.closeOnce.Do(func() { close(c.ready) })
	}
	clear(b.consoles)
	return out
}

// onCommit routes a turn's pushes. It runs on the engine goroutine and
// only takes the map lock and makes non-blocking sends.
func (b *InProc) onCommit(_ uint64, out *engine.Output) {
	if len(out.Dispatches) == 0 && len(out.JumpReady) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range out.Dispatches {
		c := b.conns[d.Client]
		if c == nil {
			continue // gone since: the lease will expire and the engine retry
		}
		o := Offer{Release: d.Release, Target: d.Target, Lease: time.Until(d.Lease), Opaque: b.packages[d.Release]}
		o.Size = int64(len(b.packages[d.Release].content))
		select {
		case c.offers <- o:
		default:
			b.dropped.Add(1)
		}
	}
	for _, r := range out.JumpReady {
		for _, w := range r.Waiters {
			if c := b.consoles[w]; c != nil {
				select {
				case c.ready <- r.Client:
				default:
					b.dropped.Add(1)
				}
			}
		}
	}
}

func (b *InProc) nodeOrErr() (*engine.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.node == nil {
		return nil, &codedError{code: "shutting_down", msg: "broker restarting"}
	}
	return b.node, nil
}

// Restart drops every connection, closes the engine and recovers it from
// the store, as a broker process restart does.
func (b *InProc) Restart(ctx context.Context) error {
	b.mu.Lock()
	node := b.node
	b.node = nil
	conns := b.takeConnsLocked()
	b.mu.Unlock()
	if node == nil {
		return errors.New("loadtest: broker closed or already restarting")
	}
	for _, c := range conns {
		c.drop(0)
	}
	if err := node.Close(); err != nil {
		return err
	}
	n, err := b.open()
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		n.Close()
		return errors.New("loadtest: broker closed during restart")
	}
	b.node = n
	return nil
}

// Installer implements Control.
func (b *InProc) Installer(_ context.Context, kind engine.Kind) (string, error) {
	var t [16]byte
	rand.Read(t[:])
	tok := "jfi_" + hex.EncodeToString(t[:])
	b.mu.Lock()
	b.installers[tok] = installer{kind: kind, site: b.site}
	b.mu.Unlock()
	return tok, nil
}

// ConsoleToken implements Control; InProc accepts any console.
func (b *InProc) ConsoleToken(context.Context, string) (string, error) { return "jfc_inproc", nil }

// Configure implements Control.
func (b *InProc) Configure(ctx context.Context, maxConcurrent int, startsPerSec float64, lease time.Duration, paused bool) error {
	n, err := b.nodeOrErr()
	if err != nil {
		return err
	}
	_, err = n.UpdateSettings(ctx, func(s *engine.Settings) error {
		s.MaxConcurrent, s.Paused = maxConcurrent, paused
		s.StartsPerSec, s.StartBurst = startsPerSec, startBurst(startsPerSec, maxConcurrent)
		if lease > 0 {
			s.LeaseTime = lease
		}
		return nil
	})
	return err
}

// PublishSite implements Control: it makes a package of size bytes, signs
// its manifest and publishes the release with it.
func (b *InProc) PublishSite(ctx context.Context, id string, p engine.Platform, v engine.Version, size int) error {
	n, err := b.nodeOrErr()
	if err != nil {
		return err
	}
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i * 7)
	}
	sum := sha256.Sum256(content)
	m := packages.Manifest{Release: id, Platform: p.String(), Version: v.String(), Size: int64(size), SHA256: hex.EncodeToString(sum[:])}
	signed := packages.NewSigned(b.priv, m)
	b.mu.Lock()
	b.packages[id] = inprocPackage{signed: signed, content: content}
	b.mu.Unlock()
	_, err = n.PublishRelease(ctx, engine.Release{ID: id, Kind: engine.ReleaseSite,
		Targets: []engine.Target{{Platform: p, Version: v, Package: signed.JSON()}}})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.site = id
	b.mu.Unlock()
	return nil
}

// Status implements Control.
func (b *InProc) Status(ctx context.Context) (engine.Status, error) {
	n, err := b.nodeOrErr()
	if err != nil {
		return engine.Status{}, err
	}
	return n.Status(ctx)
}

// Process implements Control: the broker is this process, so its cost
// cannot be told apart from the load generator's.
func (b *InProc) Process(context.Context) (float64, float64, bool, error) { return 0, 0, false, nil }

// Enroll implements Dialer.
func (b *InProc) Enroll(ctx context.Context, token string, a AgentSpec) (Identity, AgentConn, error) {
	b.mu.Lock()
	in, ok := b.installers[token]
	site := b.site
	b.mu.Unlock()
	switch {
	case !ok:
		return Identity{}, nil, &codedError{code: "auth_failed", msg: "unknown installer token"}
	case in.site != site:
		return Identity{}, nil, &codedError{code: "installer_invalid", msg: "installer made for an older site release: regenerate it"}
	case in.kind != a.Kind:
		return Identity{}, nil, &codedError{code: "kind_mismatch", msg: "installer is for another kind"}
	}
	id := Identity{Kind: a.Kind, Platform: a.Platform}
	binary.BigEndian.PutUint64(id.ID[8:], b.next.Add(1))
	rand.Read(id.Secret[:])
	b.mu.Lock()
	b.secrets[id.ID] = id.Secret
	b.mu.Unlock()
	c, err := b.Dial(ctx, id)
	return id, c, err
}

// Dial implements Dialer.
func (b *InProc) Dial(_ context.Context, id Identity) (AgentConn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.node == nil {
		return nil, &codedError{code: "shutting_down", msg: "broker restarting"}
	}
	if s, ok := b.secrets[id.ID]; !ok || s != id.Secret {
		return nil, &codedError{code: "auth_failed", msg: "bad credentials"}
	}
	c := &inprocConn{b: b, node: b.node, id: id, offers: make(chan Offer, 1), closed: make(chan struct{})}
	if old := b.conns[id.ID]; old != nil {
		go old.drop(0) // a newer connection of the same client wins
	}
	b.conns[id.ID] = c
	return c, nil
}

// DialConsole implements Dialer.
func (b *InProc) DialConsole(_ context.Context, token string) (ConsoleConn, error) {
	if token == "" {
		return nil, &codedError{code: "auth_failed", msg: "no console token"}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.node == nil {
		return nil, &codedError{code: "shutting_down", msg: "broker restarting"}
	}
	c := &inprocConsole{b: b, node: b.node, waiter: b.next.Add(1), ready: make(chan engine.ClientID, 1024)}
	b.consoles[c.waiter] = c
	return c, nil
}

type inprocConn struct {
	b      *InProc
	node   *engine.Node // the engine this connection was made to
	id     Identity
	offers chan Offer

	closeOnce sync.Once
	closed    chan struct{}
	retry     atomic.Int64
}

// drop ends the connection from the broker's side.
func (c *inprocConn) drop(retryAfter time.Duration) {
	c.closeOnce.Do(func() {
		c.retry.Store(int64(retryAfter))
		close(c.closed)
	})
}

func (c *inprocConn) live() error {
	select {
	case <-c.closed:
		return &codedError{code: "closed", msg: "connection closed"}
	default:
		return nil
	}
}

func (c *inprocConn) CheckIn(ctx context.Context, v engine.Version, _ uint8) (Answer, error) {
	if err := c.live(); err != nil {
		return Answer{}, err
	}
	a, err := c.node.CheckIn(ctx, engine.CheckIn{ID: c.id.ID, Kind: c.id.Kind, Platform: c.id.Platform, Version: v})
	if err != nil {
		return Answer{}, err
	}
	if a.State == engine.StateUpgrading {
		// As the transport does: a client that checks in while holding a
		// slot (it reconnected) is offered its upgrade again on this
		// connection.
		c.b.mu.Lock()
		rel := c.b.site
		pkg := c.b.packages[rel]
		c.b.mu.Unlock()
		select {
		case c.offers <- Offer{Release: rel, Target: a.Target, Size: int64(len(pkg.content)), Opaque: pkg}:
		default:
		}
	}
	return Answer{State: a.State, Target: a.Target, Position: a.Position, Lane: a.Lane, RetryAfter: a.RetryAfter}, nil
}

func (c *inprocConn) Heartbeat(context.Context) error { return c.live() }
func (c *inprocConn) Offers() <-chan Offer            { return c.offers }
func (c *inprocConn) Closed() <-chan struct{}         { return c.closed }
func (c *inprocConn) RetryAfter() time.Duration       { return time.Duration(c.retry.Load()) }

// Fetch verifies the offer's signed manifest and the package bytes against
// it, then reports the bytes as progress (renewing the lease).
func (c *inprocConn) Fetch(ctx context.Context, o Offer) error {
	pkg, ok := o.Opaque.(inprocPackage)
	if !ok {
		return &codedError{code: "unknown_release", msg: "offer without a package"}
	}
	if err := verifyPackage(c.b.pub, pkg.signed, o, c.id.Platform, pkg.content); err != nil {
		return err
	}
	if err := c.live(); err != nil {
		return err
	}
	return c.node.Progress(ctx, c.id.ID, uint64(len(pkg.content)))
}

// verifyPackage checks what an agent must check before installing: the
// signature, that the manifest names what was offered, and size and hash.
func verifyPackage(pub ed25519.PublicKey, s packages.Signed, o Offer, p engine.Platform, content []byte) error {
	m, err := s.Verify(pub)
	if err != nil {
		return &codedError{code: "bad_signature", msg: err.Error()}
	}
	if m.Release != o.Release || m.Platform != p.String() || m.Version != o.Target.String() {
		return &codedError{code: "bad_signature", msg: fmt.Sprintf("manifest names %s/%s/%s, offer %s/%s/%s",
			m.Release, m.Platform, m.Version, o.Release, p, o.Target)}
	}
	if m.Size != int64(len(content)) {
		return &codedError{code: "size_mismatch", msg: fmt.Sprintf("package is %d bytes, manifest says %d", len(content), m.Size)}
	}
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != m.SHA256 {
		return &codedError{code: "hash_mismatch", msg: "package SHA-256 differs from the manifest"}
	}
	return nil
}

func (c *inprocConn) Done(context.Context) error { return c.live() }

func (c *inprocConn) Fail(ctx context.Context, _ uint16, msg string) error {
	if err := c.live(); err != nil {
		return err
	}
	return c.node.Fail(ctx, c.id.ID, msg)
}

// Close leaves: the client is offline from now on. The engine hears of it
// before the connection is unregistered, so that an offer dispatched in
// the meantime still reaches Offers (the agent looks there after Close).
func (c *inprocConn) Close() error {
	c.b.mu.Lock()
	mine := c.b.conns[c.id.ID] == c
	c.b.mu.Unlock()
	var err error
	if mine {
		err = c.node.Disconnect(context.Background(), c.id.ID)
		if errors.Is(err, engine.ErrClosed) {
			err = nil // the broker restarted meanwhile
		}
		c.b.mu.Lock()
		if c.b.conns[c.id.ID] == c {
			delete(c.b.conns, c.id.ID)
		}
		c.b.mu.Unlock()
	}
	c.drop(0)
	return err
}

type inprocConsole struct {
	b         *InProc
	node      *engine.Node
	waiter    uint64
	ready     chan engine.ClientID
	closeOnce sync.Once
}

func (c *inprocConsole) Jump(ctx context.Context, id engine.ClientID) (engine.JumpResult, error) {
	a, err := c.node.Jump(ctx, id, c.waiter)
	return a.Result, err
}

func (c *inprocConsole) Ready() <-chan engine.ClientID { return c.ready }

func (c *inprocConsole) Close() error {
	c.b.mu.Lock()
	if c.b.consoles[c.waiter] == c {
		delete(c.b.consoles, c.waiter)
		c.closeOnce.Do(func() { close(c.ready) })
	}
	c.b.mu.Unlock()
	return nil
}
