package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"jumpfleet/transport/wire"
)

// ALPN protocol names.
const (
	ALPNJumpfleet = "jumpfleet/1"
	ALPNHTTP2     = "h2"
	ALPNHTTP1     = "http/1.1"
)

// Config configures a Server. The zero value of every field means its
// default; Validate (called by New) fills defaults and checks ranges in
// this one place.
type Config struct {
	// Listen is the address for both TCP (TLS) and UDP (QUIC); default
	// ":8443". With port 0 the TCP port is chosen and UDP binds the same
	// number.
	Listen string
	// TLS carries the certificate (ECDSA P-256 recommended). Nil: a fresh
	// self-signed certificate for "localhost", fit for tests only.
	// MinVersion is forced to TLS 1.3 and NextProtos to ours.
	TLS *tls.Config
	// DisableQUIC serves TLS only.
	DisableQUIC bool
	// QUICSockets is how many UDP sockets share the QUIC port
	// (SO_REUSEPORT; the kernel spreads clients over them by address
	// hash, and each has its own quic-go read loop and receive buffer).
	// One socket's single read loop and its receive buffer (capped by
	// net.core.rmem_max) overflow when tens of thousands of clients
	// connect at once. Default 4; 1 to 64.
	QUICSockets int
	// NoPoller keeps a goroutine per idle TLS connection, blocked in a
	// shallow read (park.go), instead of parking idle sessions in the
	// poller (poller.go). For comparison and for systems without epoll.
	NoPoller bool
	// ParkAfter is how long an idle TLS session waits for its next frame
	// on its own goroutine before it parks in the poller (default 250 ms;
	// negative: at once). Waiting there costs a goroutine; each trip
	// through the poller costs a few µs of CPU. Busy connections stay on
	// their goroutine, idle ones (heartbeats every 30 s) cost none.
	ParkAfter time.Duration
	// StatelessResetKey lets the QUIC listener answer packets of
	// connections it does not know (those of a previous broker process,
	// after a crash) with a stateless reset, so their clients reconnect at
	// once instead of after their idle timeout. It must be the same across
	// restarts: derive it from a persisted secret (LoadOrCreateResetKey).
	// Nil: no resets.
	StatelessResetKey *quic.StatelessResetKey

	// AcceptRate and AcceptBurst form the token bucket on accepted
	// connections (TCP and QUIC together). Default 3,000/s per core (a
	// TLS reconnect with its check-in costs the broker ~300 µs of CPU, so
	// this is about what the cores can take; the handshake cap, the
	// deadlines and the connection caps are what stop overload), burst
	// 500. QUIC connections are paced before their handshake.
	AcceptRate  float64
	AcceptBurst int
	// MaxHandshakes caps TLS handshakes in flight (default 256).
	MaxHandshakes int
	// MaxConns caps open connections (default 1,000,000); MaxConnsPerIP
	// caps them per remote address (default 0: no per-IP cap, since load
	// tests and NAT gateways put thousands behind one address).
	MaxConns      int
	MaxConnsPerIP int

	// HandshakeTimeout bounds the TLS/QUIC handshake (default 10s).
	HandshakeTimeout time.Duration
	// FirstFrameTimeout bounds the wait for Hello and for the
	// authentication message after it (default 10s).
	FirstFrameTimeout time.Duration
	// Heartbeat is the interval told to persistent clients in HelloAck
	// (default 30s); IdleTimeout closes a session silent for that long
	// (default 3 × Heartbeat).
	Heartbeat   time.Duration
	IdleTimeout time.Duration
	// WriteTimeout bounds a blocked write; a client that does not read
	// for that long is disconnected (default 10s).
	WriteTimeout time.Duration
	// PassiveLinger is how long a passive client may stay after its answer
	// waiting for a push (default 20s).
	PassiveLinger time.Duration
	// MaxFrame is the payload limit offered in HelloAck (default 64 KiB).
	MaxFrame int
	// PushQueue bounds each session's queue of undelivered pushes
	// (default 8); overflowing it disconnects the session.
	PushQueue int
	// PushWorkers is the number of goroutines writing pushes (default 4).
	PushWorkers int
	// AuthSkew is the allowed Auth timestamp skew (default 5 min).
	AuthSkew time.Duration
	// NonceWindowMax caps remembered Auth nonces in total (default 4M)
	// and NonceWindowPerClient per client (default 64).
	NonceWindowMax       int
	NonceWindowPerClient int
	// RetryAfter is the base of every retry-after the server hands out
	// when overloaded or stopping (default 5s); full jitter up to 2× is
	// added so that clients do not come back together.
	RetryAfter time.Duration
	// BytesPerSec seeds the shared package-download bucket before the
	// engine's setting is read (default 100 MiB/s).
	BytesPerSec int64

	// Logger (default zap.NewNop()). Hot-path messages are rate limited.
	Logger *zap.Logger
	// Registerer receives the metrics (default: a private registry).
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate fills defaults and checks every field.
func (c *Config) Validate() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defi := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = ":8443"
	}
	if c.AcceptRate == 0 {
		c.AcceptRate = 3000 * float64(runtime.NumCPU())
	}
	defi(&c.AcceptBurst, 500)
	defi(&c.MaxHandshakes, 256)
	defi(&c.QUICSockets, 4)
	defi(&c.MaxConns, 1_000_000)
	def(&c.HandshakeTimeout, 10*time.Second)
	def(&c.ParkAfter, 250*time.Millisecond)
	def(&c.FirstFrameTimeout, 10*time.Second)
	def(&c.Heartbeat, 30*time.Second)
	def(&c.IdleTimeout, 3*c.Heartbeat)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PassiveLinger, 20*time.Second)
	defi(&c.MaxFrame, wire.DefaultMaxFrame)
	defi(&c.PushQueue, 8)
	defi(&c.PushWorkers, 4)
	def(&c.AuthSkew, 5*time.Minute)
	defi(&c.NonceWindowMax, 4<<20)
	defi(&c.NonceWindowPerClient, 64)
	def(&c.RetryAfter, 5*time.Second)
	if c.BytesPerSec == 0 {
		c.BytesPerSec = 100 << 20
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf("server config: "+f, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	if !(c.AcceptRate > 0) || c.AcceptBurst < 1 {
		bad("accept rate and burst must be positive")
	}
	if c.QUICSockets < 1 || c.QUICSockets > 64 {
		bad("quic sockets %d: want 1 to 64", c.QUICSockets)
	}
	if c.MaxHandshakes < 1 || c.MaxConns < 1 || c.MaxConnsPerIP < 0 {
		bad("max handshakes and max conns must be positive, max conns per IP >= 0")
	}
	for name, d := range map[string]time.Duration{"handshake": c.HandshakeTimeout, "first frame": c.FirstFrameTimeout,
		"heartbeat": c.Heartbeat, "idle": c.IdleTimeout, "write": c.WriteTimeout, "passive linger": c.PassiveLinger,
		"auth skew": c.AuthSkew, "retry after": c.RetryAfter} {
		if d < time.Millisecond {
			bad("%s timeout must be at least 1ms, got %v", name, d)
		}
	}
	if c.IdleTimeout < c.Heartbeat {
		bad("idle timeout %v is below the heartbeat %v", c.IdleTimeout, c.Heartbeat)
	}
	if c.MaxFrame < wire.PreHelloMaxFrame || c.MaxFrame > wire.MaxFrameLimit {
		bad("max frame %d outside %d..%d", c.MaxFrame, wire.PreHelloMaxFrame, wire.MaxFrameLimit)
	}
	if c.PushQueue < 1 || c.PushWorkers < 1 {
		bad("push queue and push workers must be positive")
	}
	if c.NonceWindowMax < 1 || c.NonceWindowPerClient < 1 {
		bad("nonce window caps must be positive")
	}
	if c.BytesPerSec < 1024 {
		bad("bytes per second must be at least 1024")
	}
	if c.TLS != nil && len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		bad("TLS config has no certificate")
	}
	return errors.Join(errs...)
}

// GenerateCert makes a self-signed ECDSA P-256 certificate for hosts
// (names or IPs), valid for a year. For tests and first runs; production
// uses a real certificate.
func GenerateCert(hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "jumpfleet broker"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
