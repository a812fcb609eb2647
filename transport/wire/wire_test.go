package wire

import (
	"bytes"
	"crypto/sha256"
	"reflect"
	"testing"
)

var (
	testID     = ClientID{0: 0xde, 1: 0xad, 15: 0x01}
	testTarget = Version{Major: 24, Minor: 3, Patch: 1, Revision: 1234}
)

// samples holds one representative value of every message type, with
// every field set so a dropped or swapped field shows up.
func samples() []Msg {
	sum := sha256.Sum256([]byte("package"))
	return []Msg{
		&Hello{Magic: Magic, MinVersion: 1, MaxVersion: 3, Role: KindConsole, MaxFrame: DefaultMaxFrame},
		&HelloAck{Version: 1, MaxFrame: DefaultMaxFrame, HeartbeatMs: 30000},
		&Error{Code: CodeOverloaded, RetryAfterMs: 2500, Msg: "busy, come back later"},
		&Error{Code: ErrCode(999), Msg: "from a newer peer"},
		&Bye{RetryAfterMs: 10000},
		&Enroll{InstallerToken: "tok-abc", Kind: KindPassive, Platform: PlatformMacOSArm64, Version: testTarget, Hostname: "héllo.example"},
		&EnrollOK{ClientID: testID, Secret: [32]byte{1, 2, 3, 31: 9}},
		&Auth{ClientID: testID, TimestampMs: 1_700_000_000_123, Nonce: [16]byte{7, 15: 7}, MAC: [32]byte{0: 0xaa, 31: 0xbb}},
		&AuthOK{},
		&ConsoleAuth{ConsoleToken: "console-token"},
		&CheckIn{Kind: KindActive, Platform: PlatformWindowsX64, Version: Version{23, 2, 4, 99}, Flags: FlagStartup | FlagReconnect},
		&CheckInAnswer{State: StatePending, Target: testTarget, QueuePosition: 4711, Lane: LaneJump, RetryAfterMs: 60000},
		&Heartbeat{},
		&HeartbeatAck{},
		&RetryLater{RetryAfterMs: 1500},
		&UpgradeOffer{ReleaseID: "site-24.3.1", Platform: PlatformLinuxX64, Target: testTarget, PackageSize: 80 << 20,
			SHA256: sum, Manifest: []byte(`{"release":"site-24.3.1"}`), Signature: [64]byte{0: 1, 63: 2}, LeaseMs: 600000,
			DownloadPath: "/pkg/site-24.3.1/linux-x64"},
		&ChunkRequest{ReleaseID: "site-24.3.1", Platform: PlatformLinuxArm64, Offset: 1 << 33, Length: 65520},
		&Chunk{Offset: 1 << 33, Data: bytes.Repeat([]byte{0x5a}, 1000)},
		&Progress{BytesDone: 123456789},
		&Done{},
		&Fail{Code: CodeHashMismatch, Msg: "sha256 differs"},
		&JumpRequest{ClientID: testID},
		&JumpAnswer{ClientID: testID, Result: JumpUpgradePending, QueuePosition: 1, Lane: LaneJump},
		&JumpReady{ClientID: testID, Version: testTarget},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range samples() {
		t.Run(m.Type().String(), func(t *testing.T) {
			seen[m.Type()] = true
			frame, err := AppendFrame(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := NewReader(bytes.NewReader(frame), MaxFrameLimit).ReadMsg()
			if err != nil {
				t.Fatalf("ReadMsg: %v", err)
			}
			if !reflect.DeepEqual(withoutBuf(got), m) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, m)
			}
			if again := got.AppendTo(nil); !bytes.Equal(again, frame[HeaderLen:]) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, frame[HeaderLen:])
			}
		})
	}
	for i := range 256 {
		if typ := MsgType(i); typ.Valid() && !seen[typ] {
			t.Errorf("no sample for %v", typ)
		}
	}
}

// The spec promises fixed sizes for the small messages; keep them honest.
func TestFixedSizes(t *testing.T) {
	want := map[MsgType]int{
		TypeHello: 11, TypeHelloAck: 10, TypeAuth: 72, TypeCheckIn: 13, TypeCheckInAnswer: 20,
		TypeJumpAnswer: 22, TypeJumpReady: 26, TypeHeartbeat: 0, TypeEnrollOK: 48,
	}
	for _, m := range samples() {
		if n, ok := want[m.Type()]; ok {
			if got := len(m.AppendTo(nil)); got != n {
				t.Errorf("%v payload is %d bytes, spec says %d", m.Type(), got, n)
			}
		}
	}
}

func TestDirections(t *testing.T) {
	for _, typ := range []MsgType{TypeHello, TypeEnroll, TypeAuth, TypeCheckIn, TypeChunkRequest, TypeJumpRequest} {
		if !typ.FromClient() || typ.FromServer() {
			t.Errorf("%v: want client-only", typ)
		}
	}
	for _, typ := range []MsgType{TypeHelloAck, TypeUpgradeOffer, TypeChunk, TypeJumpReady, TypeRetryLater} {
		if typ.FromClient() || !typ.FromServer() {
			t.Errorf("%v: want server-only", typ)
		}
	}
	if !TypeError.FromClient() || !TypeBye.FromServer() {
		t.Error("Error and Bye go both ways")
	}
}

func TestNegotiate(t *testing.T) {
	h := &Hello{Magic: Magic, MinVersion: 1, MaxVersion: 4, Role: KindActive, MaxFrame: 1 << 20}
	v, max, err := h.Negotiate(1, 1, DefaultMaxFrame)
	if err != nil || v != 1 || max != DefaultMaxFrame {
		t.Fatalf("got v%d max %d err %v", v, max, err)
	}
	h = &Hello{Magic: Magic, MinVersion: 2, MaxVersion: 3, Role: KindActive, MaxFrame: PreHelloMaxFrame}
	if _, _, err := h.Negotiate(1, 1, DefaultMaxFrame); CodeOf(err) != CodeUnsupportedVer {
		t.Fatalf("want unsupported_version, got %v", err)
	}
}

func TestAuthMAC(t *testing.T) {
	secret, nonce, bind := [32]byte{1}, [16]byte{2}, [32]byte{3}
	a := AuthMAC(&secret, testID, 42, &nonce, &bind)
	if a != AuthMAC(&secret, testID, 42, &nonce, &bind) {
		t.Fatal("not deterministic")
	}
	other := [32]byte{4} // another connection's exporter value
	if a == AuthMAC(&secret, testID, 42, &nonce, &other) {
		t.Fatal("MAC does not depend on the channel binding")
	}
	if a == AuthMAC(&secret, testID, 43, &nonce, &bind) {
		t.Fatal("MAC does not depend on the timestamp")
	}
}

func TestErrCodeCatalogue(t *testing.T) {
	names := map[string]ErrCode{}
	for c := range codes {
		n := c.String()
		if prev, dup := names[n]; dup {
			t.Errorf("codes %d and %d share the name %q", prev, c, n)
		}
		names[n] = c
	}
	if CodeFrameTooLarge.String() != "frame_too_large" || ErrCode(999).String() != "code(999)" {
		t.Error("String")
	}
	if !CodeBadFrame.Closes() || CodeBadRange.Closes() {
		t.Error("Closes")
	}
}

// Long human text is cut at a rune boundary, and the result still decodes.
func TestTextTruncation(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), MaxMessage)) // 2 bytes per rune
	e := &Error{Code: CodeInternal, Msg: long + "\xff"}
	m, err := Decode(TypeError, e.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.(*Error).Msg; len(got) != MaxMessage || got != long[:MaxMessage] {
		t.Fatalf("truncated to %d bytes", len(got))
	}
}

// withoutBuf is m as its fields say, without a decoded Chunk's pooled
// buffer (an implementation detail two equal chunks do not share).
func withoutBuf(m Msg) Msg {
	if c, ok := m.(*Chunk); ok {
		return &Chunk{Offset: c.Offset, Data: c.Data}
	}
	return m
}

// TestChunkRelease: a decoded chunk's buffer goes back to the pool once,
// Data is gone afterwards, and the next chunk decoded does not see the
// old bytes past its own length. Release on an encoded chunk or twice is
// harmless.
func TestChunkRelease(t *testing.T) {
	enc := (&Chunk{Offset: 7, Data: bytes.Repeat([]byte{0xaa}, 1000)}).AppendTo(nil)
	var c Chunk
	if err := c.Unmarshal(enc); err != nil {
		t.Fatal(err)
	}
	if c.Offset != 7 || len(c.Data) != 1000 || c.Data[999] != 0xaa {
		t.Fatalf("decoded %d bytes at %d", len(c.Data), c.Offset)
	}
	c.Release()
	c.Release()
	if c.Data != nil {
		t.Fatal("Data kept after Release")
	}
	if err := c.Unmarshal((&Chunk{Offset: 8, Data: []byte{1, 2, 3}}).AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Data, []byte{1, 2, 3}) {
		t.Fatalf("second chunk decoded as %x", c.Data)
	}
	// A bad frame leaves no buffer behind and no Data.
	if err := c.Unmarshal(append(enc, 0)); err == nil || c.Data != nil || c.buf != nil {
		t.Fatalf("trailing byte: err %v, %d bytes kept", err, len(c.Data))
	}
	(&Chunk{Data: []byte{1}}).Release()
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := c.Unmarshal(enc); err != nil {
			t.Fatal(err)
		}
		c.Release()
	}); n != 0 {
		t.Errorf("decode and release of a chunk: %.1f allocations, want 0", n)
	}
}
