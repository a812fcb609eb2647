package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary byte streams through Reader and Decode. For
// every frame accepted it checks that encoding reproduces the payload byte
// for byte (the codec is canonical) and that decoding that again gives an
// equal message. Every rejection must carry a catalogued code.
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		fr, err := AppendFrame(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
	}
	all := []byte(nil)
	for _, m := range samples() {
		all, _ = AppendFrame(all, m)
	}
	f.Add(all) // several frames in one stream
	f.Add([]byte{byte(TypeChunk), 0xff, 0xff, 0xff})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), DefaultMaxFrame)
		for {
			err := r.ReadFrame(func(typ MsgType, p []byte) error {
				m, err := Decode(typ, p)
				if err != nil {
					return err
				}
				if m.Type() != typ {
					t.Fatalf("decoded %v as %v", typ, m.Type())
				}
				enc := m.AppendTo(nil)
				if !bytes.Equal(enc, p) {
					t.Fatalf("%v: re-encoding differs\n in  %x\n out %x", typ, p, enc)
				}
				m2, err := Decode(typ, enc)
				if err != nil {
					t.Fatalf("%v: re-decoding failed: %v", typ, err)
				}
				if !reflect.DeepEqual(withoutBuf(m), withoutBuf(m2)) {
					t.Fatalf("%v: round trip\n %#v\n %#v", typ, m, m2)
				}
				return nil
			})
			if err == io.EOF {
				return
			}
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || !e.Code.Known() {
					t.Fatalf("rejection without a catalogued code: %v", err)
				}
				return
			}
		}
	})
}
