package wire

import (
	"encoding/hex"
	"strconv"
)

// Protocol constants.
const (
	// ProtocolVersion is the only version this package speaks.
	ProtocolVersion uint16 = 1

	// HeaderLen is the frame header: 1 type byte + 3-byte big-endian length.
	HeaderLen = 4
	// MaxFrameLimit is the largest payload the 24-bit length can express.
	MaxFrameLimit = 1<<24 - 1
	// PreHelloMaxFrame bounds payloads before HelloAck, and is the lowest
	// limit a peer may negotiate.
	PreHelloMaxFrame = 4096
	// DefaultMaxFrame is the payload limit a server offers by default.
	DefaultMaxFrame = 64 << 10
	// ChunkOverhead is what a Chunk frame needs besides its data (offset +
	// a uvarint length, rounded up), so MaxChunkData(max) fits one frame.
	ChunkOverhead = 16
)

// Per-field caps in bytes (PROTOCOL.md §2). A longer field is bad_frame.
const (
	MaxToken        = 256
	MaxHostname     = 255
	MaxReleaseID    = 64
	MaxDownloadPath = 512
	MaxManifest     = 16 << 10
	MaxMessage      = 512
)

// Magic opens every Hello.
var Magic = [2]byte{'J', 'F'}

// MaxChunkData is the largest Chunk.data (and ChunkRequest.length) under a
// negotiated payload limit.
func MaxChunkData(maxFrame int) int { return maxFrame - ChunkOverhead }

// MsgType is the one-byte message type of a frame.
type MsgType uint8

// Message types (PROTOCOL.md §4). 0 and unlisted values are invalid.
const (
	TypeHello         MsgType = 0x01
	TypeHelloAck      MsgType = 0x02
	TypeError         MsgType = 0x03
	TypeBye           MsgType = 0x04
	TypeEnroll        MsgType = 0x10
	TypeEnrollOK      MsgType = 0x11
	TypeAuth          MsgType = 0x12
	TypeAuthOK        MsgType = 0x13
	TypeConsoleAuth   MsgType = 0x14
	TypeCheckIn       MsgType = 0x20
	TypeCheckInAnswer MsgType = 0x21
	TypeHeartbeat     MsgType = 0x22
	TypeHeartbeatAck  MsgType = 0x23
	TypeRetryLater    MsgType = 0x24
	TypeUpgradeOffer  MsgType = 0x30
	TypeChunkRequest  MsgType = 0x31
	TypeChunk         MsgType = 0x32
	TypeProgress      MsgType = 0x33
	TypeDone          MsgType = 0x34
	TypeFail          MsgType = 0x35
	TypeJumpRequest   MsgType = 0x40
	TypeJumpAnswer    MsgType = 0x41
	TypeJumpReady     MsgType = 0x42
)

// Direction bits: who may send a message type.
const (
	fromClient = 1 << iota
	fromServer
)

type typeInfo struct {
	name string
	dir  uint8
}

var types = [256]typeInfo{
	TypeHello:         {"Hello", fromClient},
	TypeHelloAck:      {"HelloAck", fromServer},
	TypeError:         {"Error", fromClient | fromServer},
	TypeBye:           {"Bye", fromClient | fromServer},
	TypeEnroll:        {"Enroll", fromClient},
	TypeEnrollOK:      {"EnrollOK", fromServer},
	TypeAuth:          {"Auth", fromClient},
	TypeAuthOK:        {"AuthOK", fromServer},
	TypeConsoleAuth:   {"ConsoleAuth", fromClient},
	TypeCheckIn:       {"CheckIn", fromClient},
	TypeCheckInAnswer: {"CheckInAnswer", fromServer},
	TypeHeartbeat:     {"Heartbeat", fromClient},
	TypeHeartbeatAck:  {"HeartbeatAck", fromServer},
	TypeRetryLater:    {"RetryLater", fromServer},
	TypeUpgradeOffer:  {"UpgradeOffer", fromServer},
	TypeChunkRequest:  {"ChunkRequest", fromClient},
	TypeChunk:         {"Chunk", fromServer},
	TypeProgress:      {"Progress", fromClient},
	TypeDone:          {"Done", fromClient},
	TypeFail:          {"Fail", fromClient},
	TypeJumpRequest:   {"JumpRequest", fromClient},
	TypeJumpAnswer:    {"JumpAnswer", fromServer},
	TypeJumpReady:     {"JumpReady", fromServer},
}

func (t MsgType) String() string {
	if n := types[t].name; n != "" {
		return n
	}
	return "type(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// Valid reports whether t is a v1 message type.
func (t MsgType) Valid() bool { return types[t].name != "" }

// FromClient reports whether a client (agent or console) may send t.
func (t MsgType) FromClient() bool { return types[t].dir&fromClient != 0 }

// FromServer reports whether the server may send t.
func (t MsgType) FromServer() bool { return types[t].dir&fromServer != 0 }

// Kind is the role in Hello and the client kind in Enroll/CheckIn. Values
// 1-3 match engine.Kind.
type Kind uint8

const (
	KindActive   Kind = 1
	KindPassive  Kind = 2
	KindJumpoint Kind = 3
	KindConsole  Kind = 4 // Hello role only
)

var kindNames = [...]string{"", "active", "passive", "jumpoint", "console"}

func (k Kind) String() string {
	if k >= 1 && k <= KindConsole {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// IsClient reports whether k is an agent kind (valid in Enroll/CheckIn).
func (k Kind) IsClient() bool { return k >= KindActive && k <= KindJumpoint }

// Platform is the platform catalogue; the numbers match engine.Platform.
type Platform uint8

const (
	PlatformWindowsX64 Platform = 1
	PlatformWindowsX86 Platform = 2
	PlatformMacOSArm64 Platform = 3
	PlatformMacOSX64   Platform = 4
	PlatformLinuxX64   Platform = 5
	PlatformLinuxArm64 Platform = 6
	numPlatforms                = 7
)

var platformNames = [...]string{"", "windows-x64", "windows-x86", "macos-arm64", "macos-x64", "linux-x64", "linux-arm64"}

// Valid reports whether p is in the catalogue.
func (p Platform) Valid() bool { return p >= 1 && p < numPlatforms }

func (p Platform) String() string {
	if p.Valid() {
		return platformNames[p]
	}
	return "platform(" + strconv.Itoa(int(p)) + ")"
}

// State is a client's upgrade state in CheckInAnswer; matches engine.State.
type State uint8

const (
	StateCurrent   State = 1
	StatePending   State = 2
	StateUpgrading State = 3
	StateFailed    State = 4
)

func (s State) valid() bool { return s >= StateCurrent && s <= StateFailed }

// Lane is a queue lane; matches engine.Lane.
type Lane uint8

const (
	LaneNone   Lane = 0
	LaneJump   Lane = 1
	LaneNormal Lane = 2
)

func (l Lane) valid() bool { return l <= LaneNormal }

// JumpResult answers a JumpRequest.
type JumpResult uint8

const (
	JumpAllowed        JumpResult = 1
	JumpUpgradePending JumpResult = 2
	JumpOffline        JumpResult = 3
	JumpFailed         JumpResult = 4
	JumpUnknown        JumpResult = 5
)

func (r JumpResult) valid() bool { return r >= JumpAllowed && r <= JumpUnknown }

// CheckIn flags: why the client checks in. Informational; other bits are
// reserved (carried, ignored).
const (
	FlagStartup     uint8 = 1 << 0
	FlagConsole     uint8 = 1 << 1 // an access console connected to it
	FlagUser        uint8 = 1 << 2 // asked from the tray icon
	FlagPeriodic    uint8 = 1 << 3 // the 24-hour check-in
	FlagReconnect   uint8 = 1 << 4
	FlagPostUpgrade uint8 = 1 << 5
)

// Version is a site version with its build revision, 10 bytes on the wire.
// The transport converts to and from engine.Version field by field.
type Version struct {
	Major, Minor, Patch uint16
	Revision            uint32
}

func (v Version) String() string {
	s := strconv.Itoa(int(v.Major)) + "." + strconv.Itoa(int(v.Minor)) + "." + strconv.Itoa(int(v.Patch))
	if v.Revision != 0 {
		s += "-r" + strconv.FormatUint(uint64(v.Revision), 10)
	}
	return s
}

// ClientID is a client's 128-bit identity.
type ClientID [16]byte

func (id ClientID) String() string { return hex.EncodeToString(id[:]) }
