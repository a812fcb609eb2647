package wire

import "strconv"

// Msg is one protocol message. AppendTo appends the payload (no header) to
// b and returns the extended slice; use AppendFrame for a whole frame.
// Each concrete type also has Unmarshal(payload) for allocation-free
// decoding into a caller's value.
type Msg interface {
	Type() MsgType
	AppendTo(b []byte) []byte
}

// Hello is the client's first frame. Its layout is frozen across versions.
type Hello struct {
	Magic      [2]byte // must be Magic
	MinVersion uint16
	MaxVersion uint16
	Role       Kind
	MaxFrame   uint32 // largest payload the client accepts; >= PreHelloMaxFrame
}

func (*Hello) Type() MsgType { return TypeHello }

func (m *Hello) AppendTo(b []byte) []byte {
	b = append(b, m.Magic[:]...)
	b = appendU16(b, m.MinVersion)
	b = appendU16(b, m.MaxVersion)
	b = append(b, byte(m.Role))
	return appendU32(b, m.MaxFrame)
}

func (m *Hello) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.Magic[:])
	d.check(m.Magic == Magic, "bad magic")
	m.MinVersion = d.u16()
	m.MaxVersion = d.u16()
	d.check(m.MinVersion <= m.MaxVersion, "min_version above max_version")
	m.Role = d.kind(false)
	m.MaxFrame = d.u32()
	d.check(m.MaxFrame >= PreHelloMaxFrame, "max_frame below 4096")
	return d.finish()
}

// Negotiate picks the highest version both sides support and the frame
// limit both use, or returns unsupported_version. srvMaxFrame is the
// server's own limit. The error is an *Error ready to send.
func (m *Hello) Negotiate(srvMin, srvMax uint16, srvMaxFrame uint32) (version uint16, maxFrame uint32, err error) {
	hi := min(m.MaxVersion, srvMax)
	if hi < max(m.MinVersion, srvMin) {
		return 0, 0, newErr(CodeUnsupportedVer, "no common protocol version: server speaks "+
			strconv.Itoa(int(srvMin))+" to "+strconv.Itoa(int(srvMax)))
	}
	return hi, max(min(m.MaxFrame, srvMaxFrame, MaxFrameLimit), PreHelloMaxFrame), nil
}

// HelloAck accepts a Hello.
type HelloAck struct {
	Version     uint16
	MaxFrame    uint32 // payload limit both sides use from now on
	HeartbeatMs uint32 // how often persistent clients send Heartbeat
}

func (*HelloAck) Type() MsgType { return TypeHelloAck }

func (m *HelloAck) AppendTo(b []byte) []byte {
	b = appendU16(b, m.Version)
	b = appendU32(b, m.MaxFrame)
	return appendU32(b, m.HeartbeatMs)
}

func (m *HelloAck) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.Version = d.u16()
	m.MaxFrame = d.u32()
	d.check(m.MaxFrame >= PreHelloMaxFrame && m.MaxFrame <= MaxFrameLimit, "max_frame out of range")
	m.HeartbeatMs = d.u32()
	return d.finish()
}

// Error (type 0x03) is declared in errors.go: the same struct is the Go
// error and the message. Unknown codes decode fine (a newer peer may send
// them); code 0 is reserved and rejected.

func (*Error) Type() MsgType { return TypeError }

func (e *Error) AppendTo(b []byte) []byte {
	b = appendU16(b, uint16(e.Code))
	b = appendU32(b, e.RetryAfterMs)
	return appendText(b, e.Msg, MaxMessage)
}

func (e *Error) Unmarshal(p []byte) error {
	d := dec{p: p}
	e.Code = ErrCode(d.u16())
	d.check(e.Code != 0, "error code 0")
	e.RetryAfterMs = d.u32()
	e.Msg = d.str(MaxMessage)
	e.Cause = nil
	return d.finish()
}

// Bye ends a connection gracefully. From the server: reconnect after
// RetryAfterMs plus jitter. From a client: it is leaving.
type Bye struct{ RetryAfterMs uint32 }

func (*Bye) Type() MsgType              { return TypeBye }
func (m *Bye) AppendTo(b []byte) []byte { return appendU32(b, m.RetryAfterMs) }

func (m *Bye) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.RetryAfterMs = d.u32()
	return d.finish()
}

// RetryLater tells a client to repeat its request (or reconnect, for a
// passive client) after RetryAfterMs plus jitter.
type RetryLater struct{ RetryAfterMs uint32 }

func (*RetryLater) Type() MsgType              { return TypeRetryLater }
func (m *RetryLater) AppendTo(b []byte) []byte { return appendU32(b, m.RetryAfterMs) }

func (m *RetryLater) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.RetryAfterMs = d.u32()
	return d.finish()
}

// unmarshalEmpty decodes every message without fields.
func unmarshalEmpty(p []byte) error {
	if len(p) != 0 {
		return newErr(CodeBadFrame, "trailing bytes")
	}
	return nil
}
