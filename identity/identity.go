// Package identity keeps who may talk to the broker: installers (enrollment
// tokens bound to the site release they were made for), the per-client
// credentials enrollment hands out, and access-console tokens. Everything
// is in the Pebble store; tokens are stored only as SHA-256 hashes, so a
// copy of the store does not let anyone enroll or act as a console.
//
// Client secrets must be usable to check HMAC proofs, so they are stored as
// they are (the store is the server's own disk); a bounded in-memory cache
// keeps the hot reconnect path off Pebble.
//
// Keys (store/keys.go namespaces):
//
//	'i' + sha256(token)              installer record (JSON)
//	'k' + client id[16]              credential: secret[32] kind[1] created-ms[8]
//	'a' + "console/" + sha256(token) console token record (JSON)
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"jumpfleet/engine"
	"jumpfleet/store"
)

// Stable error codes of this package (they match the wire catalogue's names).
const (
	CodeInstallerInvalid = "installer_invalid"
	CodeAuthFailed       = "auth_failed"
	CodeKindMismatch     = "kind_mismatch"
	CodeBadRequest       = "bad_request"
	CodeInternal         = "internal"
)

// Error is an identity failure with a stable code.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Code + ": " + e.Msg }

// CodeOf returns err's code, or "internal".
func CodeOf(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// Token prefixes make a leaked token recognisable (secret scanners) and
// keep an installer token from being tried as a console token by mistake.
const (
	installerPrefix = "jfi_"
	consolePrefix   = "jfc_"
	consoleKey      = "console/"
)

// DefaultCacheSize bounds the in-memory secret cache.
const DefaultCacheSize = 1 << 20

// InstallerInfo describes an installer (never its token).
type InstallerInfo struct {
	// ID is the first 16 hex digits of the token hash: enough to name it
	// in the admin UI without revealing anything usable.
	ID      string      `json:"id"`
	SiteTag string      `json:"site_tag"`
	Kind    engine.Kind `json:"kind"`
	Created time.Time   `json:"created"`
	// Valid is false for installers made for another site release: they
	// must be regenerated.
	Valid bool `json:"valid"`
}

type installerRec struct {
	SiteTag string      `json:"site_tag"`
	Kind    engine.Kind `json:"kind"`
	Created time.Time   `json:"created"`
}

type consoleRec struct {
	Name string `json:"name"`
}

// Store is the identity store. Safe for concurrent use.
type Store struct {
	db *store.DB

	mu    sync.Mutex
	cache map[engine.ClientID][32]byte // bounded by max
	max   int
}

// New returns a Store over db.
func New(db *store.DB) *Store { return NewWithCache(db, DefaultCacheSize) }

// NewWithCache is New with a given bound on cached secrets (>= 1).
func NewWithCache(db *store.DB, cacheSize int) *Store {
	return &Store{db: db, cache: make(map[engine.ClientID][32]byte), max: max(cacheSize, 1)}
}

func newToken(prefix string) (string, [32]byte, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", [32]byte{}, err
	}
	tok := prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return tok, sha256.Sum256([]byte(tok)), nil
}

func installerKey(h [32]byte) []byte { return store.Key(store.NSInstaller, h[:]) }
func credKey(id engine.ClientID) []byte {
	return store.Key(store.NSCredential, id[:])
}
func consoleStoreKey(h [32]byte) []byte {
	return store.Key(store.NSAdmin, append([]byte(consoleKey), h[:]...))
}

func (s *Store) put(key, val []byte) error {
	b := s.db.NewBatch()
	defer b.Close()
	b.Put(key, val)
	if err := s.db.Commit(b, true); err != nil {
		return &Error{Code: CodeInternal, Msg: err.Error()}
	}
	return nil
}

// CreateInstaller makes an installer for clients of the given kind, bound
// to siteTag (the id of the newest site release, "" before any). The token
// is returned once; only its hash is stored.
func (s *Store) CreateInstaller(now time.Time, siteTag string, kind engine.Kind) (string, InstallerInfo, error) {
	if !kind.Valid() {
		return "", InstallerInfo{}, &Error{Code: CodeBadRequest, Msg: fmt.Sprintf("installer kind %d: want active, passive or jumpoint", kind)}
	}
	tok, h, err := newToken(installerPrefix)
	if err != nil {
		return "", InstallerInfo{}, err
	}
	rec := installerRec{SiteTag: siteTag, Kind: kind, Created: now.UTC().Truncate(time.Millisecond)}
	val, _ := json.Marshal(rec)
	if err := s.put(installerKey(h), val); err != nil {
		return "", InstallerInfo{}, err
	}
	return tok, info(h[:], rec, siteTag), nil
}

func info(hash []byte, r installerRec, siteTag string) InstallerInfo {
	return InstallerInfo{ID: hex.EncodeToString(hash[:8]), SiteTag: r.SiteTag, Kind: r.Kind, Created: r.Created, Valid: r.SiteTag == siteTag}
}

// ListInstallers lists every installer, newest first, marking those made
// for another site tag as not valid.
func (s *Store) ListInstallers(siteTag string) ([]InstallerInfo, error) {
	var out []InstallerInfo
	err := s.db.Scan([]byte{store.NSInstaller}, nil, func(key, val []byte) (bool, error) {
		var r installerRec
		if err := json.Unmarshal(val, &r); err != nil {
			return false, fmt.Errorf("identity: installer %x: %w", key[1:], err)
		}
		out = append(out, info(key[1:], r, siteTag))
		return true, nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// Enroll redeems an installer token for a new client identity and secret.
// It fails with auth_failed for an unknown token and installer_invalid for
// one made for another site release.
func (s *Store) Enroll(now time.Time, token, siteTag string) (engine.ClientID, [32]byte, error) {
	return s.EnrollKind(now, token, siteTag, 0)
}

// EnrollKind is Enroll that also insists the installer was made for kind
// (kind_mismatch otherwise); kind 0 accepts any.
func (s *Store) EnrollKind(now time.Time, token, siteTag string, kind engine.Kind) (engine.ClientID, [32]byte, error) {
	var id engine.ClientID
	var secret [32]byte
	h := sha256.Sum256([]byte(token))
	val, ok, err := s.db.Get(installerKey(h))
	if err != nil {
		return id, secret, &Error{Code: CodeInternal, Msg: err.Error()}
	}
	if !ok {
		return id, secret, &Error{Code: CodeAuthFailed, Msg: "unknown installer token"}
	}
	var r installerRec
	if err := json.Unmarshal(val, &r); err != nil {
		return id, secret, &Error{Code: CodeInternal, Msg: "installer record: " + err.Error()}
	}
	if r.SiteTag != siteTag {
		return id, secret, &Error{Code: CodeInstallerInvalid, Msg: fmt.Sprintf(
			"this installer was made for site release %q and the server now runs %q: regenerate the installer", r.SiteTag, siteTag)}
	}
	if kind != 0 && r.Kind != kind {
		return id, secret, &Error{Code: CodeKindMismatch, Msg: fmt.Sprintf("installer is for %s clients, not %s", r.Kind, kind)}
	}
	if _, err := rand.Read(id[:]); err != nil {
		return id, secret, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return id, secret, err
	}
	var cred [41]byte
	copy(cred[:32], secret[:])
	cred[32] = byte(r.Kind)
	binary.BigEndian.PutUint64(cred[33:], uint64(now.UnixMilli()))
	if err := s.put(credKey(id), cred[:]); err != nil {
		return engine.ClientID{}, [32]byte{}, err
	}
	s.remember(id, secret)
	return id, secret, nil
}

// Secret returns the secret of an enrolled client.
func (s *Store) Secret(id engine.ClientID) ([32]byte, bool, error) {
	s.mu.Lock()
	sec, ok := s.cache[id]
	s.mu.Unlock()
	if ok {
		return sec, true, nil
	}
	val, ok, err := s.db.Get(credKey(id))
	if err != nil {
		return sec, false, &Error{Code: CodeInternal, Msg: err.Error()}
	}
	if !ok {
		return sec, false, nil
	}
	if len(val) < 32 {
		return sec, false, &Error{Code: CodeInternal, Msg: fmt.Sprintf("credential of %s is %d bytes", id, len(val))}
	}
	copy(sec[:], val)
	s.remember(id, sec)
	return sec, true, nil
}

// remember caches a secret; when full it evicts an arbitrary entry (map
// iteration order), which is as good as LRU for a reconnect storm that
// touches every client once.
func (s *Store) remember(id engine.ClientID, sec [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.cache[id]; !ok && len(s.cache) >= s.max {
		for k := range s.cache {
			delete(s.cache, k)
			break
		}
	}
	s.cache[id] = sec
}

// CreateConsoleToken makes a token for an access console named name.
func (s *Store) CreateConsoleToken(name string) (string, error) {
	if name == "" || len(name) > 128 {
		return "", &Error{Code: CodeBadRequest, Msg: "console name must be 1..128 bytes"}
	}
	tok, h, err := newToken(consolePrefix)
	if err != nil {
		return "", err
	}
	val, _ := json.Marshal(consoleRec{Name: name})
	if err := s.put(consoleStoreKey(h), val); err != nil {
		return "", err
	}
	return tok, nil
}

// VerifyConsole returns the console name of a token.
func (s *Store) VerifyConsole(token string) (string, bool) {
	if len(token) > 256 {
		return "", false
	}
	val, ok, err := s.db.Get(consoleStoreKey(sha256.Sum256([]byte(token))))
	if err != nil || !ok {
		return "", false
	}
	var r consoleRec
	if json.Unmarshal(val, &r) != nil {
		return "", false
	}
	return r.Name, true
}
