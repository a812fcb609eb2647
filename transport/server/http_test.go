package server_test

import (
	"errors"
	"testing"

	"jumpfleet/transport/client"
	"jumpfleet/transport/wire"
)

// TestHTTPS: the JSON endpoint on the same port, same engine, same
// credentials; authentication holds per connection.
func TestHTTPS(t *testing.T) {
	h := newHarness(t, 18, nil)
	tok, _, err := h.ids.CreateInstaller(nowT(), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := client.DialHTTP(ctx(t), h.cfg("tls", wire.KindActive))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	cred, err := hc.Enroll(ctx(t), wire.Enroll{InstallerToken: tok, Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: v1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // first request proves, later ones ride on the connection
		a, err := hc.CheckIn(ctx(t), cred, checkIn(wire.KindActive, v1))
		if err != nil || a.State != "current" {
			t.Fatalf("check-in: %+v %v", a, err)
		}
	}
	// The same connection cannot speak for another client.
	other := cred
	other.ID[0] ^= 1
	_, err = hc.CheckIn(ctx(t), other, checkIn(wire.KindActive, v1))
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 403 || he.Code != "forbidden" {
		t.Fatalf("other id: %v", err)
	}
	// A wrong secret on a fresh connection is refused.
	bad := cred
	bad.Secret[0] ^= 1
	hc2, err := client.DialHTTP(ctx(t), h.cfg("tls", wire.KindActive))
	if err != nil {
		t.Fatal(err)
	}
	defer hc2.Close()
	if _, err := hc2.CheckIn(ctx(t), bad, checkIn(wire.KindActive, v1)); !errors.As(err, &he) || he.Code != "auth_failed" {
		t.Fatalf("bad secret: %v", err)
	}
	if n := h.counter("jumpfleet_transport_checkins_total", map[string]string{"proto": "https"}); n != 3 {
		t.Fatalf("https check-ins = %v", n)
	}
	// The binary protocol sees the same client.
	c := h.login("tls", wire.KindActive, cred)
	if a, err := c.CheckIn(ctx(t), checkIn(wire.KindActive, v1)); err != nil || a.State != wire.StateCurrent {
		t.Fatalf("binary check-in of an HTTPS-enrolled client: %+v %v", a, err)
	}
}
