// Package broker assembles jumpfleet into one server process: the Pebble
// store, the engine node, the client transport (TLS and QUIC), the admin
// API over HTTPS, events on NATS (an embedded server unless an external one
// is configured), the self-signed certificate, the admin token and the
// release-signing key created on first start.
//
// Open starts everything in dependency order; Shutdown stops it in reverse
// (stop accepting, send clients away with a jittered retry-after, let the
// engine commit its last turn, drain events, close the store). Close is the
// same without waiting and is safe to call more than once.
package broker

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/events"
	"jumpfleet/identity"
	"jumpfleet/packages"
	"jumpfleet/store"
	"jumpfleet/transport/server"
)

// Broker is a running jumpfleet server.
type Broker struct {
	cfg Config
	log *zap.Logger

	db         *store.DB
	node       *engine.Node
	ids        *identity.Store
	pkgs       *packages.Store
	releaseKey ed25519.PrivateKey
	cert       tls.Certificate
	fp         string

	ns   *natsserver.Server // nil with an external NATS
	nc   *nats.Conn
	pub  *events.Publisher
	ring *events.Ring

	srv      *server.Server // client transport; nil until started
	onCommit atomic.Pointer[pushHook]

	reg      *prometheus.Registry
	adminLn  net.Listener
	adminSrv *http.Server
	adminURL string
	token    string // non-empty only when made by this Open

	ready    atomic.Bool
	stopping atomic.Bool

	closeOnce sync.Once
	closeErr  error
	served    chan struct{} // closed when the admin server's Serve returned
}

// Open starts a broker. On error everything already started is stopped.
func Open(cfg Config) (b *Broker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	b = &Broker{cfg: cfg, served: make(chan struct{})}
	if b.log, err = buildLogger(&cfg); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.closeNow()
			b = nil
		}
	}()
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return b, fmt.Errorf("broker: data dir: %w", err)
	}
	var created bool
	if b.cert, created, err = loadOrCreateCert(filepath.Join(cfg.Data, tlsDir)); err != nil {
		return b, err
	}
	b.fp = adminapi.Fingerprint(b.cert.Certificate[0])
	if created {
		b.log.Info("created a self-signed certificate", zap.String("sha256", b.fp))
	}
	if b.releaseKey, err = packages.LoadOrCreateKey(filepath.Join(cfg.Data, ReleaseKeyFile)); err != nil {
		return b, err
	}
	if b.db, err = store.Open(filepath.Join(cfg.Data, dbDir), store.Options{Log: b.log.Named("store")}); err != nil {
		return b, err
	}
	hash, token, err := adminToken(b.db, cfg.ResetAdminToken)
	if err != nil {
		return b, fmt.Errorf("broker: admin token: %w", err)
	}
	b.token = token
	if b.pkgs, err = packages.OpenStore(filepath.Join(cfg.Data, packagesDir)); err != nil {
		return b, err
	}
	b.ids = identity.New(b.db)

	if err := b.startNATS(); err != nil {
		return b, err
	}
	b.ring = events.NewRing(cfg.EventRing)
	if b.pub, err = events.NewPublisher(events.PublisherConfig{Conn: b.nc, Prefix: cfg.NATSSubjectPrefix,
		QueueLen: cfg.EventQueue, Logger: b.log.Named("events")}); err != nil {
		return b, err
	}

	b.node, err = engine.Open(engine.NodeConfig{DB: b.db, Engine: engine.Config{Settings: cfg.Settings.Engine()},
		OnCommit: b.commitHook})
	if err != nil {
		return b, fmt.Errorf("broker: engine: %w", err)
	}

	b.reg = prometheus.NewRegistry()
	b.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(), b.pub)
	b.reg.MustRegister(b.db.Collectors()...)

	if err := b.startTransport(); err != nil {
		return b, err
	}
	if err := b.startAdmin(hash); err != nil {
		return b, err
	}
	if err := b.writeCtlFile(); err != nil {
		return b, err
	}
	b.ready.Store(true)
	b.log.Info("jumpbroker ready", zap.String("admin", b.adminURL), zap.Strings("clients", addrStrings(b.ClientAddrs())),
		zap.String("nats", b.NATSURL()), zap.String("cert_sha256", b.fp), zap.String("data", cfg.Data))
	if token != "" {
		fmt.Fprintf(cfg.Out, "\njumpbroker: new admin token (shown once; also in %s, mode 0600):\n\n    %s\n\n"+
			"certificate SHA-256: %s\nadmin API: %s\n\n", filepath.Join(cfg.Data, CtlFileName), token, b.fp, b.adminURL)
	}
	return b, nil
}

// commitHook is the engine's OnCommit: on the engine goroutine, after each
// durable turn. Everything it calls queues and returns.
func (b *Broker) commitHook(turn uint64, out *engine.Output) {
	if len(out.Events) > 0 {
		b.ring.Add(turn, out.Events)
		b.pub.Enqueue(turn, out.Events)
	}
	if f := b.onCommit.Load(); f != nil {
		(*f)(turn, out)
	}
}

func (b *Broker) startNATS() error {
	opts := []nats.Option{nats.Name("jumpbroker"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true), nats.ReconnectBufSize(8 << 20)}
	url := b.cfg.NATSURL
	if url == "" {
		ns, err := events.StartEmbedded(b.cfg.NATSListen)
		if err != nil {
			// The default port may be taken by another NATS on this
			// machine: any port will do for an embedded bus; say which.
			b.log.Warn("embedded NATS could not listen on its address; using a free port", zap.String("addr", b.cfg.NATSListen), zap.Error(err))
			if ns, err = events.StartEmbedded(fallbackAddr(b.cfg.NATSListen)); err != nil {
				return err
			}
		}
		b.ns = ns
		url = ns.ClientURL()
		opts = append(opts, nats.InProcessServer(ns))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("broker: nats %s: %w", url, err)
	}
	b.nc = nc
	return nil
}

func (b *Broker) startAdmin(hash [32]byte) error {
	api, err := adminapi.New(adminapi.Config{
		Node: b.node, TokenHash: hash, Identity: b.ids, Packages: b.pkgs, ReleaseKey: b.releaseKey.Public().(ed25519.PublicKey),
		Ring: b.ring, Registry: b.reg, Ready: b.readyErr, Web: b.cfg.Web, Logger: b.log.Named("admin"),
		MaxReleaseBody: b.cfg.ReleaseBodyLimit,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", b.cfg.Admin)
	if err != nil {
		return fmt.Errorf("broker: admin listener: %w", err)
	}
	b.adminLn = ln
	b.adminURL = "https://" + dialable(ln.Addr())
	b.adminSrv = &http.Server{
		Handler:           api,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{b.cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute, // release uploads
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(b.log.Named("admin-http").WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))),
	}
	go func() {
		defer close(b.served)
		if err := b.adminSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("admin server stopped", zap.Error(err))
		}
	}()
	return nil
}

// fallbackAddr is addr with port 0.
func fallbackAddr(addr string) string {
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, "0")
}

// dialable turns a listener address into one a local client can dial
// (0.0.0.0 and :: become loopback).
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// writeCtlFile writes DATA/jumpctl.json: the admin URL and fingerprint as of
// this start, with the token made now or the one already in the file.
func (b *Broker) writeCtlFile() error {
	path := filepath.Join(b.cfg.Data, CtlFileName)
	token := b.token
	if token == "" {
		old, err := adminapi.ReadCtlFile(path)
		if err != nil {
			b.log.Warn("no usable jumpctl.json and the admin token is stored only hashed; restart with --reset-admin-token to make a new one",
				zap.String("path", path), zap.Error(err))
			return nil
		}
		token = old.Token
	}
	return adminapi.WriteCtlFile(path, adminapi.CtlFile{AdminURL: b.adminURL, Token: token, CertSHA256: b.fp})
}

func (b *Broker) readyErr() error {
	switch {
	case b.stopping.Load():
		return errors.New("shutting down")
	case !b.ready.Load():
		return errors.New("starting")
	}
	if err := b.node.Err(); err != nil {
		return fmt.Errorf("engine stopped: %w", err)
	}
	return nil
}

// Node is the engine node (for tests and embedding programs).
func (b *Broker) Node() *engine.Node { return b.node }

// AdminURL is the admin API's base URL, e.g. https://127.0.0.1:8444.
func (b *Broker) AdminURL() string { return b.adminURL }

// Fingerprint is the SHA-256 (hex) of the broker's certificate.
func (b *Broker) Fingerprint() string { return b.fp }

// NewAdminToken is the admin token made by this Open ("" when the stored one
// was kept).
func (b *Broker) NewAdminToken() string { return b.token }

// NATSURL is the NATS the events go to.
func (b *Broker) NATSURL() string {
	if b.ns != nil {
		return b.ns.ClientURL()
	}
	return b.cfg.NATSURL
}

// ReleaseKey is the release-signing key.
func (b *Broker) ReleaseKey() ed25519.PrivateKey { return b.releaseKey }

// Identity is the identity store (installers, credentials, consoles).
func (b *Broker) Identity() *identity.Store { return b.ids }

// Certificate is the broker's TLS certificate.
func (b *Broker) Certificate() tls.Certificate { return b.cert }

// EventStats are the NATS publisher's counters.
func (b *Broker) EventStats() events.Stats { return b.pub.Stats() }

// Shutdown stops the broker gracefully: not ready, stop accepting clients and
// tell connected ones to come back later (jittered), end event streams and
// the admin API, let the engine finish its turn, drain events to NATS, close
// the store. When ctx ends first, what is left is stopped at once. Safe to
// call more than once and together with Close.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.closeOnce.Do(func() { b.closeErr = b.shutdown(ctx) })
	return b.closeErr
}

// Close stops the broker without waiting for clients or streams.
func (b *Broker) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return b.Shutdown(ctx)
}

func (b *Broker) closeNow() { _ = b.Close() }

func (b *Broker) shutdown(ctx context.Context) error {
	b.stopping.Store(true)
	var errs []error
	if b.srv != nil {
		// Stop accepting, send every session a Bye with a jittered
		// retry-after, wait for them (or ctx).
		if err := b.srv.Shutdown(ctx); err != nil && ctx.Err() == nil {
			errs = append(errs, fmt.Errorf("transport: %w", err))
		}
	}
	if b.ring != nil {
		b.ring.Close() // ends event streams, so the admin server can go idle
	}
	if b.adminSrv != nil {
		if err := b.adminSrv.Shutdown(ctx); err != nil {
			_ = b.adminSrv.Close()
		}
		<-b.served
	} else if b.adminLn != nil {
		_ = b.adminLn.Close()
	}
	if b.node != nil {
		if err := b.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("engine: %w", err))
		}
	}
	if b.pub != nil {
		_ = b.pub.Close()
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.ns != nil {
		b.ns.Shutdown()
		b.ns.WaitForShutdown()
	}
	if b.db != nil {
		if err := b.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: %w", err))
		}
	}
	if b.log != nil {
		_ = b.log.Sync()
	}
	return errors.Join(errs...)
}

func buildLogger(cfg *Config) (*zap.Logger, error) {
	if cfg.Logger != nil {
		return cfg.Logger, nil
	}
	zc := zap.NewProductionConfig()
	if cfg.LogFormat == "console" {
		zc.Encoding = "console"
		zc.EncoderConfig = zap.NewDevelopmentEncoderConfig()
	}
	lvl, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	// Sampling keeps hot paths from flooding the log: per message and
	// second, the first 100 then every 100th.
	zc.Sampling = &zap.SamplingConfig{Initial: 100, Thereafter: 100}
	zc.OutputPaths, zc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	return zc.Build()
}

func addrStrings(as []net.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Network() + "://" + a.String()
	}
	return out
}
