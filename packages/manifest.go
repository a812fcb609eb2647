// Package packages holds release manifests and package files: the signed
// description of each (release, platform) package that the broker hands to
// clients in UpgradeOffer, and the directory store the package bytes are
// served from.
//
// A manifest is canonical JSON (fixed field order, no extra whitespace), so
// the bytes a client verifies are exactly the bytes that were signed and
// re-encoding a parsed manifest reproduces them. The signing key is ed25519;
// clients pin its public key.
package packages

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"jumpfleet/engine"
)

// MaxManifest caps the encoded manifest (it travels in one wire field whose
// cap is 16 KiB).
const MaxManifest = 16 << 10

// Manifest describes one package: which release and platform it belongs to,
// the version it installs, and its size and SHA-256 (lowercase hex).
type Manifest struct {
	Release  string `json:"release"`
	Platform string `json:"platform"`
	Version  string `json:"version"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Errors are wrapped with context; test them with errors.Is.
var (
	ErrBadManifest  = errors.New("packages: bad manifest")
	ErrBadSignature = errors.New("packages: manifest signature does not verify")
	ErrMismatch     = errors.New("packages: package bytes do not match the manifest")
	ErrNotFound     = errors.New("packages: no such package")
)

// Validate checks every field. Release ids are restricted to a safe
// alphabet because they name directories in the Store.
func (m Manifest) Validate() error {
	if err := validRelease(m.Release); err != nil {
		return err
	}
	if _, err := engine.ParsePlatform(m.Platform); err != nil {
		return fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if _, err := engine.ParseVersion(m.Version); err != nil {
		return fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if m.Size <= 0 {
		return fmt.Errorf("%w: size must be positive, got %d", ErrBadManifest, m.Size)
	}
	if len(m.SHA256) != 64 || strings.ToLower(m.SHA256) != m.SHA256 {
		return fmt.Errorf("%w: sha256 must be 64 lowercase hex digits", ErrBadManifest)
	}
	if _, err := hex.DecodeString(m.SHA256); err != nil {
		return fmt.Errorf("%w: sha256: %v", ErrBadManifest, err)
	}
	return nil
}

func validRelease(id string) error {
	if id == "" || len(id) > engine.MaxReleaseIDLen || id[0] == '.' {
		return fmt.Errorf("%w: release id must be 1..%d bytes and not start with '.'", ErrBadManifest, engine.MaxReleaseIDLen)
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("%w: release id %q: only letters, digits, '.', '-' and '_'", ErrBadManifest, id)
		}
	}
	return nil
}

// Digest returns the SHA-256 as raw bytes (zero if the hex is bad).
func (m Manifest) Digest() (d [32]byte) {
	_, _ = hex.Decode(d[:], []byte(m.SHA256))
	return d
}

// Bytes is the canonical encoding: compact JSON in field order. It is what
// Sign signs and what UpgradeOffer.Manifest carries.
func (m Manifest) Bytes() []byte {
	b, _ := json.Marshal(m) // a struct of strings and ints cannot fail
	return b
}

// Sign returns the ed25519 signature of m.Bytes().
func Sign(priv ed25519.PrivateKey, m Manifest) []byte {
	return ed25519.Sign(priv, m.Bytes())
}

// Verify checks sig over manifest with pub, then parses the manifest and
// insists that it is canonical and valid, so no two byte strings verify as
// the same manifest.
func Verify(pub ed25519.PublicKey, manifest, sig []byte) (Manifest, error) {
	var m Manifest
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, manifest, sig) {
		return m, ErrBadSignature
	}
	m, err := Parse(manifest)
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Parse decodes a canonical manifest without checking a signature.
func Parse(manifest []byte) (Manifest, error) {
	var m Manifest
	if len(manifest) > MaxManifest {
		return m, fmt.Errorf("%w: %d bytes, above %d", ErrBadManifest, len(manifest), MaxManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	if !bytes.Equal(m.Bytes(), manifest) {
		return Manifest{}, fmt.Errorf("%w: not in canonical form", ErrBadManifest)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// Signed is what engine.Target.Package carries: the manifest bytes and the
// signature over exactly them ([]byte fields are base64 in JSON).
type Signed struct {
	Manifest  []byte `json:"manifest"`
	Signature []byte `json:"signature"`
}

// NewSigned signs m.
func NewSigned(priv ed25519.PrivateKey, m Manifest) Signed {
	b := m.Bytes()
	return Signed{Manifest: b, Signature: ed25519.Sign(priv, b)}
}

// JSON encodes s for engine.Target.Package.
func (s Signed) JSON() json.RawMessage {
	b, _ := json.Marshal(s) // two byte slices cannot fail
	return b
}

// Verify checks the signature and returns the manifest.
func (s Signed) Verify(pub ed25519.PublicKey) (Manifest, error) {
	return Verify(pub, s.Manifest, s.Signature)
}

// ParseSigned decodes engine.Target.Package. It does not verify: call
// Verify with the release key.
func ParseSigned(raw json.RawMessage) (Signed, error) {
	var s Signed
	if len(raw) == 0 {
		return s, fmt.Errorf("%w: target has no package", ErrBadManifest)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return Signed{}, fmt.Errorf("%w: package field: %v", ErrBadManifest, err)
	}
	if len(s.Manifest) == 0 || len(s.Manifest) > MaxManifest || len(s.Signature) != ed25519.SignatureSize {
		return Signed{}, fmt.Errorf("%w: package field needs a manifest (<= %d bytes) and a %d-byte signature",
			ErrBadManifest, MaxManifest, ed25519.SignatureSize)
	}
	return s, nil
}

const pemType = "JUMPFLEET RELEASE KEY" // holds the 32-byte ed25519 seed

// LoadOrCreateKey reads the release signing key at path, creating it (mode
// 0600, in a PEM block holding the seed) if the file does not exist. A key
// file readable by others is refused rather than silently used.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("packages: release key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("packages: release key %s has mode %v; want 0600", path, fi.Mode().Perm())
	}
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != pemType || len(blk.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("packages: release key %s: not a %q PEM block with a %d-byte seed", path, pemType, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(blk.Bytes), nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("packages: release key: %w", err)
	}
	// O_EXCL: two processes racing to create the key must not both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("packages: release key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: pemType, Bytes: seed})
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("packages: release key: %w", werr)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
