package engine

import "testing"

// FuzzParseVersion: whatever parses prints back to itself (the text form
// is canonical) and never panics.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"24.2.0-r200", "1.2.3", "0.0.0", "65535.65535.65535-r4294967295", "1.2", "x", "1.2.3-r0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			if CodeOf(err) != CodeBadVersion {
				t.Fatalf("error %v has code %s", err, CodeOf(err))
			}
			return
		}
		if v.String() != s {
			t.Fatalf("ParseVersion(%q).String() = %q", s, v.String())
		}
	})
}

// FuzzParseClientID: the hex form round-trips.
func FuzzParseClientID(f *testing.F) {
	f.Add("000102030405060708090a0b0c0d0e0f")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseClientID(s)
		if err != nil {
			return
		}
		if got, err := ParseClientID(id.String()); err != nil || got != id {
			t.Fatalf("round trip of %q: %v %v", s, got, err)
		}
	})
}
