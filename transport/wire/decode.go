package wire

// unmarshaler is what every concrete message implements.
type unmarshaler interface {
	Msg
	Unmarshal(payload []byte) error
}

// New returns a zero message of type t, or nil if t is not a v1 type.
func New(t MsgType) Msg {
	if m := newMsg(t); m != nil {
		return m
	}
	return nil // avoid a typed nil inside the interface
}

func newMsg(t MsgType) unmarshaler {
	switch t {
	case TypeHello:
		return new(Hello)
	case TypeHelloAck:
		return new(HelloAck)
	case TypeError:
		return new(Error)
	case TypeBye:
		return new(Bye)
	case TypeEnroll:
		return new(Enroll)
	case TypeEnrollOK:
		return new(EnrollOK)
	case TypeAuth:
		return new(Auth)
	case TypeAuthOK:
		return new(AuthOK)
	case TypeConsoleAuth:
		return new(ConsoleAuth)
	case TypeCheckIn:
		return new(CheckIn)
	case TypeCheckInAnswer:
		return new(CheckInAnswer)
	case TypeHeartbeat:
		return new(Heartbeat)
	case TypeHeartbeatAck:
		return new(HeartbeatAck)
	case TypeRetryLater:
		return new(RetryLater)
	case TypeUpgradeOffer:
		return new(UpgradeOffer)
	case TypeChunkRequest:
		return new(ChunkRequest)
	case TypeChunk:
		return new(Chunk)
	case TypeProgress:
		return new(Progress)
	case TypeDone:
		return new(Done)
	case TypeFail:
		return new(Fail)
	case TypeJumpRequest:
		return new(JumpRequest)
	case TypeJumpAnswer:
		return new(JumpAnswer)
	case TypeJumpReady:
		return new(JumpReady)
	}
	return nil
}

// Decode decodes one payload of type t into a new message. The result
// never aliases payload. Every failure is an *Error with a stable code:
// bad_frame for an unknown type or malformed payload, bad_kind and
// bad_platform for those enums. Hot paths decode into a reused value with
// the concrete type's Unmarshal instead, which allocates nothing.
func Decode(t MsgType, payload []byte) (Msg, error) {
	m := newMsg(t)
	if m == nil {
		return nil, newErr(CodeBadFrame, "unknown message type")
	}
	if err := m.Unmarshal(payload); err != nil {
		return nil, err
	}
	return m, nil
}
