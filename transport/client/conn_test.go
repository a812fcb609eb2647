package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"jumpfleet/transport/wire"
)

// fakeServer is a TLS listener on loopback that answers Hello with a
// HelloAck asking for heartbeats every hb, then answers every later frame
// with reply (nil: never answers, a broker that has stopped serving while
// the socket stays up). Each accepted connection's remote address is sent
// on remotes.
type fakeServer struct {
	ln      net.Listener
	remotes chan net.Addr
}

func newFakeServer(t *testing.T, hb time.Duration, reply wire.Msg) *fakeServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ALPN},
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{ln: ln, remotes: make(chan net.Addr, 4)}
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fs.remotes <- c.RemoteAddr()
			r := wire.NewReader(c, wire.PreHelloMaxFrame)
			if _, err := r.ReadMsg(); err != nil { // Hello
				_ = c.Close()
				continue
			}
			out, _ := wire.AppendFrame(nil, &wire.HelloAck{Version: wire.ProtocolVersion, MaxFrame: wire.PreHelloMaxFrame,
				HeartbeatMs: uint32(hb.Milliseconds())})
			if _, err := c.Write(out); err != nil {
				_ = c.Close()
				continue
			}
			if reply == nil {
				_, _ = io.Copy(io.Discard, c)
			} else {
				for {
					if _, err := r.ReadMsg(); err != nil {
						break
					}
					out, _ := wire.AppendFrame(nil, reply)
					if _, err := c.Write(out); err != nil {
						break
					}
				}
			}
			_ = c.Close()
		}
	}()
	return fs
}

func (fs *fakeServer) config() Config {
	return Config{Addr: fs.ln.Addr().String(), TLS: &tls.Config{InsecureSkipVerify: true}, DialTimeout: 5 * time.Second}
}

// TestHeartbeatFailureCloses: a heartbeat that fails closes the
// connection, so Closed fires and a reconnect loop runs. Before, a
// heartbeat answered with an error that does not end the connection (here
// RetryLater from an overloaded broker) stopped the heartbeat goroutine
// quietly, and the connection looked up for ever with nothing keeping it
// alive.
func TestHeartbeatFailureCloses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply wire.Msg
	}{
		{"retry-later", &wire.RetryLater{RetryAfterMs: 1000}},
		{"silent", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, 50*time.Millisecond, tc.reply)
			c, err := Dial(context.Background(), fs.config())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.StartHeartbeats()
			select {
			case <-c.Closed():
			case <-time.After(10 * time.Second):
				t.Fatal("a heartbeat failed and the connection is still open")
			}
			if tc.reply != nil {
				var he *HeartbeatError
				var rl *RetryLaterError
				if err := c.Err(); !errors.As(err, &he) || !errors.As(err, &rl) {
					t.Fatalf("Err = %v, want a HeartbeatError wrapping the RetryLater", err)
				}
			}
			before := c.Err()
			_ = c.Close() // idempotent after the heartbeat closed it
			if c.Err() != before {
				t.Fatalf("Close replaced the reason %v by %v", before, c.Err())
			}
		})
	}
}

// TestLocalAddr: a TLS connection leaves from Config.LocalAddr, so a load
// generator can spread connections over 127.x.y.z sources.
func TestLocalAddr(t *testing.T) {
	fs := newFakeServer(t, time.Hour, nil)
	for _, src := range []string{"127.0.0.2", "127.3.4.5"} {
		cfg := fs.config()
		cfg.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		c, err := Dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := (<-fs.remotes).(*net.TCPAddr)
		if !got.IP.Equal(net.ParseIP(src)) {
			t.Errorf("connection came from %v, want %s", got, src)
		}
		_ = c.Close()
	}
	cfg := fs.config()
	cfg.LocalAddr = &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}
	if _, err := Dial(context.Background(), cfg); err == nil {
		t.Fatal("a UDP LocalAddr was accepted for TLS")
	}
}
