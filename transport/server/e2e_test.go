package server_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

var (
	v1 = wire.Version{Major: 1, Minor: 0, Patch: 0, Revision: 1}
	v2 = engine.Version{Major: 2, Minor: 0, Patch: 0, Revision: 7}
)

func checkIn(k wire.Kind, v wire.Version) wire.CheckIn {
	return wire.CheckIn{Kind: k, Platform: wire.PlatformLinuxX64, Version: v, Flags: wire.FlagStartup}
}

// TestEndToEnd: enroll, check in, publish a site release, queue, push,
// download with verification, done, come back current; a console's jump
// moves a client to the front and the console hears JumpReady.
func TestEndToEnd(t *testing.T) {
	for i, proto := range []string{"tls", "quic"} {
		t.Run(proto, func(t *testing.T) {
			h := newHarness(t, uint64(100+i), nil)
			credA, a := h.enroll(proto, wire.KindActive, v1, "")
			ans, err := a.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
			if err != nil || ans.State != wire.StateCurrent {
				t.Fatalf("first check-in: %+v %v", ans, err)
			}
			data := h.publish("r2", v2, 300_000)

			// A is online and outdated: it is queued and, holding the only
			// slot, pushed an offer.
			if _, err := a.CheckIn(ctx(t), checkIn(wire.KindActive, v1)); err != nil {
				t.Fatal(err)
			}
			offer := waitPush[*wire.UpgradeOffer](t, a)
			if offer.ReleaseID != "r2" || offer.PackageSize != uint64(len(data)) || offer.Target != wire.Version(v2) {
				t.Fatalf("offer %+v", offer)
			}

			// B and C queue behind A; a console jumps to C.
			credB, b := h.enroll(proto, wire.KindActive, v1, "r2")
			credC, c := h.enroll(proto, wire.KindActive, v1, "r2")
			for _, x := range []*client.Conn{b, c} {
				ans, err := x.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
				if err != nil || ans.State != wire.StatePending {
					t.Fatalf("queued check-in: %+v %v", ans, err)
				}
			}
			tok, err := h.ids.CreateConsoleToken("tech")
			if err != nil {
				t.Fatal(err)
			}
			con := h.dial(proto, wire.KindConsole)
			if err := con.ConsoleAuth(ctx(t), tok); err != nil {
				t.Fatal(err)
			}
			ja, err := con.Jump(ctx(t), credC.ID)
			if err != nil || ja.Result != wire.JumpUpgradePending || ja.Lane != wire.LaneJump || ja.QueuePosition != 1 {
				t.Fatalf("jump: %+v %v", ja, err)
			}

			// A downloads in two sessions (resume), verifies, reports Done.
			f := tempFile(t)
			half := int64(len(data) / 2)
			if _, err := f.WriteAt(data[:half], 0); err != nil {
				t.Fatal(err)
			}
			if err := a.Download(ctx(t), offer, h.pub, f, client.DownloadOptions{Have: half}); err != nil {
				t.Fatalf("download: %v", err)
			}
			got, _ := io.ReadAll(io.NewSectionReader(f, 0, int64(len(data))))
			if !bytes.Equal(got, data) {
				t.Fatal("downloaded bytes differ")
			}
			if err := a.Done(); err != nil {
				t.Fatal(err)
			}
			_ = a.Close()
			// Restarted on the new version: current, and the slot frees.
			a = h.login(proto, wire.KindActive, credA)
			ans, err = a.CheckIn(ctx(t), wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wire.Version(v2), Flags: wire.FlagPostUpgrade})
			if err != nil || ans.State != wire.StateCurrent {
				t.Fatalf("post-upgrade check-in: %+v %v", ans, err)
			}

			// C, not B, gets the slot next.
			offC := waitPush[*wire.UpgradeOffer](t, c)
			select {
			case m := <-b.Pushes():
				t.Fatalf("B was pushed %s before C finished", m.Type())
			default:
			}
			fc := tempFile(t)
			if err := c.Download(ctx(t), offC, h.pub, fc, client.DownloadOptions{}); err != nil {
				t.Fatal(err)
			}
			_ = c.Done()
			_ = c.Close()
			c = h.login(proto, wire.KindActive, credC)
			if ans, err := c.CheckIn(ctx(t), wire.CheckIn{Kind: wire.KindActive, Platform: wire.PlatformLinuxX64, Version: wire.Version(v2)}); err != nil || ans.State != wire.StateCurrent {
				t.Fatalf("C post-upgrade: %+v %v", ans, err)
			}
			jr := waitPush[*wire.JumpReady](t, con)
			if jr.ClientID != credC.ID || jr.Version != wire.Version(v2) {
				t.Fatalf("JumpReady %+v", jr)
			}
			if ja, err := con.Jump(ctx(t), credC.ID); err != nil || ja.Result != wire.JumpAllowed {
				t.Fatalf("jump after upgrade: %+v %v", ja, err)
			}
			// B is next.
			waitPush[*wire.UpgradeOffer](t, b)
			_ = credB
			if n := h.counter("jumpfleet_transport_checkins_total", map[string]string{"proto": proto}); n < 5 {
				t.Fatalf("checkins_total{proto=%s} = %v", proto, n)
			}
		})
	}
}

// passiveBehindBusySlot has an active client take the only slot (release
// r2 published) and a passive client check in behind it over TLS; it
// returns the passive connection and its answer.
func passiveBehindBusySlot(t *testing.T, h *harness) (*client.Conn, wire.CheckInAnswer, error) {
	t.Helper()
	_, a := h.enroll("tls", wire.KindActive, v1, "")
	if _, err := a.CheckIn(ctx(t), checkIn(wire.KindActive, v1)); err != nil {
		t.Fatal(err)
	}
	h.publish("r2", v2, 1000)
	waitPush[*wire.UpgradeOffer](t, a) // A holds the only slot
	_, p := h.enroll("tls", wire.KindPassive, v1, "r2")
	ans, err := p.CheckIn(ctx(t), checkIn(wire.KindPassive, v1))
	return p, ans, err
}

// TestNoLingerWhenDescriptorsAreShort: near the open-files limit a
// pending passive client on TCP is sent away at once with a retry-after
// instead of holding a descriptor through its linger.
func TestNoLingerWhenDescriptorsAreShort(t *testing.T) {
	h := newHarness(t, 7, func(c *server.Config, s *engine.Settings) {
		c.PassiveLinger = time.Minute
		c.RetryAfter = 2 * time.Second
	})
	h.srv.SetLingerFDs(1) // every connection is past the mark
	p, ans, err := passiveBehindBusySlot(t, h)
	if err != nil || ans.State != wire.StatePending {
		t.Fatalf("passive answer %+v %v", ans, err)
	}
	select { // long before the minute's linger
	case <-p.Closed():
	case <-time.After(10 * time.Second):
		t.Fatal("passive client kept through its linger")
	}
	var by *client.ByeError
	if !errors.As(p.Err(), &by) || by.RetryAfter < 2*time.Second || by.RetryAfter < time.Duration(ans.RetryAfterMs)*time.Millisecond {
		t.Fatalf("connection ended with %v, answer's retry-after %d ms: want a bye with at least the server's 2 s and the answer's", p.Err(), ans.RetryAfterMs)
	}
	if n := h.counter("jumpfleet_transport_drops_total", map[string]string{"reason": "linger_refused"}); n != 1 {
		t.Fatalf("drops_total{reason=linger_refused} = %v, want 1", n)
	}
}

// TestLingerOnlyForSlotsDue: short of descriptors, only an overdue client
// whose slot is due within half a linger (its Rejoin) may stay, and only
// while there is room; a client further back is sent away to come back at
// its Rejoin, leaving the room to the clients ahead of it. (Room itself:
// TestNoLingerWhenDescriptorsAreShort.)
func TestLingerOnlyForSlotsDue(t *testing.T) {
	h := newHarness(t, 7, func(c *server.Config, s *engine.Settings) { c.PassiveLinger = 20 * time.Second })
	overdue := func(rejoin time.Duration) engine.Answer {
		return engine.Answer{State: engine.StatePending, Lane: engine.LaneNormal, Position: 3, Rejoin: rejoin}
	}
	h.srv.SetLingerFDs(1 << 20) // room to spare
	cases := []struct {
		name            string
		a               engine.Answer
		stay, isOverdue bool
	}{
		{"overdue, due soon", overdue(5 * time.Second), true, true},
		{"overdue, due at half the linger", overdue(10 * time.Second), true, true},
		{"overdue, due later", overdue(11 * time.Second), false, true},
		{"not yet its turn", engine.Answer{State: engine.StatePending, Position: 3, RetryAfter: time.Minute}, false, false},
		{"current", engine.Answer{State: engine.StateCurrent}, false, false},
	}
	for _, c := range cases {
		if stay, od := h.srv.MayLinger(c.a); stay != c.stay || od != c.isOverdue {
			t.Errorf("%s: stay %v overdue %v, want %v %v", c.name, stay, od, c.stay, c.isOverdue)
		}
	}
	// Sent away, it comes back at its Rejoin, but no sooner than half a
	// linger: the room it found full frees over about a linger.
	for _, c := range []struct{ rejoin, want time.Duration }{
		{time.Second, 10 * time.Second}, {10 * time.Second, 10 * time.Second}, {time.Minute, time.Minute},
	} {
		if got := h.srv.RejoinAfter(overdue(c.rejoin)); got != c.want {
			t.Errorf("rejoin %v: come back after %v, want %v", c.rejoin, got, c.want)
		}
	}
}

// TestPassiveRetryAfter: a pending passive client is told when to come
// back, and the server says goodbye when its linger ends.
func TestPassiveRetryAfter(t *testing.T) {
	h := newHarness(t, 7, func(c *server.Config, s *engine.Settings) { c.PassiveLinger = 300 * time.Millisecond })
	p, ans, err := passiveBehindBusySlot(t, h)
	if err != nil || ans.State != wire.StatePending || ans.RetryAfterMs == 0 {
		t.Fatalf("passive answer %+v %v", ans, err)
	}
	by := waitPush[*wire.Bye](t, p)
	if by.RetryAfterMs == 0 {
		t.Fatalf("bye without retry-after")
	}
	select {
	case <-p.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("passive connection not closed after linger")
	}
}
