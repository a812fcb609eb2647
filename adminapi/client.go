package adminapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"jumpfleet/engine"
)

// CtlFile is DATA/jumpctl.json: what jumpctl needs to reach the admin API.
// The broker writes it with mode 0600 because it holds the admin token.
type CtlFile struct {
	AdminURL   string `json:"admin_url"`
	Token      string `json:"token"`
	CertSHA256 string `json:"cert_sha256"`
}

// ReadCtlFile reads a jumpctl.json.
func ReadCtlFile(path string) (CtlFile, error) {
	var f CtlFile
	data, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	if f.AdminURL == "" || f.Token == "" {
		return f, fmt.Errorf("%s: admin_url and token are required", path)
	}
	return f, nil
}

// WriteCtlFile writes f to path with mode 0600, atomically.
func WriteCtlFile(path string, f CtlFile) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Fingerprint is the lowercase hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// normFingerprint accepts "AB:CD:..." or "abcd..." forms.
func normFingerprint(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
}

// Client calls the admin API. With a pinned fingerprint it trusts exactly
// that certificate (the broker's is self-signed) and nothing else.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for base (https://HOST:PORT). pin is the
// SHA-256 fingerprint of the broker's certificate; empty means the system
// roots (a broker behind a real certificate).
func NewClient(base, token, pin string) *Client {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if pin != "" {
		want := normFingerprint(pin)
		tc.InsecureSkipVerify = true // replaced by the pin check below
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("admin API sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != want {
				return fmt.Errorf("admin API certificate fingerprint %s does not match the pinned %s", got, want)
			}
			return nil
		}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 60 * time.Second}
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Transport: tr}}
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status  int
	Code    engine.Code
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Do sends method path with body (nil, or a value encoded as JSON) and
// decodes a 2xx answer into out (if not nil). Error answers are *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return &APIError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		return &APIError{Status: resp.StatusCode, Code: CodeInternal, Message: strings.TrimSpace(string(data))}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	return json.Unmarshal(data, out)
}

// SSE is one server-sent event.
type SSE struct {
	ID, Event string
	Data      []byte
}

// Events streams GET /v1/events (query is e.g. "types=upgraded") and calls
// fn for each event until ctx ends, the stream ends or fn returns false.
func (c *Client) Events(ctx context.Context, query string, fn func(SSE) bool) error {
	return c.EventsFrom(ctx, query, nil, fn)
}

// EventsFrom is Events that calls opened (if not nil) once the stream is
// open: every event committed after that is delivered (the server fixes
// the stream's start before it answers).
func (c *Client) EventsFrom(ctx context.Context, query string, opened func(), fn func(SSE) bool) error {
	u := c.BaseURL + "/v1/events"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := *c.HTTP
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return &APIError{Status: resp.StatusCode, Code: CodeInternal, Message: "event stream refused"}
	}
	if opened != nil {
		opened()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev SSE
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Event != "" || ev.Data != nil {
				if !fn(ev) {
					return nil
				}
			}
			ev = SSE{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = append(ev.Data, line[6:]...)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}
