package loadtest

import (
	"context"
	"time"

	"jumpfleet/engine"
)

// Dialer is what the fleet needs from a broker's client side. An
// implementation speaks one protocol (TLS, QUIC, HTTPS, or in process) and
// spreads its connections over whatever source addresses it was given.
type Dialer interface {
	// Enroll redeems an installer token for a new agent and returns its
	// identity and an authenticated connection.
	Enroll(ctx context.Context, installer string, a AgentSpec) (Identity, AgentConn, error)
	// Dial reconnects an enrolled agent.
	Dial(ctx context.Context, id Identity) (AgentConn, error)
	// DialConsole connects an access console.
	DialConsole(ctx context.Context, token string) (ConsoleConn, error)
}

// AgentSpec is what an agent says about itself at enrollment.
type AgentSpec struct {
	Kind     engine.Kind
	Platform engine.Platform
	Version  engine.Version
}

// Identity is what an agent keeps between connections.
type Identity struct {
	ID       engine.ClientID
	Secret   [32]byte
	Kind     engine.Kind
	Platform engine.Platform
}

// CheckIn flags, as in the wire protocol (why the agent checks in).
const (
	FlagStartup     uint8 = 1 << 0
	FlagConsole     uint8 = 1 << 1
	FlagUser        uint8 = 1 << 2
	FlagPeriodic    uint8 = 1 << 3
	FlagReconnect   uint8 = 1 << 4
	FlagPostUpgrade uint8 = 1 << 5
)

// Answer is the broker's reply to a check-in.
type Answer struct {
	State      engine.State
	Target     engine.Version
	Position   int
	Lane       engine.Lane
	RetryAfter time.Duration
}

// Offer is an upgrade pushed to an agent.
type Offer struct {
	Release string
	Target  engine.Version
	Size    int64
	Lease   time.Duration
	// Opaque is the implementation's own handle (the wire offer), given
	// back to Fetch.
	Opaque any
}

// AgentConn is one authenticated agent connection. Calls are made by one
// goroutine (the agent's); Offers and Closed may be watched meanwhile.
type AgentConn interface {
	CheckIn(ctx context.Context, v engine.Version, flags uint8) (Answer, error)
	// Heartbeat keeps a persistent connection alive (and measures it).
	Heartbeat(ctx context.Context) error
	// Offers delivers the broker's upgrade pushes.
	Offers() <-chan Offer
	// Fetch downloads the offered package and verifies its size, hash and
	// signature, reporting progress as it goes. An error means the package
	// must not be installed.
	Fetch(ctx context.Context, o Offer) error
	// Done reports the package installed (success is the next check-in on
	// the target version); Fail reports a failed attempt.
	Done(ctx context.Context) error
	Fail(ctx context.Context, code uint16, msg string) error
	// Closed is closed when the connection ends from the broker's side
	// (restart, Bye, error); RetryAfter then says when to come back (0:
	// the agent's own backoff decides).
	Closed() <-chan struct{}
	RetryAfter() time.Duration
	// Close ends the connection from the agent's side (a passive client
	// leaving). Safe to call twice.
	Close() error
}

// ConsoleConn is an access console's connection.
type ConsoleConn interface {
	// Jump asks to jump to a client; JumpUpgradePending means it was
	// refused and the client moved to the front of the queue.
	Jump(ctx context.Context, id engine.ClientID) (engine.JumpResult, error)
	// Ready delivers the clients that became current after a jump.
	Ready() <-chan engine.ClientID
	Close() error
}

// Control is what the admin does to a broker during a run.
type Control interface {
	// Installer creates an enrollment token for kind.
	Installer(ctx context.Context, kind engine.Kind) (string, error)
	// ConsoleToken creates an access console token.
	ConsoleToken(ctx context.Context, name string) (string, error)
	// Configure sets max_concurrent, the start rate (its burst is one
	// second of starts) and the lease time, and pauses or resumes upgrade
	// starts.
	Configure(ctx context.Context, maxConcurrent int, startsPerSec float64, lease time.Duration, paused bool) error
	// PublishSite publishes a site release setting version v on platform p,
	// with a signed package of size bytes.
	PublishSite(ctx context.Context, id string, p engine.Platform, v engine.Version, size int) error
	// Status reads the fleet's progress.
	Status(ctx context.Context) (engine.Status, error)
	// Process reads the broker process's CPU seconds and resident memory;
	// ok is false when the broker runs in this process (not separable).
	Process(ctx context.Context) (cpuSeconds, rssBytes float64, ok bool, err error)
}

// Restarter is a broker that a storm scenario can restart: Restart returns
// once the broker accepts connections again, having dropped every one.
type Restarter interface {
	Restart(ctx context.Context) error
}
