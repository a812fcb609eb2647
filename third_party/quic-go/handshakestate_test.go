package quic

// Tests of the jumpfleet patch handshakestate.patch (JUMPFLEET.md): once
// the handshake is over, a connection drops crypto/tls's connection and
// the buffers of its Initial and Handshake crypto streams, and still
// answers ConnectionState and resumes sessions as before.

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"reflect"
	"testing"
	"time"
)

// TestHandshakeStateReleased runs real connections on loopback: a client
// that keeps no session tickets, then one that does (twice, the second
// resuming). On both ends, after an exchange on a stream: ConnectionState
// agrees (protocol, exported keying material), and once the connection is
// closed (so that its run loop's writes are visible here) crypto/tls's
// connection and the dropped levels' buffers are gone.
func TestHandshakeStateReleased(t *testing.T) {
	tlsConf := selfSigned(t)
	ln, err := ListenAddr("127.0.0.1:0", tlsConf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cache := tls.NewLRUClientSessionCache(4)
	for i, tc := range []struct {
		name   string
		cache  tls.ClientSessionCache
		resume bool
	}{
		{"no session cache", nil, false},
		{"session cache, first", cache, false},
		{"session cache, resumed", cache, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accepted := make(chan *Conn, 1)
			go func() {
				c, err := ln.Accept(ctx)
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
				s, err := c.AcceptStream(ctx)
				if err != nil {
					return
				}
				_, _ = io.Copy(s, s) // echo until the client closes its side
				_ = s.Close()
			}()
			cconf := &tls.Config{InsecureSkipVerify: true, NextProtos: tlsConf.NextProtos, ClientSessionCache: tc.cache}
			cc, err := DialAddr(ctx, ln.Addr().String(), cconf, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc := <-accepted
			if sc == nil {
				t.Fatal("the server did not accept the connection")
			}
			echo(ctx, t, cc, []byte{byte(i), 'p', 'i', 'n', 'g'})

			cs, ss := cc.ConnectionState().TLS, sc.ConnectionState().TLS
			if cs.NegotiatedProtocol != tlsConf.NextProtos[0] || ss.NegotiatedProtocol != tlsConf.NextProtos[0] {
				t.Fatalf("negotiated %q (client), %q (server)", cs.NegotiatedProtocol, ss.NegotiatedProtocol)
			}
			if cs.DidResume != tc.resume || ss.DidResume != tc.resume {
				t.Fatalf("resumed: client %v, server %v; want %v", cs.DidResume, ss.DidResume, tc.resume)
			}
			ck, err1 := cs.ExportKeyingMaterial("handshakestate", nil, 32)
			sk, err2 := ss.ExportKeyingMaterial("handshakestate", nil, 32)
			if err1 != nil || err2 != nil || !bytes.Equal(ck, sk) {
				t.Fatalf("exported keying material differs: %x (%v), %x (%v)", ck, err1, sk, err2)
			}

			_ = cc.CloseWithError(0, "")
			for side, c := range map[string]*Conn{"client": cc, "server": sc} {
				select {
				case <-c.Context().Done():
				case <-ctx.Done():
					t.Fatalf("%s: connection not closed", side)
				}
				assertReleased(t, side, c)
			}
		})
	}
}

// echo writes msg on a new stream and reads it back.
func echo(ctx context.Context, t *testing.T, c *Conn, msg []byte) {
	t.Helper()
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
	_ = s.Close()
}

// assertReleased checks what the patch drops, reading unexported fields
// through reflect (the crypto setup lives in internal/handshake). The
// caller has seen the connection's context done, which the run loop
// cancels after its last write to these fields.
func assertReleased(t *testing.T, side string, c *Conn) {
	t.Helper()
	cs := reflect.ValueOf(c.cryptoStreamHandler).Elem()
	if !cs.FieldByName("conn").IsNil() {
		t.Errorf("%s: crypto/tls connection still held after the handshake", side)
	}
	if cs.FieldByName("state").IsNil() {
		t.Errorf("%s: no ConnectionState snapshot", side)
	}
	for name, s := range map[string]*baseCryptoStream{
		"initial":   &c.initialStream.baseCryptoStream,
		"handshake": &c.handshakeStream.baseCryptoStream,
	} {
		if !s.dropped || s.writeBuf != nil || s.queue.queue != nil {
			t.Errorf("%s: %s crypto stream kept its buffers (dropped %v, writeBuf %d B)", side, name, s.dropped, cap(s.writeBuf))
		}
	}
	if c.oneRTTStream == nil { // only the server's is kept
		return
	}
	if b := c.oneRTTStream.writeBuf; b != nil {
		t.Errorf("%s: 1-RTT crypto stream kept a %d-byte write buffer", side, cap(b))
	}
}
