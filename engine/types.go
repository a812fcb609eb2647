package engine

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// ClientID is a client's 128-bit identity, assigned at enrollment.
type ClientID [16]byte

func (id ClientID) String() string { return hex.EncodeToString(id[:]) }

// ParseClientID parses the 32-hex-digit form produced by String.
func ParseClientID(s string) (ClientID, error) {
	var id ClientID
	if len(s) != 32 {
		return id, Errorf(CodeUnknownClient, "client id %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, Errorf(CodeUnknownClient, "client id %q: %v", s, err)
	}
	return id, nil
}

// Kind is the kind of agent behind a client record.
type Kind uint8

const (
	KindActive   Kind = 1 // active Jump client: persistent connection
	KindPassive  Kind = 2 // passive Jump client: online only while checked in
	KindJumpoint Kind = 3 // Jumpoint: persistent connection, gateway to many hosts
	numKinds          = 4
)

var kindNames = [...]string{"", "active", "passive", "jumpoint"}

func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Valid reports whether k is one of the known kinds.
func (k Kind) Valid() bool { return k >= KindActive && k <= KindJumpoint }

// Persistent reports whether the kind keeps a connection open (and so is
// online for as long as the connection is up).
func (k Kind) Persistent() bool { return k == KindActive || k == KindJumpoint }

// ParseKind parses "active", "passive" or "jumpoint".
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if i > 0 && n == s {
			return Kind(i), nil
		}
	}
	return 0, Errorf(CodeBadKind, "unknown client kind %q (want active, passive or jumpoint)", s)
}

// Platform is one entry of the fixed platform catalogue. Releases carry one
// package per platform; a release naming a platform outside the catalogue
// is refused.
type Platform uint8

const (
	PlatformWindowsX64 Platform = 1
	PlatformWindowsX86 Platform = 2
	PlatformMacOSArm64 Platform = 3
	PlatformMacOSX64   Platform = 4
	PlatformLinuxX64   Platform = 5
	PlatformLinuxArm64 Platform = 6
	NumPlatforms                = 7
)

var platformNames = [...]string{"", "windows-x64", "windows-x86", "macos-arm64", "macos-x64", "linux-x64", "linux-arm64"}

func (p Platform) String() string {
	if p.Valid() {
		return platformNames[p]
	}
	return "platform(" + strconv.Itoa(int(p)) + ")"
}

// Valid reports whether p is in the catalogue.
func (p Platform) Valid() bool { return p >= 1 && p < NumPlatforms }

// Platforms lists the catalogue in order.
func Platforms() []Platform {
	ps := make([]Platform, 0, NumPlatforms-1)
	for p := Platform(1); p < NumPlatforms; p++ {
		ps = append(ps, p)
	}
	return ps
}

// ParsePlatform parses a catalogue name such as "windows-x64".
func ParsePlatform(s string) (Platform, error) {
	for i, n := range platformNames {
		if i > 0 && n == s {
			return Platform(i), nil
		}
	}
	return 0, Errorf(CodeBadPlatform, "unknown platform %q (want one of %s)", s, strings.Join(platformNames[1:], ", "))
}

// Version is a site software version with its build revision. Two versions
// are the same only when all four fields are equal.
type Version struct {
	Major, Minor, Patch uint16
	Revision            uint32
}

// IsZero reports whether v is unset.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Revision != 0 {
		s += "-r" + strconv.FormatUint(uint64(v.Revision), 10)
	}
	return s
}

// ParseVersion parses "MAJOR.MINOR.PATCH" with an optional "-rREVISION".
func ParseVersion(s string) (Version, error) {
	var v Version
	main, rev, hasRev := strings.Cut(s, "-r")
	parts := strings.Split(main, ".")
	if len(parts) != 3 {
		return v, Errorf(CodeBadVersion, "version %q: want MAJOR.MINOR.PATCH[-rREVISION]", s)
	}
	var f [3]uint16
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '0') {
			return v, Errorf(CodeBadVersion, "version %q: component %q is not a number 0..65535", s, p)
		}
		f[i] = uint16(n)
	}
	v.Major, v.Minor, v.Patch = f[0], f[1], f[2]
	if hasRev {
		n, err := strconv.ParseUint(rev, 10, 32)
		if err != nil || n == 0 || rev[0] == '0' {
			return Version{}, Errorf(CodeBadVersion, "version %q: revision %q is not a number", s, rev)
		}
		v.Revision = uint32(n)
	}
	return v, nil
}

// State is a client's upgrade state. Online/offline is kept apart from it.
type State uint8

const (
	StateCurrent   State = 1 // runs the target version (or no site release asks otherwise)
	StatePending   State = 2 // outdated and queued ("Upgrade pending")
	StateUpgrading State = 3 // holds a slot under a lease
	StateFailed    State = 4 // retries exhausted; waits for an admin retry
	numStates            = 5
)

var stateNames = [...]string{"", "current", "pending", "upgrading", "failed"}

func (s State) String() string {
	if s >= 1 && s < numStates {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// ParseState parses a state name.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == s {
			return State(i), nil
		}
	}
	return 0, Errorf(CodeBadRequest, "unknown state %q", s)
}

// Lane is a queue lane. The jump lane is served before the normal lane.
type Lane uint8

const (
	LaneNone   Lane = 0
	LaneJump   Lane = 1
	LaneNormal Lane = 2
)

func (l Lane) String() string {
	switch l {
	case LaneJump:
		return "jump"
	case LaneNormal:
		return "normal"
	}
	return "none"
}
