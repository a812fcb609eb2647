package wire

import (
	"bytes"
	"testing"
)

var benchCheckIn = CheckIn{Kind: KindActive, Platform: PlatformWindowsX64, Version: testTarget, Flags: FlagReconnect}

func BenchmarkEncodeCheckIn(b *testing.B) {
	m := &benchCheckIn
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendFrame(buf[:0], m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeCheckIn(b *testing.B) {
	p := benchCheckIn.AppendTo(nil)
	var m CheckIn
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := m.Unmarshal(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCheckInGeneric is the convenience path: one allocation
// for the returned message.
func BenchmarkDecodeCheckInGeneric(b *testing.B) {
	p := benchCheckIn.AppendTo(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(TypeCheckIn, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadFrameCheckIn is what a session does per check-in: header,
// pooled payload, Unmarshal into a reused value.
func BenchmarkReadFrameCheckIn(b *testing.B) {
	fr, _ := AppendFrame(nil, &benchCheckIn)
	src := bytes.NewReader(nil)
	r := NewReader(src, DefaultMaxFrame)
	var m CheckIn
	decode := func(_ MsgType, p []byte) error { return m.Unmarshal(p) }
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(fr)
		if err := r.ReadFrame(decode); err != nil {
			b.Fatal(err)
		}
	}
}

// The hot path must not allocate: encoding CheckIn, CheckInAnswer and
// Heartbeat into a reused buffer, and reading + decoding a CheckIn.
func TestHotPathAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	ans := &CheckInAnswer{State: StatePending, Target: testTarget, QueuePosition: 7, Lane: LaneNormal}
	hb := &Heartbeat{}
	ci := &benchCheckIn
	if n := testing.AllocsPerRun(100, func() {
		buf, _ = AppendFrame(buf[:0], ci)
		buf, _ = AppendFrame(buf, ans)
		buf, _ = AppendFrame(buf, hb)
	}); n != 0 {
		t.Errorf("encoding allocates %.1f times", n)
	}
	fr, _ := AppendFrame(nil, ci)
	src := bytes.NewReader(nil)
	r := NewReader(src, DefaultMaxFrame)
	var m CheckIn
	decode := func(_ MsgType, p []byte) error { return m.Unmarshal(p) }
	if n := testing.AllocsPerRun(100, func() {
		src.Reset(fr)
		if err := r.ReadFrame(decode); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("reading a CheckIn allocates %.1f times", n)
	}
}
