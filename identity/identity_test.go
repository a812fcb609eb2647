package identity

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"jumpfleet/engine"
	"jumpfleet/store"
)

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestInstallerLifecycle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	db := openDB(t, dir)
	ids := New(db)
	now := time.Unix(1_700_000_000, 0)
	tok, inf, err := ids.CreateInstaller(now, "", engine.KindActive)
	if err != nil {
		t.Fatal(err)
	}
	if !inf.Valid || inf.Kind != engine.KindActive {
		t.Fatalf("info %+v", inf)
	}
	id, sec, err := ids.Enroll(now, tok, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := ids.Secret(id); err != nil || !ok || got != sec {
		t.Fatalf("Secret = %x %v %v", got, ok, err)
	}
	// Kind check.
	if _, _, err := ids.EnrollKind(now, tok, "", engine.KindPassive); CodeOf(err) != CodeKindMismatch {
		t.Fatalf("kind mismatch: %v", err)
	}
	// Unknown token.
	if _, _, err := ids.Enroll(now, "jfi_nope", ""); CodeOf(err) != CodeAuthFailed {
		t.Fatalf("unknown token: %v", err)
	}
	// After a site release, the old installer is invalid.
	_, _, err = ids.Enroll(now, tok, "r2")
	if CodeOf(err) != CodeInstallerInvalid {
		t.Fatalf("old installer: %v", err)
	}
	t.Logf("old installer error: %v", err)
	tok2, _, err := ids.CreateInstaller(now.Add(time.Second), "r2", engine.KindPassive)
	if err != nil {
		t.Fatal(err)
	}
	list, err := ids.ListInstallers("r2")
	if err != nil || len(list) != 2 {
		t.Fatalf("list %+v %v", list, err)
	}
	if !list[0].Valid || list[1].Valid || list[0].Kind != engine.KindPassive {
		t.Fatalf("validity %+v", list)
	}
	if _, _, err := ids.Enroll(now, tok2, "r2"); err != nil {
		t.Fatal(err)
	}

	// Everything survives a restart, and nothing stores a token in clear.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir)
	defer db.Close()
	ids = New(db)
	if got, ok, err := ids.Secret(id); err != nil || !ok || got != sec {
		t.Fatalf("Secret after restart = %v %v", ok, err)
	}
	if _, ok, _ := ids.Secret(engine.ClientID{1}); ok {
		t.Fatal("unknown client has a secret")
	}
	_ = db.Scan(nil, nil, func(k, v []byte) (bool, error) {
		if containsSub(k, tok) || containsSub(v, tok) || containsSub(k, tok2) || containsSub(v, tok2) {
			t.Fatalf("token stored in clear under %q", k)
		}
		return true, nil
	})
}

func containsSub(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func TestConsoleTokens(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	ids := New(db)
	tok, err := ids.CreateConsoleToken("tech-1")
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := ids.VerifyConsole(tok); !ok || name != "tech-1" {
		t.Fatalf("VerifyConsole = %q %v", name, ok)
	}
	if _, ok := ids.VerifyConsole(tok + "x"); ok {
		t.Fatal("wrong token accepted")
	}
	if _, err := ids.CreateConsoleToken(""); CodeOf(err) != CodeBadRequest {
		t.Fatalf("empty name: %v", err)
	}
}

func TestSecretCacheBounded(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	ids := NewWithCache(db, 4)
	now := time.Unix(1_700_000_000, 0)
	tok, _, err := ids.CreateInstaller(now, "", engine.KindPassive)
	if err != nil {
		t.Fatal(err)
	}
	type cred struct {
		id  engine.ClientID
		sec [32]byte
	}
	var all []cred
	for range 20 {
		id, sec, err := ids.Enroll(now, tok, "")
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cred{id, sec})
	}
	if n := len(ids.cache); n > 4 {
		t.Fatalf("cache holds %d, cap 4", n)
	}
	for _, c := range all {
		if got, ok, err := ids.Secret(c.id); err != nil || !ok || got != c.sec {
			t.Fatalf("Secret(%s) wrong after eviction", c.id)
		}
	}
}
