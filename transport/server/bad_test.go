package server_test

import (
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// raw is a hand-driven protocol connection for bad-input tests.
type raw struct {
	t *testing.T
	c rawConn
	r *wire.Reader
}

// rawConn is a *tls.Conn, or a QUIC stream with its connection (rawQUIC).
type rawConn interface {
	io.ReadWriteCloser
	SetDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	ConnectionState() tls.ConnectionState
	CloseWrite() error
}

func (h *harness) raw() *raw {
	h.t.Helper()
	c, err := tls.Dial("tcp", h.addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{server.ALPNJumpfleet}})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &raw{t: h.t, c: c, r: wire.NewReader(c, wire.MaxFrameLimit)}
}

func (r *raw) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) send(m wire.Msg) {
	r.t.Helper()
	b, err := wire.AppendFrame(nil, m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *raw) hello(role wire.Kind) {
	r.t.Helper()
	r.send(&wire.Hello{Magic: wire.Magic, MinVersion: 1, MaxVersion: 1, Role: role, MaxFrame: 65536})
	if m, err := r.r.ReadMsg(); err != nil || m.Type() != wire.TypeHelloAck {
		r.t.Fatalf("HelloAck: %v %v", m, err)
	}
}

// expectError reads an Error with code, then the end of the connection.
func (r *raw) expectError(code wire.ErrCode) *wire.Error {
	r.t.Helper()
	m, err := r.r.ReadMsg()
	if err != nil {
		r.t.Fatalf("want Error %s, read failed: %v", code, err)
	}
	e, ok := m.(*wire.Error)
	if !ok || e.Code != code {
		r.t.Fatalf("want Error %s, got %#v", code, m)
	}
	if code.Closes() {
		r.expectClosed()
	}
	return e
}

// expectTimeoutAfter reads the timeout Error that ends r's session, fails
// if it came less than atLeast after start (0: any time), and logs when
// it came; what names the deadline.
func (r *raw) expectTimeoutAfter(start time.Time, atLeast time.Duration, what string) {
	r.t.Helper()
	e := r.expectError(wire.CodeTimeout)
	if d := time.Since(start); d < atLeast {
		r.t.Fatalf("%s: closed after %v, before %v", what, d, atLeast)
	}
	r.t.Logf("%s after %v: %s", what, time.Since(start), e.Msg)
}

func (r *raw) expectClosed() {
	r.t.Helper()
	if m, err := r.r.ReadMsg(); err == nil {
		r.t.Fatalf("connection still open: read %s", m.Type())
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatalf("connection not closed: %v", err)
	}
}

func TestBadFrames(t *testing.T) {
	h := newHarness(t, 11, nil)
	base := runtime.NumGoroutine()
	cred, _ := h.enroll("tls", wire.KindActive, v1, "")
	cases := []struct {
		name string
		code wire.ErrCode
		run  func(r *raw)
	}{
		{"garbage", wire.CodeBadFrame, func(r *raw) { r.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }},
		{"truncated", wire.CodeBadFrame, func(r *raw) {
			r.write([]byte{byte(wire.TypeHello), 0, 0, 11, 'J', 'F', 0, 1})
			_ = r.c.CloseWrite()
		}},
		{"oversized-length", wire.CodeFrameTooLarge, func(r *raw) { r.write([]byte{byte(wire.TypeHello), 0xff, 0xff, 0xff}) }},
		{"oversized-after-hello", wire.CodeFrameTooLarge, func(r *raw) {
			r.hello(wire.KindActive)
			r.write([]byte{byte(wire.TypeCheckIn), 0x10, 0, 0})
		}},
		{"unknown-version", wire.CodeUnsupportedVer, func(r *raw) {
			r.send(&wire.Hello{Magic: wire.Magic, MinVersion: 2, MaxVersion: 3, Role: wire.KindActive, MaxFrame: 65536})
		}},
		{"bad-magic", wire.CodeBadFrame, func(r *raw) {
			r.send(&wire.Hello{Magic: [2]byte{'X', 'Y'}, MinVersion: 1, MaxVersion: 1, Role: wire.KindActive, MaxFrame: 65536})
		}},
		{"not-hello-first", wire.CodeUnexpectedMessage, func(r *raw) { r.send(&wire.CheckIn{Kind: 1, Platform: 1, Version: v1}) }},
		{"before-auth", wire.CodeNotAuthenticated, func(r *raw) {
			r.hello(wire.KindActive)
			r.send(&wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1})
		}},
		{"server-message", wire.CodeUnexpectedMessage, func(r *raw) {
			r.hello(wire.KindActive)
			r.send(&wire.AuthOK{})
		}},
		{"client-jumps", wire.CodeForbidden, func(r *raw) {
			r.hello(wire.KindActive)
			r.auth(cred)
			r.send(&wire.JumpRequest{ClientID: cred.ID})
		}},
		{"kind-mismatch", wire.CodeKindMismatch, func(r *raw) {
			r.hello(wire.KindActive)
			r.auth(cred)
			r.send(&wire.CheckIn{Kind: wire.KindPassive, Platform: wire.PlatformLinuxX64, Version: v1})
		}},
		{"console-bad-token", wire.CodeAuthFailed, func(r *raw) {
			r.hello(wire.KindConsole)
			r.send(&wire.ConsoleAuth{ConsoleToken: "jfc_nope"})
		}},
		{"console-role-auth", wire.CodeBadKind, func(r *raw) {
			r.hello(wire.KindConsole)
			r.send(&wire.Auth{ClientID: cred.ID})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.raw()
			r.t = t
			tc.run(r)
			r.expectError(tc.code)
		})
	}
	// Non-closing errors leave the session usable.
	r := h.raw()
	r.hello(wire.KindActive)
	r.auth(cred)
	r.send(&wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wire.Version{}})
	r.expectError(wire.CodeBadVersion)
	r.send(&wire.Heartbeat{})
	if m, err := r.r.ReadMsg(); err != nil || m.Type() != wire.TypeHeartbeatAck {
		t.Fatalf("after a non-closing error: %v %v", m, err)
	}
	_ = r.c.Close()
	if n := h.counter("jumpfleet_transport_errors_total", map[string]string{"code": "bad_frame"}); n < 3 {
		t.Fatalf("errors_total{bad_frame} = %v", n)
	}
	checkGoroutines(t, base+2) // the enrolled client's connection
}

func (r *raw) auth(cred client.Credentials) {
	r.t.Helper()
	r.send(r.proof(cred, nil))
	if m, err := r.r.ReadMsg(); err != nil || m.Type() != wire.TypeAuthOK {
		r.t.Fatalf("AuthOK: %v %v", m, err)
	}
}

// proof builds an Auth for this connection, with a given nonce or a
// random one.
func (r *raw) proof(cred client.Credentials, nonce *[16]byte) *wire.Auth {
	cs := r.c.ConnectionState()
	b, err := cs.ExportKeyingMaterial(wire.ExporterLabel, nil, 32)
	if err != nil {
		r.t.Fatal(err)
	}
	var binding [32]byte
	copy(binding[:], b)
	a := &wire.Auth{ClientID: cred.ID, TimestampMs: uint64(time.Now().UnixMilli())}
	if nonce != nil {
		a.Nonce = *nonce
	} else {
		_, _ = rand.Read(a.Nonce[:])
	}
	a.MAC = wire.AuthMAC(&cred.Secret, cred.ID, a.TimestampMs, &a.Nonce, &binding)
	return a
}

func TestReplayedProof(t *testing.T) {
	h := newHarness(t, 12, nil)
	cred, _ := h.enroll("tls", wire.KindActive, v1, "")
	r1 := h.raw()
	r1.hello(wire.KindActive)
	p := r1.proof(cred, nil)
	r1.send(p)
	if m, err := r1.r.ReadMsg(); err != nil || m.Type() != wire.TypeAuthOK {
		t.Fatalf("first auth: %v %v", m, err)
	}
	// The captured proof, verbatim, on another connection: the exporter
	// binding differs, so the MAC does not match.
	r2 := h.raw()
	r2.hello(wire.KindActive)
	r2.send(p)
	r2.expectError(wire.CodeAuthFailed)
	// A proof re-made for the new connection but reusing the nonce (what
	// a broken binding would allow) is caught by the nonce window.
	r3 := h.raw()
	r3.hello(wire.KindActive)
	again := r3.proof(cred, &p.Nonce)
	r3.send(again)
	r3.expectError(wire.CodeReplayed)
	// An old timestamp is a clock_skew error that states the server time.
	r4 := h.raw()
	r4.hello(wire.KindActive)
	old := r4.proof(cred, nil)
	old.TimestampMs -= uint64(time.Hour.Milliseconds())
	r4.send(old)
	e := r4.expectError(wire.CodeClockSkew)
	t.Logf("clock skew: %s", e.Msg)
}

func TestOtherClientsID(t *testing.T) {
	h := newHarness(t, 13, nil)
	credA, _ := h.enroll("tls", wire.KindActive, v1, "")
	credB, _ := h.enroll("tls", wire.KindActive, v1, "")
	// A's secret claiming B's id.
	r := h.raw()
	r.hello(wire.KindActive)
	r.send(r.proof(client.Credentials{ID: credB.ID, Secret: credA.Secret}, nil))
	r.expectError(wire.CodeAuthFailed)
	// An id nobody enrolled.
	r = h.raw()
	r.hello(wire.KindActive)
	var ghost client.Credentials
	_, _ = rand.Read(ghost.ID[:])
	r.send(r.proof(ghost, nil))
	r.expectError(wire.CodeUnknownClient)
}

func TestOldInstaller(t *testing.T) {
	h := newHarness(t, 14, nil)
	tok, _, err := h.ids.CreateInstaller(time.Now(), "", engine.KindActive)
	if err != nil {
		t.Fatal(err)
	}
	h.publish("r2", v2, 100)
	c := h.dial("tls", wire.KindActive)
	_, err = c.Enroll(ctx(t), wire.Enroll{InstallerToken: tok, Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1})
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeInstallerInvalid {
		t.Fatalf("old installer: %v", err)
	}
	t.Logf("old installer: %v", we)
	c = h.dial("tls", wire.KindActive)
	_, err = c.Enroll(ctx(t), wire.Enroll{InstallerToken: "jfi_unknown", Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1})
	if !errors.As(err, &we) || we.Code != wire.CodeInstallerInvalid {
		t.Fatalf("unknown installer: %v", err)
	}
	// A fresh installer for the new site works.
	h.enroll("tls", wire.KindActive, v1, "r2")
}

// TestSlowloris: a TLS handshake that never finishes is cut by the
// handshake deadline, and leaves nothing behind.
func TestSlowloris(t *testing.T) {
	h := newHarness(t, 15, func(c *server.Config, _ *engine.Settings) { c.HandshakeTimeout = 300 * time.Millisecond })
	base := runtime.NumGoroutine()
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}) // a ClientHello that never ends
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("server kept a half-open handshake for %v", time.Since(start))
		}
		_ = c.Close()
	}
	checkGoroutines(t, base)
	if n := h.counter("jumpfleet_transport_handshakes_total", map[string]string{"result": "failed"}); n < 5 {
		t.Fatalf("failed handshakes = %v", n)
	}
}

// TestNeverReads: a client that sends but never reads is disconnected
// once the server's write deadline passes, and its goroutines end.
func TestNeverReads(t *testing.T) {
	h := newHarness(t, 16, func(c *server.Config, _ *engine.Settings) { c.WriteTimeout = 300 * time.Millisecond })
	cred, first := h.enroll("tls", wire.KindActive, v1, "")
	_ = first.Close()
	base := runtime.NumGoroutine()
	r := h.raw()
	r.hello(wire.KindActive)
	r.auth(cred)
	// Flood heartbeats, never read the acks.
	hb, _ := wire.AppendFrame(nil, &wire.Heartbeat{})
	batch := make([]byte, 0, len(hb)*4096)
	for range 4096 {
		batch = append(batch, hb...)
	}
	_ = r.c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	var werr error
	for i := 0; i < 10_000 && werr == nil; i++ {
		_, werr = r.c.Write(batch)
	}
	if werr == nil {
		t.Fatal("server kept reading a client that never reads")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.counter("jumpfleet_transport_drops_total", map[string]string{"reason": "slow_reader"}) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("slow reader not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = r.c.Close()
	checkGoroutines(t, base)
}

// TestOverload: over the connection cap the answer is an immediate
// overloaded error with a retry-after, never a hang.
func TestOverload(t *testing.T) {
	h := newHarness(t, 17, func(c *server.Config, _ *engine.Settings) { c.MaxConns = 1 })
	cred, _ := h.enroll("tls", wire.KindActive, v1, "") // holds the one slot
	r := h.raw()
	e := r.expectError(wire.CodeOverloaded)
	if e.RetryAfterMs == 0 {
		t.Fatal("overloaded without retry-after")
	}
	_, err := client.Dial(ctx(t), h.cfg("tls", wire.KindActive))
	if client.RetryAfter(err) == 0 {
		t.Fatalf("client sees no retry-after: %v", err)
	}
	_ = cred
	// HTTPS gets 503 + Retry-After.
	hc, err := client.DialHTTP(ctx(t), h.cfg("tls", wire.KindActive))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	_, err = hc.CheckIn(ctx(t), client.Credentials{}, checkIn(wire.KindActive, v1))
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 503 || he.RetryAfter == 0 {
		t.Fatalf("HTTPS over the cap: %v", err)
	}
}
