package server

import (
	"context"
	"errors"
	"net"
	"syscall"

	"github.com/quic-go/quic-go"
	"golang.org/x/sys/unix"
)

// quicSock is one UDP socket on the QUIC port with its own quic-go
// transport and listener.
//
// Why several: quic-go reads each socket on one goroutine, and a socket's
// receive buffer is capped by net.core.rmem_max (4 MB here). When tens of
// thousands of clients connect at once (a rollout's connect phase, a
// storm), one socket drops datagrams faster than its read loop drains
// them: 4 million receive-buffer errors at ~90,000 QUIC clients, with
// handshakes retransmitted until they time out. With SO_REUSEPORT the
// kernel hashes each client's address onto one of the sockets, so a
// connection's packets always reach the same transport (its connection
// IDs live there), every socket has its own buffer, and the read loops
// run in parallel.
type quicSock struct {
	ln *quic.Listener
	tr *quic.Transport
}

// listenQUIC binds cfg.QUICSockets UDP sockets to addr with SO_REUSEPORT
// and starts a listener on each. The first socket fixes the port when
// addr's port is 0. Every transport carries Config.StatelessResetKey:
// after a crash the restarted broker answers a packet of a connection it
// does not know with a stateless reset, and the client learns at once
// that it must reconnect instead of waiting for its idle timeout.
func (srv *Server) listenQUIC(addr string) ([]quicSock, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	qconf := &quic.Config{
		HandshakeIdleTimeout: srv.cfg.HandshakeTimeout,
		// A backstop a quarter past the session's own idle timeout: that
		// one answers Error{timeout} before closing, and is enforced late
		// by up to a sweep (quicstream.go). Equal to it, quic-go's timer
		// could win on a busy machine and close the connection without
		// the error (TestQUICSessionDeadlines failed so under CI's load).
		MaxIdleTimeout:        srv.cfg.IdleTimeout + srv.cfg.IdleTimeout/4,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1,
		Allow0RTT:             false, // Auth must never ride in 0-RTT data
		// Clients send small frames (the largest is a Hello or an
		// Enroll): small receive windows keep an idle connection's
		// flow-control state and buffering small. The stream window
		// still holds a few pipelined ChunkRequests.
		InitialStreamReceiveWindow:     16 << 10,
		MaxStreamReceiveWindow:         64 << 10,
		InitialConnectionReceiveWindow: 24 << 10,
		MaxConnectionReceiveWindow:     96 << 10,
	}
	// SO_REUSEPORT would let us join another socket of the same user on
	// this port (another broker, a test's server) and share its traffic.
	// A plain bind first proves the port is free; the TCP listener we
	// hold on the same number keeps other brokers from picking it.
	probe, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	addr = probe.LocalAddr().String()
	if err := probe.Close(); err != nil {
		return nil, err
	}
	var qs []quicSock
	for range srv.cfg.QUICSockets {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			closeQUIC(qs)
			return nil, err
		}
		uc := pc.(*net.UDPConn)
		tr := &quic.Transport{Conn: uc, StatelessResetKey: srv.cfg.StatelessResetKey, ConnContext: srv.admitQUIC}
		ln, err := tr.Listen(srv.quicConf, qconf)
		if err != nil {
			_ = tr.Close()
			_ = uc.Close()
			closeQUIC(qs)
			return nil, err
		}
		qs = append(qs, quicSock{ln: ln, tr: tr})
	}
	return qs, nil
}

// admitQUIC applies the accept bucket before a QUIC handshake (quic-go
// refuses the connection when it returns an error): shed after the
// handshake, a connection would already have cost ~1 ms of CPU on each
// side, and come back for another.
func (srv *Server) admitQUIC(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	if !srv.accept.Allow() {
		srv.m.drop(dropAcceptRate)
		return nil, errAcceptRate
	}
	return ctx, nil
}

var errAcceptRate = errors.New("server: accept rate exceeded")

// closeQUIC closes listeners, transports and the sockets (a transport does
// not own the socket it was given).
func closeQUIC(qs []quicSock) {
	for _, q := range qs {
		_ = q.ln.Close()
		_ = q.tr.Close()
		_ = q.tr.Conn.Close()
	}
}
