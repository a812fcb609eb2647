package broker

import (
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"jumpfleet/engine"
	"jumpfleet/transport/server"
)

// startTransport starts the client listeners (TLS over TCP and QUIC on the
// same port number) and routes the engine's pushes to them.
func (b *Broker) startTransport() error {
	// The same key across restarts lets the QUIC listener reset a crashed
	// process's connections, so their clients reconnect at once.
	resetKey, err := server.LoadOrCreateResetKey(filepath.Join(b.cfg.Data, quicResetFile))
	if err != nil {
		return fmt.Errorf("broker: transport: %w", err)
	}
	srv, err := server.New(server.Config{
		Listen:            b.cfg.Listen,
		TLS:               &tls.Config{Certificates: []tls.Certificate{b.cert}},
		DisableQUIC:       b.cfg.DisableQUIC,
		QUICSockets:       b.cfg.QUICSockets,
		StatelessResetKey: resetKey,
		AcceptRate:        b.cfg.AcceptRate,
		AcceptBurst:       b.cfg.AcceptBurst,
		MaxConns:          b.cfg.MaxConns,
		Heartbeat:         time.Duration(b.cfg.Heartbeat),
		BytesPerSec:       b.cfg.Settings.BytesPerSec,
		Logger:            b.log.Named("transport"),
		Registerer:        b.reg,
	}, b.node, b.ids, b.pkgs, b.releaseKey.Public().(ed25519.PublicKey))
	if err != nil {
		return fmt.Errorf("broker: transport: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: transport: %w", err)
	}
	b.srv = srv
	hook := srv.OnCommit
	b.onCommit.Store(&hook)
	return nil
}

// ClientAddrs are the client listeners' addresses (TCP, then UDP for QUIC).
func (b *Broker) ClientAddrs() []net.Addr {
	if b.srv == nil {
		return nil
	}
	tcp, udp := b.srv.Addrs()
	out := []net.Addr{tcp}
	if udp != nil {
		out = append(out, udp)
	}
	return out
}

// quicResetFile (in the data directory) holds the secret behind the QUIC
// stateless reset key (0600).
const quicResetFile = "quic-reset.key"

// pushHook is the type of the transport's OnCommit.
type pushHook = func(uint64, *engine.Output)
