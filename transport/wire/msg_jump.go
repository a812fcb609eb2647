package wire

// JumpRequest is an access console asking to jump to a client.
type JumpRequest struct{ ClientID ClientID }

func (*JumpRequest) Type() MsgType              { return TypeJumpRequest }
func (m *JumpRequest) AppendTo(b []byte) []byte { return append(b, m.ClientID[:]...) }

func (m *JumpRequest) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.ClientID[:])
	return d.finish()
}

// JumpAnswer answers a JumpRequest. It repeats the client id so a console
// can keep several requests outstanding.
type JumpAnswer struct {
	ClientID      ClientID
	Result        JumpResult
	QueuePosition uint32 // with upgrade_pending: position in Lane
	Lane          Lane
}

func (*JumpAnswer) Type() MsgType { return TypeJumpAnswer }

func (m *JumpAnswer) AppendTo(b []byte) []byte {
	b = append(b, m.ClientID[:]...)
	b = append(b, byte(m.Result))
	b = appendU32(b, m.QueuePosition)
	return append(b, byte(m.Lane))
}

func (m *JumpAnswer) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.ClientID[:])
	m.Result = JumpResult(d.u8())
	d.check(m.Result.valid(), "unknown jump result")
	m.QueuePosition = d.u32()
	m.Lane = Lane(d.u8())
	d.check(m.Lane.valid(), "unknown lane")
	return d.finish()
}

// JumpReady is pushed to a console once a client it asked for is current
// and online.
type JumpReady struct {
	ClientID ClientID
	Version  Version
}

func (*JumpReady) Type() MsgType { return TypeJumpReady }

func (m *JumpReady) AppendTo(b []byte) []byte {
	b = append(b, m.ClientID[:]...)
	return appendVersion(b, m.Version)
}

func (m *JumpReady) Unmarshal(p []byte) error {
	d := dec{p: p}
	d.array(m.ClientID[:])
	m.Version = d.version()
	return d.finish()
}
