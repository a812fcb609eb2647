package loadtest

import (
	"net"
	"testing"
	"time"
)

func udpPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// Every datagram arrives, in order, and none before its delay is over
// (a lower bound only: how much later is up to the machine).
func TestDelayConnHoldsDatagramsBack(t *testing.T) {
	const d = 30 * time.Millisecond
	a, b := udpPair(t)
	c := newDelayConn(a, d)
	defer c.Close()
	to := b.LocalAddr().(*net.UDPAddr)
	sent := make([]time.Time, 6)
	for i := range sent {
		sent[i] = time.Now()
		var err error
		if i%2 == 0 {
			_, err = c.WriteTo([]byte{byte(i)}, to)
		} else {
			_, _, err = c.WriteMsgUDP([]byte{byte(i)}, nil, to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 16)
	for i := range sent {
		_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := b.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if n != 1 || buf[0] != byte(i) {
			t.Fatalf("datagram %d: got %v, want [%d] (order kept)", i, buf[:n], i)
		}
		if got := time.Since(sent[i]); got < d {
			t.Fatalf("datagram %d arrived after %v, before the delay of %v", i, got, d)
		}
	}
	if n := c.dropped.Load(); n != 0 {
		t.Fatalf("%d dropped", n)
	}
}

// The queue is bounded, Close drops what waits, stops the sender and is
// safe twice; writes after it are dropped, not sent.
func TestDelayConnBoundedAndClosed(t *testing.T) {
	a, b := udpPair(t)
	c := newDelayConn(a, time.Hour)
	to := b.LocalAddr().(*net.UDPAddr)
	for range maxDelayed + 10 {
		if _, err := c.WriteTo([]byte{1}, to); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.dropped.Load(); n != 10 {
		t.Fatalf("dropped %d beyond a queue of %d, want 10", n, maxDelayed)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := c.dropped.Load(); n != maxDelayed+10 {
		t.Fatalf("dropped %d after Close, want all %d", n, maxDelayed+10)
	}
	if _, err := c.WriteTo([]byte{2}, to); err != nil {
		t.Fatal(err)
	}
	if n := c.dropped.Load(); n != maxDelayed+11 {
		t.Fatalf("a write after Close: dropped %d, want %d", n, maxDelayed+11)
	}
	_ = b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := b.ReadFromUDP(make([]byte, 4)); err == nil {
		t.Fatalf("received %d bytes from a closed delayConn", n)
	}
}

// An empty datagram is a datagram: it neither stops the sender nor is
// lost, and what follows it still arrives.
func TestDelayConnEmptyDatagram(t *testing.T) {
	a, b := udpPair(t)
	c := newDelayConn(a, time.Millisecond)
	defer c.Close()
	to := b.LocalAddr().(*net.UDPAddr)
	if _, err := c.WriteTo(nil, to); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte{7}, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	for i, want := range []int{0, 1} {
		_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := b.ReadFromUDP(buf)
		if err != nil || n != want {
			t.Fatalf("datagram %d: %d bytes, %v; want %d bytes", i, n, err, want)
		}
	}
}

// The queue is bounded in bytes too (a GSO batch is ~20 KB).
func TestDelayConnByteBudget(t *testing.T) {
	a, b := udpPair(t)
	c := newDelayConn(a, time.Hour)
	defer c.Close()
	to := b.LocalAddr().(*net.UDPAddr)
	big := make([]byte, 20<<10)
	fit := maxDelayedBytes / len(big)
	for range fit + 3 {
		if _, err := c.WriteTo(big, to); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.dropped.Load(); n != 3 {
		t.Fatalf("dropped %d of %d datagrams of %d bytes with a budget of %d, want 3", n, fit+3, len(big), maxDelayedBytes)
	}
}
