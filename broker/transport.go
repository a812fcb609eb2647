package broker

import (
	"context"
	"net"
)

// transportServer is what the broker needs of transport/server.Server.
type transportServer interface {
	Shutdown(ctx context.Context) error
	Close() error
}

// startTransport starts the client listeners (TLS and QUIC).
func (b *Broker) startTransport() error {
	return nil
}

// ClientAddrs are the client listeners' addresses.
func (b *Broker) ClientAddrs() []net.Addr { return nil }
