package server_test

import (
	"errors"
	"net"
	"runtime"
	"testing"

	"github.com/quic-go/quic-go"

	"jumpfleet/transport/client"
	"jumpfleet/transport/wire"
)

// A client may send Hello, Auth and its first CheckIn in one write (the
// Auth MAC needs only the TLS exporter): client.DialAuth does, over TLS
// and QUIC, and the connection is usable afterwards.
func TestPipelinedConnect(t *testing.T) {
	h := newHarness(t, 21, nil)
	cred, _ := h.enroll("tls", wire.KindActive, v1, "")
	ci := wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1}
	for _, proto := range []string{"tls", "quic"} {
		c, ans, err := client.DialAuth(ctx(t), h.cfg(proto, wire.KindActive), cred, &ci)
		if err != nil {
			t.Fatalf("%s: DialAuth: %v", proto, err)
		}
		if ans.State != wire.StateCurrent {
			t.Fatalf("%s: first answer %+v, want current", proto, ans)
		}
		if c.HelloAck().MaxFrame == 0 {
			t.Fatalf("%s: no HelloAck kept", proto)
		}
		if _, err := c.CheckIn(ctx(t), ci); err != nil {
			t.Fatalf("%s: second check-in: %v", proto, err)
		}
		if err := c.Heartbeat(ctx(t)); err != nil {
			t.Fatalf("%s: heartbeat: %v", proto, err)
		}
		_ = c.Close()
		// Without a first CheckIn: Hello and Auth only.
		c, ans, err = client.DialAuth(ctx(t), h.cfg(proto, wire.KindActive), cred, nil)
		if err != nil || ans != (wire.CheckInAnswer{}) {
			t.Fatalf("%s: DialAuth without check-in: %+v %v", proto, ans, err)
		}
		_ = c.Close()
	}
}

// A pipelined connect with a wrong secret fails with auth_failed; the
// CheckIn behind the Auth is never served and nothing is left behind.
func TestPipelinedConnectBadProof(t *testing.T) {
	h := newHarness(t, 22, nil)
	cred, _ := h.enroll("tls", wire.KindActive, v1, "")
	base := runtime.NumGoroutine()
	cred.Secret[0] ^= 1
	ci := wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1}
	c, _, err := client.DialAuth(ctx(t), h.cfg("tls", wire.KindActive), cred, &ci)
	var we *wire.Error
	if c != nil || !errors.As(err, &we) || we.Code != wire.CodeAuthFailed {
		t.Fatalf("got %v, %v; want auth_failed", c, err)
	}
	checkGoroutines(t, base)
}

// The server answers pipelined requests with one write: Hello, Auth,
// CheckIn and Heartbeat sent in one TLS record come back as one record
// (read here by a single tls.Conn.Read).
func TestPipelinedAnswersCoalesce(t *testing.T) {
	h := newHarness(t, 23, nil)
	cred, _ := h.enroll("tls", wire.KindActive, v1, "")
	r := h.raw()
	var out []byte
	for _, m := range []wire.Msg{
		&wire.Hello{Magic: wire.Magic, MinVersion: 1, MaxVersion: 1, Role: wire.KindActive, MaxFrame: 65536},
		r.proof(cred, nil),
		&wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1},
		&wire.Heartbeat{},
	} {
		var err error
		if out, err = wire.AppendFrame(out, m); err != nil {
			t.Fatal(err)
		}
	}
	r.write(out)
	buf := make([]byte, 4096)
	n, err := r.c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []wire.MsgType
	for p := buf[:n]; len(p) > 0; {
		if len(p) < wire.HeaderLen {
			t.Fatalf("partial header in %x", buf[:n])
		}
		l := int(p[1])<<16 | int(p[2])<<8 | int(p[3])
		if len(p) < wire.HeaderLen+l {
			t.Fatalf("partial frame in %x", buf[:n])
		}
		got = append(got, wire.MsgType(p[0]))
		p = p[wire.HeaderLen+l:]
	}
	want := []wire.MsgType{wire.TypeHelloAck, wire.TypeAuthOK, wire.TypeCheckInAnswer, wire.TypeHeartbeatAck}
	if len(got) != len(want) {
		t.Fatalf("one read returned %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("one read returned %v, want %v", got, want)
		}
	}
}

// Many QUIC connections can share one client-side UDP socket
// (Config.QUICTransport): two clients over one quic.Transport.
func TestSharedQUICTransport(t *testing.T) {
	h := newHarness(t, 24, nil)
	credA, _ := h.enroll("tls", wire.KindActive, v1, "")
	credB, _ := h.enroll("tls", wire.KindActive, v1, "")
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	cfg := h.cfg("quic", wire.KindActive)
	cfg.QUICTransport = tr
	ci := wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1}
	for _, cred := range []client.Credentials{credA, credB} {
		c, ans, err := client.DialAuth(ctx(t), cfg, cred, &ci)
		if err != nil || ans.State != wire.StateCurrent {
			t.Fatalf("DialAuth over a shared transport: %+v %v", ans, err)
		}
		defer c.Close()
		if err := c.Heartbeat(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
}
