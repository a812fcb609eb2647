package store

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestDBPutScanMeta(t *testing.T) {
	db, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	for i := 0; i < 10; i++ {
		r := sampleRecord()
		r.ID[15] = byte(i)
		b.PutClient(&r)
	}
	if err := b.PutMeta("settings", map[string]int{"max": 5}); err != nil {
		t.Fatal(err)
	}
	b.Put(Key(NSInstaller, []byte("tok")), []byte("v"))
	if err := db.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	n := 0
	if err := db.ScanClients(func(r *ClientRecord) error {
		if r.ID[15] != byte(n) || r.LastError != "disk full" {
			t.Fatalf("record %d: %+v", n, r)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Fatalf("scanned %d clients, want 10 (other namespaces must not leak in)", n)
	}
	var m map[string]int
	if ok, err := db.GetMeta("settings", &m); !ok || err != nil || m["max"] != 5 {
		t.Fatalf("meta: %v %v %v", ok, err, m)
	}
	if ok, _ := db.GetMeta("missing", &m); ok {
		t.Fatal("missing meta found")
	}
	if _, ok, _ := db.GetClient([16]byte{1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4}); !ok {
		t.Fatal("GetClient missed a record")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}
