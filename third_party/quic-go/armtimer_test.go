package quic

// Tests of jumpfleet's patch (JUMPFLEET.md): armTimer never moves a
// pending runtime timer, and the connection's timer still fires no later
// than the deadline it was last given.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"testing"
	"testing/synctest"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
)

// tickWithin fails unless c.timer ticks within limit (a bound far above
// the deadlines used here, so the test does not depend on the machine's
// speed), and records the tick as the run loop does.
func tickWithin(t *testing.T, c *Conn, limit time.Duration) {
	t.Helper()
	select {
	case <-c.timer.C:
		c.timerDeadline = 0
	case <-time.After(limit):
		t.Fatalf("timer did not fire within %v", limit)
	}
}

func TestArmTimerEarlierGetsFreshTimer(t *testing.T) {
	c := &Conn{}
	c.timerDeadline = monotime.Now().Add(time.Hour)
	c.timer = time.NewTimer(time.Hour)
	old := c.timer

	d := monotime.Now().Add(time.Millisecond)
	c.armTimer(d)
	if c.timer == old {
		t.Fatal("an earlier deadline moved the pending timer instead of replacing it")
	}
	if old.Stop() {
		t.Fatal("the replaced timer was still pending")
	}
	if c.timerDeadline != d {
		t.Fatalf("timerDeadline = %v, want %v", c.timerDeadline, d)
	}
	tickWithin(t, c, 10*time.Second)
}

func TestArmTimerLaterKeepsPendingTimer(t *testing.T) {
	c := &Conn{}
	early := monotime.Now().Add(time.Millisecond)
	c.timerDeadline = early
	c.timer = time.NewTimer(time.Millisecond)
	old := c.timer

	// Later and equal deadlines leave the pending timer alone: it fires at
	// the earlier time and the run loop re-arms.
	c.armTimer(early.Add(time.Hour))
	c.armTimer(early)
	if c.timer != old || c.timerDeadline != early {
		t.Fatal("a later or equal deadline touched the pending timer")
	}
	tickWithin(t, c, 10*time.Second)

	// Once its tick was received the timer is in no heap: it is re-armed
	// in place for whatever deadline comes next.
	next := monotime.Now().Add(time.Millisecond)
	c.armTimer(next)
	if c.timer != old || c.timerDeadline != next {
		t.Fatal("a fired timer was not re-armed in place")
	}
	tickWithin(t, c, 10*time.Second)
}

func TestArmTimerPastDeadlineFiresAtOnce(t *testing.T) {
	c := &Conn{}
	c.timerDeadline = monotime.Now().Add(time.Minute)
	c.timer = time.NewTimer(time.Minute)
	c.armTimer(monotime.Now().Add(-time.Second))
	tickWithin(t, c, 10*time.Second)
}

// TestArmTimerExpiresAtTheEarliestDeadline runs in a synctest bubble, so
// the clock is exact: the timer ticks at the earliest deadline given since
// its last tick, not a nanosecond before or after, and a tick that came
// due before a later deadline was given is not lost.
func TestArmTimerExpiresAtTheEarliestDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &Conn{}
		c.timerDeadline = monotime.Now().Add(time.Hour)
		c.timer = time.NewTimer(time.Hour)
		ticked := func() bool {
			synctest.Wait()
			select {
			case <-c.timer.C:
				c.timerDeadline = 0
				return true
			default:
				return false
			}
		}
		expectTickAfter := func(d time.Duration) {
			t.Helper()
			time.Sleep(d - time.Nanosecond)
			if ticked() {
				t.Fatalf("ticked before %v", d)
			}
			time.Sleep(time.Nanosecond)
			if !ticked() {
				t.Fatalf("no tick at %v", d)
			}
		}

		// Deadlines in mixed order, as a run loop gives them: the pending
		// timer is always set for the earliest.
		now := monotime.Now()
		earliest := now.Add(time.Hour)
		for _, ms := range []time.Duration{50, 3, 40, 2, 30, 25, 7, 60} {
			d := now.Add(ms * time.Millisecond)
			earliest = min(earliest, d)
			c.armTimer(d)
			if c.timerDeadline != earliest {
				t.Fatalf("timer set for %v, earliest deadline given %v", c.timerDeadline, earliest)
			}
		}
		expectTickAfter(2 * time.Millisecond)

		// After its tick the timer is re-armed for the next deadline,
		// later ones included.
		c.armTimer(monotime.Now().Add(10 * time.Millisecond))
		expectTickAfter(10 * time.Millisecond)

		// A tick that came due but was not received yet survives a later
		// deadline: the run loop receives it and re-arms.
		c.armTimer(monotime.Now().Add(time.Millisecond))
		time.Sleep(5 * time.Millisecond)
		c.armTimer(monotime.Now().Add(time.Hour))
		if !ticked() {
			t.Fatal("a due tick was lost when a later deadline came")
		}
	})
}

// TestIdleTimeoutWithoutTraffic: a real connection on loopback with no
// traffic and no keep-alive is closed by its idle timeout, which only the
// connection's timer can bring about (if the run loop stopped clearing
// timerDeadline on a tick, the timer would never be re-armed).
func TestIdleTimeoutWithoutTraffic(t *testing.T) {
	tlsConf := selfSigned(t)
	ln, err := ListenAddr("127.0.0.1:0", tlsConf, &Config{MaxIdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	cconf := &tls.Config{InsecureSkipVerify: true, NextProtos: tlsConf.NextProtos}
	conn, err := DialAddr(ctx, ln.Addr().String(), cconf, &Config{MaxIdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	for i, c := range []*Conn{conn, <-accepted} {
		if c == nil {
			t.Fatal("the server did not accept the connection")
		}
		select {
		case <-c.Context().Done():
			var idle *IdleTimeoutError
			if err := context.Cause(c.Context()); !errors.As(err, &idle) {
				t.Fatalf("side %d (0: client) closed by %v, want an idle timeout", i, err)
			}
		case <-ctx.Done():
			t.Fatal("the idle connection was not closed by its idle timeout")
		}
	}
}

// selfSigned makes a TLS config with a fresh self-signed certificate.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
		NextProtos:   []string{"armtimer-test"},
	}
}
