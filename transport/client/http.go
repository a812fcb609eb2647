package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"jumpfleet/transport/wire"
)

// HTTPConn is a minimal agent for the broker's HTTPS + JSON endpoint: one
// HTTP/1.1 keep-alive connection, authenticated on its first request with
// a proof bound to the connection's TLS exporter (as in protocol v1). It
// exists for scripts and as the load tester's baseline; it is not safe for
// concurrent use.
type HTTPConn struct {
	c       *tls.Conn
	br      *bufio.Reader
	binding [32]byte
	host    string
	authed  bool
	now     func() time.Time
	buf     bytes.Buffer
}

// HTTPError is a non-2xx answer.
type HTTPError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.Status, e.Code, e.Message)
}

// DialHTTP connects with ALPN http/1.1.
func DialHTTP(ctx context.Context, cfg Config) (*HTTPConn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc := cfg.tlsConfig()
	tc.NextProtos = []string{"http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	d := tls.Dialer{NetDialer: cfg.netDialer(), Config: tc}
	nc, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	c := nc.(*tls.Conn)
	cs := c.ConnectionState()
	b, err := cs.ExportKeyingMaterial(wire.ExporterLabel, nil, 32)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	h := &HTTPConn{c: c, br: bufio.NewReader(c), host: cfg.Addr, now: cfg.Now}
	copy(h.binding[:], b)
	return h, nil
}

// Close closes the connection.
func (h *HTTPConn) Close() error { return h.c.Close() }

// do sends one request and decodes a JSON answer into out (if non-nil).
func (h *HTTPConn) do(ctx context.Context, path string, hdr http.Header, in, out any) error {
	h.buf.Reset()
	if in != nil {
		if err := json.NewEncoder(&h.buf).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+h.host+path, bytes.NewReader(h.buf.Bytes()))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if dl, ok := ctx.Deadline(); ok {
		_ = h.c.SetDeadline(dl)
	} else {
		_ = h.c.SetDeadline(time.Time{})
	}
	if err := req.Write(h.c); err != nil {
		return err
	}
	resp, err := http.ReadResponse(h.br, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		he := &HTTPError{Status: resp.StatusCode}
		var ej struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &ej)
		he.Code, he.Message = ej.Code, ej.Message
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return he
	}
	if out != nil && len(body) > 0 {
		return json.Unmarshal(body, out)
	}
	return nil
}

// authHeaders proves cred on the connection's first request; later
// requests name the client only.
func (h *HTTPConn) authHeaders(cred Credentials) http.Header {
	hdr := http.Header{"X-Jf-Client": {hex.EncodeToString(cred.ID[:])}}
	if !h.authed {
		var nonce [16]byte
		_, _ = rand.Read(nonce[:])
		ts := uint64(h.now().UnixMilli())
		mac := wire.AuthMAC(&cred.Secret, cred.ID, ts, &nonce, &h.binding)
		hdr["X-Jf-Timestamp"] = []string{strconv.FormatUint(ts, 10)}
		hdr["X-Jf-Nonce"] = []string{hex.EncodeToString(nonce[:])}
		hdr["X-Jf-Mac"] = []string{hex.EncodeToString(mac[:])}
	}
	return hdr
}

// HTTPCheckInAnswer is the JSON check-in answer (versions and enums as
// their names).
type HTTPCheckInAnswer struct {
	State         string `json:"state"`
	Target        string `json:"target"`
	QueuePosition int    `json:"queue_position"`
	Lane          string `json:"lane"`
	RetryAfterMs  int64  `json:"retry_after_ms"`
	Offer         *struct {
		ReleaseID    string `json:"release_id"`
		PackageSize  uint64 `json:"package_size"`
		SHA256       string `json:"sha256"`
		Manifest     []byte `json:"manifest"`
		Signature    []byte `json:"signature"`
		DownloadPath string `json:"download_path"`
	} `json:"offer,omitempty"`
}

// Enroll redeems an installer token over HTTPS.
func (h *HTTPConn) Enroll(ctx context.Context, m wire.Enroll) (Credentials, error) {
	in := map[string]any{"installer_token": m.InstallerToken, "kind": m.Kind.String(), "platform": m.Platform.String(),
		"version": m.Version.String(), "hostname": m.Hostname}
	var out struct {
		ClientID string `json:"client_id"`
		Secret   []byte `json:"secret"`
	}
	if err := h.do(ctx, "/v1/enroll", nil, in, &out); err != nil {
		return Credentials{}, err
	}
	var cred Credentials
	if _, err := hex.Decode(cred.ID[:], []byte(out.ClientID)); err != nil || len(out.Secret) != 32 {
		return Credentials{}, fmt.Errorf("client: bad enroll answer")
	}
	copy(cred.Secret[:], out.Secret)
	return cred, nil
}

// CheckIn checks in over HTTPS.
func (h *HTTPConn) CheckIn(ctx context.Context, cred Credentials, m wire.CheckIn) (HTTPCheckInAnswer, error) {
	in := struct {
		Kind     string `json:"kind"`
		Platform string `json:"platform"`
		Version  string `json:"version"`
		Flags    uint8  `json:"flags,omitempty"`
	}{m.Kind.String(), m.Platform.String(), m.Version.String(), m.Flags}
	var out HTTPCheckInAnswer
	err := h.do(ctx, "/v1/checkin", h.authHeaders(cred), in, &out)
	if err == nil {
		h.authed = true
	}
	return out, err
}

var _ net.Conn = (*tls.Conn)(nil)
