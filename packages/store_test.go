package packages

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
)

// TestOpenSharesOneDescriptor: concurrent readers of one package share one
// open file, which closes with its last reader; a Put that replaces the
// package is seen by the next Open while older readers keep the old bytes.
func TestOpenSharesOneDescriptor(t *testing.T) {
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(data []byte) {
		t.Helper()
		sum := sha256.Sum256(data)
		m := Manifest{Release: "r1", Platform: "linux-x64", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Version: "1.0.0-r1"}
		if err := s.Put(m, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(r ReadAtCloser, n int) []byte {
		t.Helper()
		b := make([]byte, n)
		if _, err := r.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		return b
	}
	put([]byte("first package"))
	before := openFDs(t)
	var rs []ReadAtCloser
	for range 50 {
		r, _, err := s.Open("r1", "linux-x64")
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if n := openFDs(t) - before; n != 1 {
		t.Fatalf("50 readers hold %d descriptors, want 1", n)
	}
	put([]byte("second package!"))
	r2, m2, err := s.Open("r1", "linux-x64")
	if err != nil || m2.Size != 15 || string(read(r2, 15)) != "second package!" {
		t.Fatalf("after the replacing Put: %+v %v", m2, err)
	}
	if got := string(read(rs[0], 13)); got != "first package" {
		t.Fatalf("an older reader reads %q", got)
	}
	for _, r := range append(rs, r2) {
		_ = r.Close()
		_ = r.Close() // twice is fine
	}
	if n := openFDs(t) - before; n != 0 {
		t.Fatalf("%d descriptors left open after every reader closed", n)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(es)
}
