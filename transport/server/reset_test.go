package server_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"jumpfleet/engine"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// udpRelay forwards datagrams between one client and the current
// upstream; packets from any other upstream are dropped. Switching the
// upstream is a broker crash as the client sees it: the old process says
// nothing more, a new one answers on the same address.
type udpRelay struct {
	pc, out *net.UDPConn
	up      atomic.Pointer[net.UDPAddr]
	client  atomic.Pointer[net.UDPAddr]
	wg      sync.WaitGroup
}

func newUDPRelay(t *testing.T, up net.Addr) *udpRelay {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{pc: pc, out: out}
	r.up.Store(up.(*net.UDPAddr))
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.client.Store(from)
			_, _ = out.WriteToUDP(buf[:n], r.up.Load())
		}
	}()
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if c := r.client.Load(); c != nil && from.AddrPort() == r.up.Load().AddrPort() {
				_, _ = pc.WriteToUDP(buf[:n], c)
			}
		}
	}()
	t.Cleanup(func() { _ = pc.Close(); _ = out.Close(); r.wg.Wait() })
	return r
}

// TestQUICStatelessResetAfterCrash: a QUIC client of a broker that
// crashed learns it from the restarted broker's first answer (a stateless
// reset made with the same persisted key) instead of waiting for its idle
// timeout (90 s here), so a storm of QUIC clients comes back at once.
func TestQUICStatelessResetAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "quic-reset.key")
	key, err := server.LoadOrCreateResetKey(path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := server.LoadOrCreateResetKey(path)
	if err != nil || *again != *key {
		t.Fatalf("the key changed across loads (%v)", err)
	}
	withKey := func(c *server.Config, _ *engine.Settings) { c.StatelessResetKey = key }
	before := newHarness(t, 31, withKey)
	after := newHarness(t, 32, withKey) // the restarted process, same key
	_, udpBefore := before.srv.Addrs()
	_, udpAfter := after.srv.Addrs()
	relay := newUDPRelay(t, udpBefore)

	cfg := before.cfg("quic", wire.KindActive)
	cfg.Addr = relay.pc.LocalAddr().String()
	c, err := client.Dial(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	relay.up.Store(udpAfter.(*net.UDPAddr)) // the crash and the restart
	start := time.Now()
	// Any packet the client sends now reaches the new process, which
	// answers with a stateless reset.
	hctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	_ = c.Heartbeat(hctx)
	cancel()
	select {
	case <-c.Closed():
	case <-time.After(20 * time.Second):
		t.Fatal("no stateless reset: the client still waits for its idle timeout")
	}
	var sr *quic.StatelessResetError
	if !errors.As(c.Err(), &sr) {
		t.Fatalf("connection ended with %v, want a stateless reset", c.Err())
	}
	t.Logf("reset heard %v after the restart", time.Since(start))
}
