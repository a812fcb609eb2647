package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"jumpfleet/engine"
)

// Store keeps package files in a directory: dir/<release>/<platform>.pkg
// with its manifest beside it in <platform>.json. Files are written to a
// temporary name and renamed into place only after their size and hash
// check, so a reader never sees a partial or wrong package.
type Store struct {
	dir string
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
	return syncDir(dir)
}

// Open opens a stored package and returns it with its manifest.
func (s *Store) Open(release, platform string) (ReadAtCloser, Manifest, error) {
	pkgPath, manPath, err := s.paths(release, platform)
	if err != nil {
		return nil, Manifest{}, err
	}
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
