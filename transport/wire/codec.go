package wire

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// Append helpers. They never fail: caps are the caller's contract (a peer
// rejects an oversize field), except human text, which is truncated.

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func appendVersion(b []byte, v Version) []byte {
	b = appendU16(b, v.Major)
	b = appendU16(b, v.Minor)
	b = appendU16(b, v.Patch)
	return appendU32(b, v.Revision)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// appendText appends human text cut to max bytes at a rune boundary, since
// it is usually built from arbitrary local error strings.
func appendText(b []byte, s string, max int) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	if len(s) > max {
		for max > 0 && !utf8.RuneStart(s[max]) {
			max--
		}
		s = s[:max]
	}
	return appendString(b, s)
}

// dec reads one payload. The first failure sticks in err and turns every
// later read into a zero-value no-op, so message decoders read straight
// through and check once at the end (see finish).
type dec struct {
	p   []byte
	err *Error
}

func (d *dec) fail(c ErrCode, msg string) {
	if d.err == nil {
		d.err = newErr(c, msg)
	}
	d.p = nil
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.p) < n {
		d.fail(CodeBadFrame, "truncated payload")
		return nil
	}
	v := d.p[:n]
	d.p = d.p[n:]
	return v
}

func (d *dec) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *dec) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *dec) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *dec) array(dst []byte) { copy(dst, d.take(len(dst))) }

func (d *dec) version() Version {
	return Version{Major: d.u16(), Minor: d.u16(), Patch: d.u16(), Revision: d.u32()}
}

// length reads a minimal uvarint length no larger than max.
func (d *dec) length(max int) int {
	if d.err != nil {
		return 0
	}
	n, k := binary.Uvarint(d.p)
	switch {
	case k == 0:
		d.fail(CodeBadFrame, "truncated length")
		return 0
	case k < 0:
		d.fail(CodeBadFrame, "length overflows")
		return 0
	case k > 1 && d.p[k-1] == 0:
		// 0x80 0x00 and friends decode fine but break canonical form.
		d.fail(CodeBadFrame, "non-minimal length")
		return 0
	case n > uint64(max):
		d.fail(CodeBadFrame, "field longer than its cap")
		return 0
	}
	d.p = d.p[k:]
	return int(n)
}

// str reads a capped UTF-8 string. The conversion copies, so the result
// never aliases the (pooled) payload.
func (d *dec) str(max int) string {
	v := d.take(d.length(max))
	if d.err != nil || len(v) == 0 {
		return ""
	}
	if !utf8.Valid(v) {
		d.fail(CodeBadFrame, "string is not UTF-8")
		return ""
	}
	return string(v)
}

// bytes reads a capped byte field into a fresh slice (nil when empty).
func (d *dec) bytes(max int) []byte {
	v := d.take(d.length(max))
	if d.err != nil || len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *dec) kind(clientOnly bool) Kind {
	k := Kind(d.u8())
	if d.err == nil && !(k.IsClient() || (!clientOnly && k == KindConsole)) {
		d.fail(CodeBadKind, "unknown kind")
	}
	return k
}

func (d *dec) platform() Platform {
	p := Platform(d.u8())
	if d.err == nil && !p.Valid() {
		d.fail(CodeBadPlatform, "unknown platform")
	}
	return p
}

// check fails with bad_frame unless ok (enum ranges, magic, limits).
func (d *dec) check(ok bool, msg string) {
	if d.err == nil && !ok {
		d.fail(CodeBadFrame, msg)
	}
}

// finish reports the sticky error, or bad_frame if bytes are left over.
func (d *dec) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.p) != 0 {
		return newErr(CodeBadFrame, "trailing bytes")
	}
	return nil
}
