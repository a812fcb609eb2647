package loadtest

import (
	"fmt"
	"io"
	"math"
	"os/exec"
	"time"

	"jumpfleet/engine"
)

// Scenario names.
const (
	ScenarioRollout = "rollout" // publish a release, watch the fleet converge
	ScenarioStorm   = "storm"   // every active client reconnects after a broker restart
	ScenarioJump    = "jump"    // consoles jump to outdated clients while every slot is busy
	ScenarioSteady  = "steady"  // check-ins only, to measure their cost
)

// Config is one run. It is validated and defaulted in one place (Validate).
type Config struct {
	Scenario string
	Protocol string // informational here: the Dialer speaks it

	Active, Passive, Jumpoints, Consoles int

	// MaxConcurrent is the broker's max_concurrent for the run.
	MaxConcurrent int
	// StartsPerSec is the broker's starts_per_sec for the run (its start
	// burst is one second of it, at most max_concurrent). 0: unthrottled
	// (the most the API allows), so that max_concurrent alone shapes the
	// rollout, as the makespan bound assumes. Unpaced, a release's first
	// wave is max_concurrent downloads and reconnects in one instant; on
	// a loaded broker 2·max_concurrent/upgrade_time paces it over half an
	// upgrade time (bench/RESULTS.md, the 100,000-client QUIC rollout).
	// It is not the default because a start rate binds for passive
	// clients: they arrive at their own check-in times and an overdue one
	// that finds no token before its linger ends waits a whole period
	// (6,690 of 85,000 later than one period at 400/s in the TLS rollout).
	StartsPerSec float64
	// UpgradeTime is the mean time an agent takes to install a package
	// once fetched; each upgrade takes UpgradeTime·(1±UpgradeJitter),
	// uniformly.
	UpgradeTime   time.Duration
	UpgradeJitter float64
	// FailRate is the probability that an upgrade attempt fails.
	FailRate float64
	// PackageSize is the size in bytes of the package the run publishes.
	PackageSize int

	// Duration bounds steady and jump runs; Timeout bounds how long a
	// rollout or storm may take to converge.
	Duration time.Duration
	Timeout  time.Duration

	// Interval is how often an active client checks in during steady (a
	// closed loop: the next check-in goes Interval after the answer).
	Interval time.Duration
	// PassivePeriod is the passive clients' periodic check-in (24 h in the
	// field; a run scales it down). Passive clients also check in at start-up,
	// after a console contact and on a tray request (ExtraCheckIns per period,
	// at random), and come back early when the broker's retry-after says so.
	PassivePeriod time.Duration
	ExtraCheckIns float64
	// PassiveLinger is how long a passive client answered "upgrading"
	// waits for its offer (overdue ones wait longer: fleet.overdueLinger).
	PassiveLinger time.Duration
	// TurnsFile, if set, receives every client's first upgrade start
	// (Turn) as JSON lines at the end of a rollout, for analysis offline.
	TurnsFile string
	// HeartbeatEvery is how often persistent clients heartbeat outside
	// steady (0: never).
	HeartbeatEvery time.Duration

	// JumpEvery is the pause between one console's jump attempts.
	JumpEvery time.Duration

	// ConnectConcurrency caps enrollments and dials in flight while the
	// fleet starts (the broker sheds beyond its own limits anyway).
	ConnectConcurrency int
	// ReconnectBase and ReconnectMax bound the agents' reconnect backoff
	// (capped exponential, full jitter); GiveUpAfter is how long an agent
	// keeps trying before it counts as given up.
	ReconnectBase, ReconnectMax, GiveUpAfter time.Duration

	// Procs spreads the fleet over that many load-generator child
	// processes (a process has at most 20,000 descriptors here, and a TLS
	// connection or a quic-go client socket costs one); Child makes the
	// command of child shard of n running cfg (validated; see RunChild).
	// 0 or 1: this process.
	Procs int
	Child func(cfg *Config, shard, n int) *exec.Cmd `json:"-"`

	Platform          engine.Platform
	FromVersion       engine.Version
	ToVersion         engine.Version
	Release           string
	Seed              uint64
	ProgressEvery     time.Duration
	Progress          io.Writer `json:"-"` // live progress lines; nil: none
	MeasureServerCost bool      // read the broker's /metrics around the measured window
}

// Validate fills defaults and checks every field.
func (c *Config) Validate() error {
	switch c.Scenario {
	case ScenarioRollout, ScenarioStorm, ScenarioJump, ScenarioSteady:
	default:
		return fmt.Errorf("loadtest: unknown scenario %q (want rollout, storm, jump or steady)", c.Scenario)
	}
	if c.Active < 0 || c.Passive < 0 || c.Jumpoints < 0 || c.Consoles < 0 {
		return fmt.Errorf("loadtest: client counts must not be negative")
	}
	if c.Active+c.Passive+c.Jumpoints == 0 {
		return fmt.Errorf("loadtest: the fleet is empty (set --active, --passive or --jumpoints)")
	}
	if c.Scenario == ScenarioJump && c.Consoles == 0 {
		c.Consoles = 1
	}
	if (c.Scenario == ScenarioStorm || c.Scenario == ScenarioSteady) && c.Active+c.Jumpoints == 0 {
		return fmt.Errorf("loadtest: %s needs persistent clients (--active or --jumpoints)", c.Scenario)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 100
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > engine.MaxMaxConcurrent {
		return fmt.Errorf("loadtest: max-concurrent must be 1..%d, got %d", engine.MaxMaxConcurrent, c.MaxConcurrent)
	}
	def(&c.UpgradeTime, 2*time.Second)
	if c.StartsPerSec == 0 {
		c.StartsPerSec = engine.MaxStartsPerSec
	}
	if !(c.StartsPerSec > 0) || c.StartsPerSec > engine.MaxStartsPerSec {
		return fmt.Errorf("loadtest: start-rate must be above 0 and at most %d, got %v", engine.MaxStartsPerSec, c.StartsPerSec)
	}
	def(&c.Duration, 30*time.Second)
	def(&c.Timeout, 30*time.Minute)
	def(&c.Interval, 100*time.Millisecond)
	def(&c.PassivePeriod, time.Minute)
	def(&c.PassiveLinger, 2*time.Second)
	def(&c.JumpEvery, 200*time.Millisecond)
	def(&c.ReconnectBase, 100*time.Millisecond)
	def(&c.ReconnectMax, 5*time.Second)
	def(&c.GiveUpAfter, 5*time.Minute)
	def(&c.ProgressEvery, time.Second)
	if c.UpgradeTime < 0 || c.Duration < 0 || c.Timeout < 0 || c.Interval < 0 || c.PassivePeriod < 0 {
		return fmt.Errorf("loadtest: durations must not be negative")
	}
	if c.UpgradeJitter < 0 || c.UpgradeJitter > 1 {
		return fmt.Errorf("loadtest: upgrade jitter must be within 0..1, got %v", c.UpgradeJitter)
	}
	if c.FailRate < 0 || c.FailRate >= 1 {
		return fmt.Errorf("loadtest: fail rate must be within 0..1 (exclusive), got %v", c.FailRate)
	}
	if c.ExtraCheckIns < 0 {
		return fmt.Errorf("loadtest: extra check-ins must not be negative")
	}
	if c.PackageSize == 0 {
		c.PackageSize = 64 << 10
	}
	if c.PackageSize < 1 {
		return fmt.Errorf("loadtest: package size must be positive")
	}
	if c.ConnectConcurrency == 0 {
		c.ConnectConcurrency = 256
	}
	if c.ConnectConcurrency < 1 {
		return fmt.Errorf("loadtest: connect concurrency must be positive")
	}
	if c.Platform == 0 {
		c.Platform = engine.PlatformWindowsX64
	}
	if !c.Platform.Valid() {
		return fmt.Errorf("loadtest: unknown platform %d", c.Platform)
	}
	if c.FromVersion.IsZero() {
		c.FromVersion = engine.Version{Major: 24, Minor: 2, Patch: 0, Revision: 1}
	}
	if c.ToVersion.IsZero() {
		c.ToVersion = engine.Version{Major: 24, Minor: 3, Patch: 1, Revision: 7}
	}
	if c.FromVersion == c.ToVersion {
		return fmt.Errorf("loadtest: from and to versions are the same (%s)", c.ToVersion)
	}
	if c.Release == "" {
		c.Release = "load-" + c.ToVersion.String()
	}
	if c.Procs < 0 || (c.Procs > 1 && c.Child == nil) {
		return fmt.Errorf("loadtest: %d load processes need a child command", c.Procs)
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return nil
}

// Fleet is the number of enrolled agents (consoles not counted).
func (c *Config) Fleet() int { return c.Active + c.Passive + c.Jumpoints }

// startBurst is the start bucket's depth for a rate: one second of starts,
// within 1..maxConcurrent.
func startBurst(startsPerSec float64, maxConcurrent int) int {
	return max(1, min(maxConcurrent, int(math.Ceil(startsPerSec))))
}
