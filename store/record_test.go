package store

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleRecord() ClientRecord {
	return ClientRecord{
		ID: [16]byte{1, 2, 3}, Kind: 1, Platform: 5, State: 2, Lane: 1, Version: [3]uint16{24, 1, 0},
		Revision: 100, Attempts: 2, Seq: 12345, LastCheckIn: 1767225600000, LeaseDeadline: 0,
		NotBefore: 1767225660000, QueuedAt: 1767225600000, StartedAt: -1, FinishedAt: 0, LastError: "disk full",
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := sampleRecord()
	b := r.AppendBinary(nil)
	var got ClientRecord
	if err := DecodeClientRecord(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v != %+v", got, r)
	}
}

func TestRecordBadInput(t *testing.T) {
	good := sampleRecord()
	enc := good.AppendBinary(nil)
	cases := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, enc[1:]...),
		"truncated": enc[:len(enc)-3],
		"trailing":  append(append([]byte(nil), enc...), 0),
		"long err":  append(append([]byte(nil), enc[:len(enc)-len(good.LastError)-1]...), 0xff, 0x7f),
	}
	for name, b := range cases {
		var r ClientRecord
		if err := DecodeClientRecord(b, &r); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzClientRecord checks that the decoder never panics and that whatever
// it accepts re-encodes to the same bytes (the encoding is canonical).
func FuzzClientRecord(f *testing.F) {
	r := sampleRecord()
	f.Add(r.AppendBinary(nil))
	f.Add((&ClientRecord{}).AppendBinary(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r ClientRecord
		if err := DecodeClientRecord(data, &r); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again := r.AppendBinary(nil)
		var r2 ClientRecord
		if err := DecodeClientRecord(again, &r2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("decode→encode→decode changed the record: %+v vs %+v", r, r2)
		}
		// Varints have several encodings; the first decode may have read
		// a non-minimal one, but re-encoding must be a fixed point.
		if !bytes.Equal(again, r2.AppendBinary(nil)) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}
