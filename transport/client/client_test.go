package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
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

// TestBackoffAfterRefused: a refused connection (a restarting server's
// closed port, from a real dial) waits at most RefusedMax however many
// attempts came before, while a shed connection (reset, EOF) and a
// retry-after keep their own rules.
func TestBackoffAfterRefused(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, refused := Dial(ctx, Config{Addr: addr, PinSHA256: make([]byte, 32)})
	if !Refused(refused) {
		t.Fatalf("dial to a closed port: %v, not refused", refused)
	}
	if Refused(io.EOF) || Refused(syscall.ECONNRESET) {
		t.Fatal("EOF or reset taken for refused")
	}

	b := NewBackoff(100*time.Millisecond, 5*time.Second, seed)
	var longest time.Duration
	for n := range 200 {
		d := b.NextAfter(refused)
		if d < 0 || d > DefaultRefusedMax {
			t.Fatalf("refused attempt %d: %v outside [0, %v]", n, d, DefaultRefusedMax)
		}
		longest = max(longest, d)
	}
	if longest < DefaultRefusedMax/2 {
		t.Fatalf("refused waits never grew: longest %v of 200", longest)
	}
	// The attempts counted: a shed connection now backs off up to Max.
	longest = 0
	for range 200 {
		d := b.NextAfter(syscall.ECONNRESET)
		if d < 0 || d > 5*time.Second {
			t.Fatalf("reset: %v outside [0, 5s]", d)
		}
		longest = max(longest, d)
	}
	if longest <= DefaultRefusedMax {
		t.Fatalf("reset waits capped like refused ones: longest %v", longest)
	}
	ra := &wire.Error{Code: wire.CodeOverloaded, RetryAfterMs: 3000}
	if d := b.NextAfter(ra); d < 3*time.Second || d > 6*time.Second {
		t.Fatalf("retry-after 3s gave %v", d)
	}
	// RefusedMax never exceeds Max.
	small := NewBackoff(10*time.Millisecond, 200*time.Millisecond, seed)
	for range 50 {
		if d := small.NextAfter(refused); d > 200*time.Millisecond {
			t.Fatalf("refused wait %v above Max 200ms", d)
		}
	}
}
