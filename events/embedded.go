package events

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartEmbedded starts an in-process NATS server listening on addr
// ("127.0.0.1:4222"; port 0 picks a free one), so that a single-machine
// broker needs nothing external and `nats sub 'jumpfleet.events.>'` can
// watch it. The caller owns the server: Shutdown then WaitForShutdown.
func StartEmbedded(addr string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("events: nats listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("events: nats listen port %q: want 0..65535", portStr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// nats-server reports a busy port only by never becoming ready:
		// probe first so that the caller hears of it at once.
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("events: embedded nats: %w", err)
		}
		_ = ln.Close()
	}
	opts := &server.Options{
		ServerName: "jumpbroker-embedded",
		Host:       host,
		Port:       port,
		NoLog:      true,
		NoSigs:     true, // the broker owns signal handling
		// No HTTP monitoring, no cluster, no JetStream: a plain subject bus.
		MaxPayload: 1 << 20,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("events: embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("events: embedded nats did not start listening on %s", addr)
	}
	return ns, nil
}
