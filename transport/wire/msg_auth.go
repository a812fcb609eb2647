package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// ExporterLabel is the TLS exporter label whose 32-byte value (no context)
// binds an Auth proof to its connection (PROTOCOL.md §6).
const ExporterLabel = "EXPORTER-jumpfleet-auth-v1"

// authDomain separates Auth MACs from any other use of the secret.
const authDomain = "jf-auth-v1"

// Enroll registers a new client with an installer token.
type Enroll struct {
	InstallerToken string // <= MaxToken
	Kind           Kind   // active, passive or jumpoint
	Platform       Platform
	Version        Version
	Hostname       string // <= MaxHostname
}

func (*Enroll) Type() MsgType { return TypeEnroll }

func (m *Enroll) AppendTo(b []byte) []byte {
	b = appendString(b, m.InstallerToken)
	b = append(b, byte(m.Kind), byte(m.Platform))
	b = appendVersion(b, m.Version)
	return appendString(b, m.Hostname)
}

func (m *Enroll) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.InstallerToken = d.str(MaxToken)
	m.Kind = d.kind(true)
	m.Platform = d.platform()
	m.Version = d.version()
	m.Hostname = d.str(MaxHostname)
	return d.finish()
}

// EnrollOK hands the new client its identity and secret; the connection is
// then authenticated as that client.
type EnrollOK struct {
	ClientID ClientID
	Secret   [32]byte
}

func (*EnrollOK) Type() MsgType { return TypeEnrollOK }

func (m *EnrollOK) AppendTo(b []byte) []byte {
	b = append(b, m.ClientID[:]...)
	return append(b, m.Secret[:]...)
}

func (m *EnrollOK) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.ClientID[:])
	d.array(m.Secret[:])
	return d.finish()
}

// Auth proves an enrolled client's secret, bound to this connection.
type Auth struct {
	ClientID    ClientID
	TimestampMs uint64 // unix milliseconds at the client
	Nonce       [16]byte
	MAC         [32]byte // AuthMAC(secret, ClientID, TimestampMs, Nonce, binding)
}

func (*Auth) Type() MsgType { return TypeAuth }

func (m *Auth) AppendTo(b []byte) []byte {
	b = append(b, m.ClientID[:]...)
	b = appendU64(b, m.TimestampMs)
	b = append(b, m.Nonce[:]...)
	return append(b, m.MAC[:]...)
}

func (m *Auth) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.ClientID[:])
	m.TimestampMs = d.u64()
	d.array(m.Nonce[:])
	d.array(m.MAC[:])
	return d.finish()
}

// AuthMAC computes HMAC-SHA256(secret, "jf-auth-v1" | id | ts | nonce |
// binding), binding being the connection's ExporterLabel value. Client and
// server both call it so the byte layout lives in one place; the server
// compares with hmac.Equal.
func AuthMAC(secret *[32]byte, id ClientID, timestampMs uint64, nonce *[16]byte, binding *[32]byte) [32]byte {
	var buf [len(authDomain) + 16 + 8 + 16 + 32]byte
	b := append(buf[:0], authDomain...)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, timestampMs)
	b = append(b, nonce[:]...)
	b = append(b, binding[:]...)
	h := hmac.New(sha256.New, secret[:])
	h.Write(b)
	var mac [32]byte
	h.Sum(mac[:0])
	return mac
}

// AuthOK confirms Auth or ConsoleAuth.
type AuthOK struct{}

func (*AuthOK) Type() MsgType            { return TypeAuthOK }
func (*AuthOK) AppendTo(b []byte) []byte { return b }
func (*AuthOK) Unmarshal(p []byte) error { return unmarshalEmpty(p) }

// ConsoleAuth authenticates an access console with its own token.
type ConsoleAuth struct {
	ConsoleToken string // <= MaxToken
}

func (*ConsoleAuth) Type() MsgType              { return TypeConsoleAuth }
func (m *ConsoleAuth) AppendTo(b []byte) []byte { return appendString(b, m.ConsoleToken) }

func (m *ConsoleAuth) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.ConsoleToken = d.str(MaxToken)
	return d.finish()
}
