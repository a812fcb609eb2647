package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"jumpfleet/engine"
)

// Store keeps package files in a directory: dir/<release>/<platform>.pkg
// with its manifest beside it in <platform>.json. Files are written to a
// temporary name and renamed into place only after their size and hash
// check, so a reader never sees a partial or wrong package.
type Store struct {
	dir string

	mu   sync.Mutex
	open map[string]*sharedPkg // owned by mu: packages with readers, by path
}

// sharedPkg is one open package file shared by all its readers: a broker
// serving thousands of downloads at once would otherwise hold a
// descriptor per download (20,000 is the whole process's limit here, and
// TLS connections need theirs) and re-read and re-parse the manifest each
// time. ReadAt on an *os.File is safe for concurrent use (pread).
type sharedPkg struct {
	key  string
	f    *os.File
	m    Manifest
	refs int // owned by Store.mu
}

// pkgReader is one reader's handle on a sharedPkg; Close is idempotent.
type pkgReader struct {
	s    *Store
	p    *sharedPkg
	once sync.Once
}

func (r *pkgReader) ReadAt(b []byte, off int64) (int, error) { return r.p.f.ReadAt(b, off) }

func (r *pkgReader) Close() error {
	r.once.Do(func() { r.s.release(r.p) })
	return nil
}

func (s *Store) release(p *sharedPkg) {
	s.mu.Lock()
	p.refs--
	last := p.refs == 0
	if last && s.open[p.key] == p {
		delete(s.open, p.key)
	}
	s.mu.Unlock()
	if last {
		_ = p.f.Close()
	}
}

// ReadAtCloser is an open package.
type ReadAtCloser interface {
	io.ReaderAt
	io.Closer
}

// OpenStore opens (creating if needed) a package store in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("packages: open store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) paths(release, platform string) (pkg, man string, err error) {
	if err := validRelease(release); err != nil {
		return "", "", err
	}
	if _, err := engine.ParsePlatform(platform); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	d := filepath.Join(s.dir, release)
	return filepath.Join(d, platform+".pkg"), filepath.Join(d, platform+".json"), nil
}

// Put stores the package described by m, reading its bytes from r. It
// hashes while writing and refuses (storing nothing) when r yields more or
// fewer than m.Size bytes or a different SHA-256. An existing package for
// the same release and platform is replaced atomically.
func (s *Store) Put(m Manifest, r io.Reader) (err error) {
	if err := m.Validate(); err != nil {
		return err
	}
	pkgPath, manPath, err := s.paths(m.Release, m.Platform)
	if err != nil {
		return err
	}
	dir := filepath.Dir(pkgPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	f, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	// Read one byte past the size so that a longer stream is caught.
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, m.Size+1))
	if err != nil {
		return fmt.Errorf("packages: put %s/%s: %w", m.Release, m.Platform, err)
	}
	if n != m.Size {
		what := "fewer"
		if n > m.Size {
			what = "more"
		}
		return fmt.Errorf("%w: %s/%s: the stream has %s bytes than the manifest's %d", ErrMismatch, m.Release, m.Platform, what, m.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return fmt.Errorf("%w: %s/%s: sha256 is %s, the manifest says %s", ErrMismatch, m.Release, m.Platform, got, m.SHA256)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	// Manifest first: a package file is only ever visible with its manifest.
	if err = writeFileAtomic(manPath, m.Bytes()); err != nil {
		return err
	}
	if err = os.Rename(tmp, pkgPath); err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	s.forget(pkgPath)
	return syncDir(dir)
}

// Open opens a stored package and returns it with its manifest. Readers
// of one package share one file descriptor (sharedPkg); Close each.
func (s *Store) Open(release, platform string) (ReadAtCloser, Manifest, error) {
	pkgPath, manPath, err := s.paths(release, platform)
	if err != nil {
		return nil, Manifest{}, err
	}
	// The file is opened under the lock: only a package's first reader
	// pays for it (once per package), and no two readers race to open it.
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.open[pkgPath]
	if p == nil {
		f, m, err := s.openFile(release, platform, pkgPath, manPath)
		if err != nil {
			return nil, Manifest{}, err
		}
		if s.open == nil {
			s.open = make(map[string]*sharedPkg)
		}
		p = &sharedPkg{key: pkgPath, f: f, m: m}
		s.open[pkgPath] = p
	}
	p.refs++
	return &pkgReader{s: s, p: p}, p.m, nil
}

// forget makes the next Open of path read the file again (Put replaced
// it); readers of the old file keep it until they close.
func (s *Store) forget(path string) {
	s.mu.Lock()
	delete(s.open, path)
	s.mu.Unlock()
}

func (s *Store) openFile(release, platform, pkgPath, manPath string) (*os.File, Manifest, error) {
	data, err := os.ReadFile(manPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Manifest{}, fmt.Errorf("%w: %s/%s", ErrNotFound, release, platform)
	}
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("packages: open: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, Manifest{}, err
	}
	f, err := os.Open(pkgPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, Manifest{}, fmt.Errorf("%w: %s/%s", ErrNotFound, release, platform)
	}
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("packages: open: %w", err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != m.Size {
		_ = f.Close()
		return nil, Manifest{}, fmt.Errorf("%w: %s/%s: file size differs from the manifest", ErrMismatch, release, platform)
	}
	return f, m, nil
}

func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".man-*")
	if err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("packages: put: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("packages: put: %w", err)
	}
	return nil
}
