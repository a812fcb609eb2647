package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// frame builds a raw frame without any validation.
func frame(t MsgType, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(t), byte(n >> 16), byte(n >> 8), byte(n)}, payload...)
}

func payloadOf(m Msg) []byte { return m.AppendTo(nil) }

func wantCode(t *testing.T, err error, code ErrCode) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error %v, got %v", code, err)
	}
	if e.Code != code {
		t.Fatalf("want code %v, got %v (%v)", code, e.Code, err)
	}
}

func TestBadStreams(t *testing.T) {
	checkIn := payloadOf(&CheckIn{Kind: KindActive, Platform: PlatformLinuxX64, Version: testTarget})
	cases := []struct {
		name string
		in   []byte
		max  int
		code ErrCode
	}{
		{"garbage (an HTTP request)", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), DefaultMaxFrame, CodeBadFrame},
		{"TLS record on a plain socket", []byte{0x16, 0x03, 0x01, 0x02, 0x00}, DefaultMaxFrame, CodeBadFrame},
		{"type 0", frame(0, nil), DefaultMaxFrame, CodeBadFrame},
		{"unknown type", frame(0x99, []byte{1}), DefaultMaxFrame, CodeBadFrame},
		{"truncated header", []byte{byte(TypeCheckIn), 0}, DefaultMaxFrame, CodeBadFrame},
		{"truncated payload", frame(TypeCheckIn, checkIn)[:9], DefaultMaxFrame, CodeBadFrame},
		{"oversized length prefix", []byte{byte(TypeChunk), 0xff, 0xff, 0xff}, DefaultMaxFrame, CodeFrameTooLarge},
		{"above pre-hello limit", frame(TypeHello, make([]byte, PreHelloMaxFrame+1)), PreHelloMaxFrame, CodeFrameTooLarge},
		{"trailing bytes", frame(TypeCheckIn, append(checkIn, 0)), DefaultMaxFrame, CodeBadFrame},
		{"short fixed payload", frame(TypeCheckIn, checkIn[:12]), DefaultMaxFrame, CodeBadFrame},
		{"payload on empty message", frame(TypeHeartbeat, []byte{0}), DefaultMaxFrame, CodeBadFrame},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(c.in), c.max).ReadMsg()
			wantCode(t, err, c.code)
		})
	}
}

// An oversized or unknown frame is refused from its header alone: nothing
// of the payload is read, let alone buffered.
func TestRefusedBeforePayload(t *testing.T) {
	for _, hdr := range [][]byte{{byte(TypeChunk), 0xff, 0xff, 0xff}, {0x99, 0, 0, 1}} {
		r := bytes.NewReader(append(hdr, make([]byte, 1<<20)...))
		_, err := NewReader(r, DefaultMaxFrame).ReadMsg()
		if err == nil {
			t.Fatal("accepted")
		}
		if read := int(r.Size()) - r.Len(); read != HeaderLen {
			t.Fatalf("read %d bytes, want only the header", read)
		}
	}
}

func TestTruncatedWrapsEOF(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte{byte(TypeBye), 0, 0, 4, 1}), DefaultMaxFrame).ReadMsg()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("want io.ErrUnexpectedEOF inside, got %v", err)
	}
	// A clean end between frames is plain io.EOF, not an error code.
	if _, err := NewReader(bytes.NewReader(nil), DefaultMaxFrame).ReadMsg(); err != io.EOF {
		t.Fatalf("want io.EOF, got %v", err)
	}
}

// Deadlines and resets must reach the caller unchanged, not as bad_frame.
func TestIOErrorsPassThrough(t *testing.T) {
	r := io.MultiReader(bytes.NewReader([]byte{byte(TypeBye), 0}), errReader{os.ErrDeadlineExceeded})
	_, err := NewReader(r, DefaultMaxFrame).ReadMsg()
	if !errors.Is(err, os.ErrDeadlineExceeded) || CodeOf(err) != CodeInternal {
		t.Fatalf("got %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestBadPayloads(t *testing.T) {
	v := appendVersion(nil, testTarget)
	long := func(n int) string { return strings.Repeat("a", n) }
	hello := func(magic string, minV, maxV uint16, role Kind, max uint32) []byte {
		return (&Hello{Magic: [2]byte{magic[0], magic[1]}, MinVersion: minV, MaxVersion: maxV, Role: role, MaxFrame: max}).AppendTo(nil)
	}
	cases := []struct {
		name string
		typ  MsgType
		p    []byte
		code ErrCode
	}{
		{"bad magic", TypeHello, hello("HT", 1, 1, KindActive, DefaultMaxFrame), CodeBadFrame},
		{"min above max", TypeHello, hello("JF", 2, 1, KindActive, DefaultMaxFrame), CodeBadFrame},
		{"tiny max_frame", TypeHello, hello("JF", 1, 1, KindActive, 100), CodeBadFrame},
		{"hello role 0", TypeHello, hello("JF", 1, 1, 0, DefaultMaxFrame), CodeBadKind},
		{"helloack max_frame too big", TypeHelloAck, []byte{0, 1, 0x01, 0, 0, 0, 0, 0, 0, 0}, CodeBadFrame},
		{"checkin kind 0", TypeCheckIn, append(append([]byte{0, 1}, v...), 0), CodeBadKind},
		{"checkin kind console", TypeCheckIn, append(append([]byte{4, 1}, v...), 0), CodeBadKind},
		{"checkin platform 9", TypeCheckIn, append(append([]byte{1, 9}, v...), 0), CodeBadPlatform},
		{"answer state 0", TypeCheckInAnswer, payloadOf(&CheckInAnswer{State: 0, Lane: LaneNone}), CodeBadFrame},
		{"answer lane 3", TypeCheckInAnswer, payloadOf(&CheckInAnswer{State: StateCurrent, Lane: 3}), CodeBadFrame},
		{"jump result 9", TypeJumpAnswer, payloadOf(&JumpAnswer{Result: 9}), CodeBadFrame},
		{"installer token over cap", TypeEnroll, payloadOf(&Enroll{InstallerToken: long(MaxToken + 1), Kind: KindActive, Platform: 1}), CodeBadFrame},
		{"hostname over cap", TypeEnroll, payloadOf(&Enroll{Kind: KindActive, Platform: 1, Hostname: long(MaxHostname + 1)}), CodeBadFrame},
		{"release id over cap", TypeChunkRequest, payloadOf(&ChunkRequest{ReleaseID: long(MaxReleaseID + 1), Platform: 1}), CodeBadFrame},
		{"manifest over cap", TypeUpgradeOffer, payloadOf(&UpgradeOffer{Platform: 1, Manifest: make([]byte, MaxManifest+1)}), CodeBadFrame},
		{"console token not UTF-8", TypeConsoleAuth, []byte{2, 0xc3, 0x28}, CodeBadFrame},
		{"non-minimal uvarint", TypeConsoleAuth, []byte{0x81, 0x00, 'a'}, CodeBadFrame},
		{"uvarint overflow", TypeConsoleAuth, bytes.Repeat([]byte{0xff}, 11), CodeBadFrame},
		{"length beyond payload", TypeConsoleAuth, []byte{5, 'a'}, CodeBadFrame},
		{"error code 0", TypeError, []byte{0, 0, 0, 0, 0, 0, 0}, CodeBadFrame},
		{"fail code 0", TypeFail, []byte{0, 0, 0}, CodeBadFrame},
		{"unknown type", MsgType(0x7f), nil, CodeBadFrame},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Decode(c.typ, c.p)
			if m != nil {
				t.Fatalf("returned a message with the error: %#v", m)
			}
			wantCode(t, err, c.code)
		})
	}
}

func TestWriterRefusesOversize(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, PreHelloMaxFrame)
	err := w.WriteMsg(&Chunk{Data: make([]byte, PreHelloMaxFrame)})
	wantCode(t, err, CodeFrameTooLarge)
	if out.Len() != 0 {
		t.Fatal("wrote part of a refused frame")
	}
	w.SetMaxFrame(DefaultMaxFrame)
	if err := w.WriteMsg(&Chunk{Data: make([]byte, MaxChunkData(DefaultMaxFrame))}); err != nil {
		t.Fatalf("a full chunk must fit the frame: %v", err)
	}
	if _, err := AppendFrame(nil, &Chunk{Data: make([]byte, MaxFrameLimit)}); CodeOf(err) != CodeFrameTooLarge {
		t.Fatalf("AppendFrame above the 24-bit limit: %v", err)
	}
}

// A decode failure is itself a sendable Error message.
func TestDecodeErrorIsSendable(t *testing.T) {
	_, err := Decode(TypeCheckIn, []byte{1})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	f, err := AppendFrame(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewReader(bytes.NewReader(f), DefaultMaxFrame).ReadMsg()
	if err != nil || got.(*Error).Code != CodeBadFrame {
		t.Fatalf("got %v, %v", got, err)
	}
}
