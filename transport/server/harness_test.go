package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"jumpfleet/engine"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/store"
	"jumpfleet/transport/client"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// harness is a broker on loopback: store, engine node, identity and
// package stores, and the transport server.
type harness struct {
	t    *testing.T
	db   *store.DB
	node *engine.Node
	ids  *identity.Store
	pkgs *packages.Store
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	srv  *server.Server
	reg  *prometheus.Registry
	addr string
	pin  []byte
	rng  *rand.Rand
}

func newHarness(t *testing.T, seed uint64, mutate func(*server.Config, *engine.Settings)) *harness {
	t.Helper()
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{CacheSize: 1 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	st := engine.DefaultSettings()
	st.MaxConcurrent = 1
	st.StartsPerSec = 1000
	st.StartBurst = 100
	st.LeaseTime = time.Minute
	cert, err := server.GenerateCert("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pin := sha256.Sum256(cert.Certificate[0])
	reg := prometheus.NewRegistry()
	cfg := server.Config{Listen: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Registerer: reg,
		HandshakeTimeout: 2 * time.Second, FirstFrameTimeout: 2 * time.Second}
	if mutate != nil {
		mutate(&cfg, &st)
	}
	var srvp atomic.Pointer[server.Server]
	node, err := engine.Open(engine.NodeConfig{DB: db, Engine: engine.Config{Settings: st, Seed: seed},
		OnCommit: func(turn uint64, out *engine.Output) {
			if s := srvp.Load(); s != nil {
				s.OnCommit(turn, out)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := packages.OpenStore(filepath.Join(dir, "pkgs"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := packages.LoadOrCreateKey(filepath.Join(dir, "release.key"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, db: db, node: node, ids: identity.New(db), pkgs: pkgs, priv: priv,
		pub: priv.Public().(ed25519.PublicKey), reg: reg, pin: pin[:], rng: rand.New(rand.NewPCG(seed, seed))}
	h.srv, err = server.New(cfg, node, h.ids, pkgs, h.pub)
	if err != nil {
		t.Fatal(err)
	}
	srvp.Store(h.srv)
	if err := h.srv.Start(); err != nil {
		t.Fatal(err)
	}
	tcp, _ := h.srv.Addrs()
	h.addr = tcp.String()
	t.Cleanup(func() {
		_ = h.srv.Close()
		_ = h.srv.Close() // idempotent
		_ = node.Close()
		_ = db.Close()
	})
	return h
}

func (h *harness) cfg(proto string, role wire.Kind) client.Config {
	return client.Config{Addr: h.addr, Protocol: proto, PinSHA256: h.pin, Role: role, DialTimeout: 5 * time.Second}
}

func (h *harness) dial(proto string, role wire.Kind) *client.Conn {
	h.t.Helper()
	c, err := client.Dial(ctx(h.t), h.cfg(proto, role))
	if err != nil {
		h.t.Fatalf("dial %s: %v", proto, err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	return c
}

// enroll makes a new client of kind k running v and returns its
// credentials and the (authenticated) connection.
func (h *harness) enroll(proto string, k wire.Kind, v wire.Version, tag string) (client.Credentials, *client.Conn) {
	h.t.Helper()
	tok, _, err := h.ids.CreateInstaller(time.Now(), tag, engine.Kind(k))
	if err != nil {
		h.t.Fatal(err)
	}
	c := h.dial(proto, k)
	cred, err := c.Enroll(ctx(h.t), wire.Enroll{InstallerToken: tok, Kind: k, Platform: wire.PlatformLinuxX64, Version: v, Hostname: "host"})
	if err != nil {
		h.t.Fatalf("enroll: %v", err)
	}
	return cred, c
}

func (h *harness) login(proto string, k wire.Kind, cred client.Credentials) *client.Conn {
	h.t.Helper()
	c := h.dial(proto, k)
	if err := c.Auth(ctx(h.t), cred); err != nil {
		h.t.Fatalf("auth: %v", err)
	}
	return c
}

// publish stores a random package for linux-x64 and publishes a site
// release targeting v.
func (h *harness) publish(id string, v engine.Version, size int) []byte {
	h.t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(h.rng.Uint32())
	}
	sum := sha256.Sum256(data)
	m := packages.Manifest{Release: id, Platform: "linux-x64", Version: v.String(), Size: int64(size), SHA256: hex.EncodeToString(sum[:])}
	if err := h.pkgs.Put(m, bytes.NewReader(data)); err != nil {
		h.t.Fatal(err)
	}
	rel := engine.Release{ID: id, Kind: engine.ReleaseSite, Targets: []engine.Target{{
		Platform: engine.PlatformLinuxX64, Version: v, Package: packages.NewSigned(h.priv, m).JSON()}}}
	if _, err := h.node.PublishRelease(ctx(h.t), rel); err != nil {
		h.t.Fatal(err)
	}
	return data
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return c
}

// waitPush returns the next push of type T, failing after a deadline.
func waitPush[T wire.Msg](t *testing.T, c *client.Conn) T {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-c.Pushes():
			if v, ok := m.(T); ok {
				return v
			}
			t.Logf("skipping push %s", m.Type())
		case <-c.Closed():
			var zero T
			t.Fatalf("connection ended waiting for %T: %v", zero, c.Err())
		case <-deadline:
			var zero T
			t.Fatalf("no %T within 10s", zero)
		}
	}
}

func (h *harness) counter(name string, labels map[string]string) float64 {
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			total += value(m)
		}
	}
	return total
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return 0
}

// checkGoroutines fails if the goroutine count does not come back to at
// most base within a few seconds (a leak check without a dependency).
func checkGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want <= %d:\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tempFile(t *testing.T) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "pkg-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func nowT() time.Time { return time.Now() }
