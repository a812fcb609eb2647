package client

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"jumpfleet/packages"
	"jumpfleet/transport/wire"
)

func TestBackoffFullJitterCapped(t *testing.T) {
	const seed = 42
	t.Logf("seed %d", seed)
	b := NewBackoff(100*time.Millisecond, 2*time.Second, seed)
	for n := range 20 {
		ceil := min(100*time.Millisecond<<n, 2*time.Second)
		if d := b.Next(0); d < 0 || d > ceil {
			t.Fatalf("attempt %d: %v outside [0, %v]", n, d, ceil)
		}
	}
	// A server retry-after is honoured, with jitter up to the same again.
	for range 100 {
		if d := b.Next(5 * time.Second); d < 5*time.Second || d > 10*time.Second {
			t.Fatalf("retry-after 5s gave %v", d)
		}
	}
	b.Reset()
	if d := b.Next(0); d > 100*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	if !Permanent(&wire.Error{Code: wire.CodeInstallerInvalid}) || Permanent(&wire.Error{Code: wire.CodeOverloaded}) {
		t.Fatal("Permanent misclassifies")
	}
	if RetryAfter(&wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: 1500}) != 1500*time.Millisecond {
		t.Fatal("RetryAfter of an overloaded error")
	}
}

func TestVerify(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	pub := priv.Public().(ed25519.PublicKey)
	data := []byte("package bytes")
	sum := sha256.Sum256(data)
	m := packages.Manifest{Release: "r2", Platform: "linux-x64", Version: "2.0.0-r7", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	s := packages.NewSigned(priv, m)
	offer := &wire.UpgradeOffer{ReleaseID: "r2", Platform: wire.PlatformLinuxX64, Target: wire.Version{Major: 2, Revision: 7},
		PackageSize: uint64(len(data)), SHA256: sum, Manifest: s.Manifest}
	copy(offer.Signature[:], s.Signature)
	if err := VerifyOffer(offer, pub); err != nil {
		t.Fatal(err)
	}
	code := func(err error) wire.ErrCode {
		var de *DownloadError
		if !errors.As(err, &de) {
			t.Fatalf("not a DownloadError: %v", err)
		}
		return de.Code
	}
	bad := *offer
	bad.PackageSize++
	if c := code(VerifyOffer(&bad, pub)); c != wire.CodeBadSignature {
		t.Fatalf("offer/manifest mismatch: %s", c)
	}
	bad = *offer
	bad.Signature[0] ^= 1
	if c := code(VerifyOffer(&bad, pub)); c != wire.CodeBadSignature {
		t.Fatalf("bad signature: %s", c)
	}
	f, err := os.CreateTemp(t.TempDir(), "pkg")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data[:5], 0); err != nil {
		t.Fatal(err)
	}
	if c := code(VerifyFile(offer, f)); c != wire.CodeSizeMismatch {
		t.Fatalf("short file: %s", c)
	}
	flipped := append([]byte(nil), data...)
	flipped[3] ^= 1
	_, _ = f.WriteAt(flipped, 0)
	if c := code(VerifyFile(offer, f)); c != wire.CodeHashMismatch {
		t.Fatalf("flipped byte: %s", c)
	}
	_, _ = f.WriteAt(data, 0)
	if err := VerifyFile(offer, f); err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt([]byte("x"), int64(len(data)))
	if c := code(VerifyFile(offer, f)); c != wire.CodeSizeMismatch {
		t.Fatalf("long file: %s", c)
	}
}
