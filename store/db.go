// Package store keeps jumpfleet's durable state in Pebble: the key schema, the
// client record codec, batched synced commits and the recovery scan.
//
// The store knows nothing of upgrade rules; the engine decides and hands the
// store one batch per engine turn. A batch is committed with Sync before any
// request in it is answered, so an acknowledged change survives a crash.
// Because everything waits on those commits, the store reports slow ones,
// slow disk operations and write stalls as log lines and metrics (health.go).
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// Options configures Open. The zero value is usable.
type Options struct {
	// FS replaces the operating system's file system, for tests that simulate
	// crashes (vfs.NewCrashableMem) or keep everything in memory.
	FS vfs.FS
	// CacheSize is Pebble's block cache size in bytes (default 64 MiB).
	CacheSize int64
	// MemTableSize is Pebble's memtable size in bytes (default 64 MiB): large
	// enough that a million-record rollout flushes rarely.
	MemTableSize uint64
	// Log hears slow commits, slow disk operations and write stalls
	// (health.go); nil discards them (the metrics still count them).
	Log *zap.Logger
	// SlowDisk is how long a commit, or a write or sync on the operating
	// system's file system, must take to be reported (default 1 s).
	SlowDisk time.Duration
}

func (o *Options) ensureDefaults() {
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 64 << 20
	}
	if o.SlowDisk == 0 {
		o.SlowDisk = time.Second
	}
}

// DB is a jumpfleet store. Its methods are safe for concurrent use.
type DB struct {
	pdb       *pebble.DB
	health    *health
	fsCloser  io.Closer // the disk-health checker, if any
	closeOnce sync.Once
	closeErr  error
}

// ErrClosed is returned by operations on a closed DB.
var ErrClosed = errors.New("store: closed")

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*DB, error) {
	o.ensureDefaults()
	h := newHealth(o.Log, o.SlowDisk)
	l := h.listener()
	po := &pebble.Options{
		FS:                 o.FS,
		CacheSize:          o.CacheSize,
		MemTableSize:       o.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{},
		EventListener:      &l,
	}
	var fsCloser io.Closer
	if po.FS == nil {
		// The real disk: watch every write and sync on it. (Tests pass
		// their own FS: an in-memory one is never slow.)
		po.FS, fsCloser = vfs.WithDiskHealthChecks(vfs.Default, o.SlowDisk, nil, l.DiskSlow)
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		if fsCloser != nil {
			_ = fsCloser.Close()
		}
		h.close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return &DB{pdb: pdb, health: h, fsCloser: fsCloser}, nil
}

// Close closes the store. It is safe to call more than once.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closeErr = db.pdb.Close()
		if db.fsCloser != nil {
			_ = db.fsCloser.Close()
		}
		db.health.close()
	})
	return db.closeErr
}

// Batch collects writes for one atomic commit.
type Batch struct {
	b   *pebble.Batch
	key []byte
	val []byte
	n   int
}

// NewBatch returns an empty batch.
func (db *DB) NewBatch() *Batch { return &Batch{b: db.pdb.NewBatch()} }

// PutClient adds a client record to the batch.
func (b *Batch) PutClient(r *ClientRecord) {
	b.key = AppendClientKey(b.key[:0], r.ID)
	b.val = r.AppendBinary(b.val[:0])
	_ = b.b.Set(b.key, b.val, nil) // Set copies; an in-memory batch cannot fail
	b.n++
}

// PutMeta adds a JSON metadata value to the batch.
func (b *Batch) PutMeta(name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode meta %s: %w", name, err)
	}
	b.Put(Key(NSMeta, []byte(name)), data)
	return nil
}

// Put adds a raw key/value to the batch.
func (b *Batch) Put(key, val []byte) { _ = b.b.Set(key, val, nil); b.n++ }

// Delete adds a deletion to the batch.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil); b.n++ }

// Len is the number of writes in the batch.
func (b *Batch) Len() int { return b.n }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { b.b.Reset(); b.n = 0 }

// Close releases the batch.
func (b *Batch) Close() { _ = b.b.Close() }

// Commit applies the batch atomically; with sync it returns only once the
// batch is durable (the WAL is fsynced). Concurrent synced commits share
// fsyncs (Pebble's group commit).
func (db *DB) Commit(b *Batch, sync bool) error {
	opt := pebble.NoSync
	if sync {
		opt = pebble.Sync
	}
	t0 := time.Now()
	if err := b.b.Commit(opt); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	db.health.committed(time.Since(t0), sync, b.n)
	return nil
}

// Get returns a copy of the value of key, and whether it exists.
func (db *DB) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store: get: %w", err)
	}
	out := append([]byte(nil), v...)
	_ = closer.Close()
	return out, true, nil
}

// GetMeta decodes the JSON metadata value name into v; found is false when
// it was never written.
func (db *DB) GetMeta(name string, v any) (found bool, err error) {
	data, ok, err := db.Get(Key(NSMeta, []byte(name)))
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("store: decode meta %s: %w", name, err)
	}
	return true, nil
}

// GetClient reads one client record.
func (db *DB) GetClient(id [16]byte) (*ClientRecord, bool, error) {
	data, ok, err := db.Get(ClientKey(id))
	if err != nil || !ok {
		return nil, false, err
	}
	r := new(ClientRecord)
	if err := DecodeClientRecord(data, r); err != nil {
		return nil, false, fmt.Errorf("client %x: %w", id, err)
	}
	return r, true, nil
}

// Scan calls fn for every key with the given prefix, starting at or after
// start (nil for the beginning), in key order, until fn returns false or an
// error. The slices passed to fn are valid only during the call.
func (db *DB) Scan(prefix, start []byte, fn func(key, val []byte) (bool, error)) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	valid := it.First()
	if start != nil {
		valid = it.SeekGE(start)
	}
	for ; valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("store: scan: %w", err)
		}
		more, err := fn(it.Key(), v)
		if err != nil || !more {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// ScanClients decodes every client record in key order and calls fn with
// it. The record is reused between calls: copy what must be kept.
func (db *DB) ScanClients(fn func(*ClientRecord) error) error {
	var r ClientRecord
	return db.Scan([]byte{NSClient}, nil, func(key, val []byte) (bool, error) {
		if err := DecodeClientRecord(val, &r); err != nil {
			return false, fmt.Errorf("client %x: %w", key[1:], err)
		}
		return true, fn(&r)
	})
}

// Checkpoint writes a consistent copy of the store to dir (which must not
// exist), for backups taken before an upgrade.
func (db *DB) Checkpoint(dir string) error {
	if err := db.pdb.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	return nil
}

// Flush flushes memtables to sstables (used by benchmarks and before backups).
func (db *DB) Flush() error { return db.pdb.Flush() }

// quietLogger drops Pebble's informational logs; fatal errors still panic as
// Pebble expects.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any)           {}
func (quietLogger) Errorf(format string, a ...any) {}
func (quietLogger) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
