package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ClientRecord is the durable form of one client. The engine keeps a compact
// copy of the hot fields in memory and writes the whole record on every state
// change; recovery rebuilds the engine from these records alone.
type ClientRecord struct {
	ID       [16]byte
	Kind     uint8
	Platform uint8
	State    uint8
	Lane     uint8 // 0 when not queued
	Version  [3]uint16
	Revision uint32
	Attempts uint8
	// Seq orders the client inside its lane (FIFO); meaningful only when Lane != 0.
	Seq uint64
	// Times are Unix milliseconds; 0 means unset.
	LastCheckIn   int64
	LeaseDeadline int64 // while upgrading
	NotBefore     int64 // while pending after a failure: retry backoff
	// The client's history: when it was last queued, started, and finished
	// (upgraded or failed). The full event stream goes to NATS.
	QueuedAt   int64
	StartedAt  int64
	FinishedAt int64
	LastError  string
}

// MaxErrorLen caps LastError. Longer input is truncated by the engine before
// it reaches the store, and refused by the decoder.
const MaxErrorLen = 256

const recordVersion = 1

// ErrCorrupt is returned (wrapped) for a record that does not decode.
var ErrCorrupt = errors.New("store: corrupt record")

// AppendBinary appends the encoding of r to b.
func (r *ClientRecord) AppendBinary(b []byte) []byte {
	b = append(b, recordVersion)
	b = append(b, r.ID[:]...)
	b = append(b, r.Kind, r.Platform, r.State, r.Lane, r.Attempts)
	for _, v := range r.Version {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, r.Revision)
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendVarint(b, r.LastCheckIn)
	b = binary.AppendVarint(b, r.LeaseDeadline)
	b = binary.AppendVarint(b, r.NotBefore)
	b = binary.AppendVarint(b, r.QueuedAt)
	b = binary.AppendVarint(b, r.StartedAt)
	b = binary.AppendVarint(b, r.FinishedAt)
	return appendString(b, r.LastError)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeClientRecord decodes data into r. It never panics; bad input gives an
// error wrapping ErrCorrupt.
func DecodeClientRecord(data []byte, r *ClientRecord) error {
	d := decoder{b: data}
	if v := d.byte(); v != recordVersion {
		return d.fail(fmt.Sprintf("unknown record version %d", v))
	}
	copy(r.ID[:], d.bytes(16))
	r.Kind, r.Platform, r.State, r.Lane, r.Attempts = d.byte(), d.byte(), d.byte(), d.byte(), d.byte()
	for i := range r.Version {
		r.Version[i] = d.u16()
	}
	r.Revision = d.u32()
	r.Seq = d.uvarint()
	r.LastCheckIn = d.varint()
	r.LeaseDeadline = d.varint()
	r.NotBefore = d.varint()
	r.QueuedAt = d.varint()
	r.StartedAt = d.varint()
	r.FinishedAt = d.varint()
	r.LastError = d.string(MaxErrorLen)
	if d.err == nil && len(d.b) != 0 {
		return d.fail("trailing bytes")
	}
	return d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(why string) error {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, why)
	}
	d.b = nil
	return d.err
}

func (d *decoder) bytes(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte  { return d.bytes(1)[0] }
func (d *decoder) u16() uint16 { return binary.BigEndian.Uint16(d.bytes(2)) }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.bytes(4)) }

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(max int) string {
	n := d.uvarint()
	if n > uint64(max) {
		d.fail("string too long")
		return ""
	}
	return string(d.bytes(int(n)))
}
