package packages

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func testManifest(data []byte) Manifest {
	sum := sha256.Sum256(data)
	return Manifest{Release: "24.3.1", Platform: "linux-x64", Version: "24.3.1-r7",
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

func TestSignVerify(t *testing.T) {
	priv, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	m := testManifest([]byte("hello"))
	s := NewSigned(priv, m)
	got, err := Verify(pub, s.Manifest, s.Signature)
	if err != nil || got != m {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	// Round trip through engine.Target.Package form.
	back, err := ParseSigned(s.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := back.Verify(pub); err != nil || got != m {
		t.Fatalf("Signed.Verify = %+v, %v", got, err)
	}
	// Any flipped byte fails.
	bad := append([]byte(nil), s.Manifest...)
	bad[5] ^= 1
	if _, err := Verify(pub, bad, s.Signature); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered manifest: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := Verify(other, s.Manifest, s.Signature); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: %v", err)
	}
	// A signed but non-canonical manifest is refused.
	nc := append([]byte(" "), s.Manifest...)
	if _, err := Verify(pub, nc, ed25519.Sign(priv, nc)); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("non-canonical: %v", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "release.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reload gave another key: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("world-readable key accepted")
	}
}

func TestManifestValidate(t *testing.T) {
	good := testManifest([]byte("x"))
	for name, mut := range map[string]func(*Manifest){
		"release-slash": func(m *Manifest) { m.Release = "../x" },
		"release-dot":   func(m *Manifest) { m.Release = ".x" },
		"platform":      func(m *Manifest) { m.Platform = "amiga" },
		"version":       func(m *Manifest) { m.Version = "1.2" },
		"size":          func(m *Manifest) { m.Size = 0 },
		"sha-upper":     func(m *Manifest) { m.SHA256 = "AB" + m.SHA256[2:] },
		"sha-short":     func(m *Manifest) { m.SHA256 = m.SHA256[:10] },
	} {
		m := good
		mut(&m)
		if err := m.Validate(); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStorePutOpen(t *testing.T) {
	seed := uint64(1)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, 200_000)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	st, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := testManifest(data)
	if _, _, err := st.Open(m.Release, m.Platform); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open before Put: %v", err)
	}
	// Mismatches store nothing.
	if err := st.Put(m, bytes.NewReader(data[:len(data)-1])); !errors.Is(err, ErrMismatch) {
		t.Fatalf("short: %v", err)
	}
	if err := st.Put(m, bytes.NewReader(append(data, 0))); !errors.Is(err, ErrMismatch) {
		t.Fatalf("long: %v", err)
	}
	flipped := append([]byte(nil), data...)
	flipped[1000] ^= 0xff
	if err := st.Put(m, bytes.NewReader(flipped)); !errors.Is(err, ErrMismatch) {
		t.Fatalf("hash: %v", err)
	}
	if _, _, err := st.Open(m.Release, m.Platform); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after failed Puts: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(st.Dir(), m.Release))
	if len(ents) != 0 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := st.Put(m, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	f, got, err := st.Open(m.Release, m.Platform)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got != m {
		t.Fatalf("manifest %+v, want %+v", got, m)
	}
	all, err := io.ReadAll(io.NewSectionReader(f, 0, m.Size))
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("read back differs: %v", err)
	}
	if _, _, err := st.Open("../etc", "linux-x64"); !errors.Is(err, ErrBadManifest) {
		t.Fatalf("path escape: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(testManifest([]byte("a")).Bytes())
	f.Add([]byte(`{"release":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Bytes(), b) {
			t.Fatalf("accepted non-canonical %q", b)
		}
	})
}

func FuzzParseSigned(f *testing.F) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	f.Add([]byte(NewSigned(priv, testManifest([]byte("a"))).JSON()))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b)
		if err != nil {
			return
		}
		back, err := ParseSigned(s.JSON())
		if err != nil || !bytes.Equal(back.Manifest, s.Manifest) || !bytes.Equal(back.Signature, s.Signature) {
			t.Fatalf("round trip: %v", err)
		}
		_, _ = s.Verify(priv.Public().(ed25519.PublicKey))
	})
}
