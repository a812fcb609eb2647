package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
)

// resetSecretLen is the size of the persisted secret behind the QUIC
// stateless reset key.
const resetSecretLen = 32

// resetKeyLabel separates this use of the secret from any other.
const resetKeyLabel = "jumpfleet quic stateless reset key v1"

// LoadOrCreateResetKey returns the QUIC stateless reset key derived from
// the secret in the file at path (32 random bytes, 0600), creating the
// file on first use. The key must survive restarts: a reset token is a
// MAC of a connection id under it, so only a broker holding the same key
// as the one that issued the id can tell a client "that connection is
// gone". The file is written to a temporary name and renamed, so a crash
// never leaves a short secret behind.
func LoadOrCreateResetKey(path string) (*quic.StatelessResetKey, error) {
	secret, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		secret, err = createResetSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("server: stateless reset secret: %w", err)
	}
	if len(secret) != resetSecretLen {
		return nil, fmt.Errorf("server: stateless reset secret %s: %d bytes, want %d", path, len(secret), resetSecretLen)
	}
	return resetKeyFromSecret(secret), nil
}

func resetKeyFromSecret(secret []byte) *quic.StatelessResetKey {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(resetKeyLabel))
	var k quic.StatelessResetKey
	copy(k[:], m.Sum(nil))
	return &k
}

func createResetSecret(path string) ([]byte, error) {
	secret := make([]byte, resetSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename: nothing to remove
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Write(secret); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	// Link, not rename: two brokers racing on one data directory keep the
	// first secret rather than each believing its own.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, err
	}
	return secret, nil
}
