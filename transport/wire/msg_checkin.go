package wire

// The hot path: encoders here are a handful of stores into the caller's
// buffer and decoders touch no heap.

// CheckIn reports a client's kind, platform and running version.
type CheckIn struct {
	Kind     Kind // must equal the Hello role
	Platform Platform
	Version  Version
	Flags    uint8 // Flag* bits: why the client checks in
}

func (*CheckIn) Type() MsgType { return TypeCheckIn }

func (m *CheckIn) AppendTo(b []byte) []byte {
	b = append(b, byte(m.Kind), byte(m.Platform))
	b = appendVersion(b, m.Version)
	return append(b, m.Flags)
}

func (m *CheckIn) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.Kind = d.kind(true)
	m.Platform = d.platform()
	m.Version = d.version()
	m.Flags = d.u8()
	return d.finish()
}

// CheckInAnswer tells a client where it stands.
type CheckInAnswer struct {
	State         State
	Target        Version // the version it should run
	QueuePosition uint32  // 0 when not queued
	Lane          Lane
	RetryAfterMs  uint32 // passive clients: when to check in again
}

func (*CheckInAnswer) Type() MsgType { return TypeCheckInAnswer }

func (m *CheckInAnswer) AppendTo(b []byte) []byte {
	b = append(b, byte(m.State))
	b = appendVersion(b, m.Target)
	b = appendU32(b, m.QueuePosition)
	b = append(b, byte(m.Lane))
	return appendU32(b, m.RetryAfterMs)
}

func (m *CheckInAnswer) Unmarshal(p []byte) error {
	d := dec{p: p}
	m.State = State(d.u8())
	d.check(m.State.valid(), "unknown state")
	m.Target = d.version()
	m.QueuePosition = d.u32()
	m.Lane = Lane(d.u8())
	d.check(m.Lane.valid(), "unknown lane")
	m.RetryAfterMs = d.u32()
	return d.finish()
}

// Heartbeat keeps a persistent connection alive; HeartbeatAck answers it.
type Heartbeat struct{}

func (*Heartbeat) Type() MsgType            { return TypeHeartbeat }
func (*Heartbeat) AppendTo(b []byte) []byte { return b }
func (*Heartbeat) Unmarshal(p []byte) error { return unmarshalEmpty(p) }

// HeartbeatAck answers a Heartbeat.
type HeartbeatAck struct{}

func (*HeartbeatAck) Type() MsgType            { return TypeHeartbeatAck }
func (*HeartbeatAck) AppendTo(b []byte) []byte { return b }
func (*HeartbeatAck) Unmarshal(p []byte) error { return unmarshalEmpty(p) }
