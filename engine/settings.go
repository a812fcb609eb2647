package engine

import (
	"encoding/json"
	"time"
)

// Settings are the admin's rollout settings. They are validated in one place
// (Validate) and persisted with the batch that changes them.
type Settings struct {
	// MaxConcurrent caps upgrades in flight ("Maximum number of concurrent
	// Jump client upgrades"). Lowering it cancels nothing already started.
	MaxConcurrent int `json:"max_concurrent"`
	// StartsPerSec and StartBurst pace upgrade starts (a token bucket).
	StartsPerSec float64 `json:"starts_per_sec"`
	StartBurst   int     `json:"start_burst"`
	// BytesPerSec paces package bytes served, shared by all downloads
	// (enforced by the transport; kept here so one setting lives in one place).
	BytesPerSec int64 `json:"bytes_per_sec"`
	// LeaseTime is how long an upgrade may go without a progress report
	// before its slot is taken back.
	LeaseTime time.Duration `json:"lease_time"`
	// RetryLimit is how many attempts an upgrade gets before it is failed.
	RetryLimit int `json:"retry_limit"`
	// RetryBase and RetryMax bound the exponential retry backoff.
	RetryBase time.Duration `json:"retry_base"`
	RetryMax  time.Duration `json:"retry_max"`
	// Paused stops new upgrade starts; upgrades in flight go on.
	Paused bool `json:"paused"`
}

// DefaultSettings are the settings of a new installation.
func DefaultSettings() Settings {
	return Settings{
		MaxConcurrent: 100,
		StartsPerSec:  50,
		StartBurst:    50,
		BytesPerSec:   100 << 20,
		LeaseTime:     10 * time.Minute,
		RetryLimit:    5,
		RetryBase:     30 * time.Second,
		RetryMax:      30 * time.Minute,
	}
}

// Limits on settings, so that a typo cannot wedge the server.
const (
	MaxMaxConcurrent = 1_000_000
	MaxStartsPerSec  = 1_000_000
	MaxRetryLimit    = 100
)

// Validate checks every field and returns the first problem as a
// CodeBadSetting error naming the field.
func (s *Settings) Validate() error {
	switch {
	case s.MaxConcurrent < 1 || s.MaxConcurrent > MaxMaxConcurrent:
		return Errorf(CodeBadSetting, "max_concurrent must be between 1 and %d, got %d", MaxMaxConcurrent, s.MaxConcurrent)
	case !(s.StartsPerSec > 0) || s.StartsPerSec > MaxStartsPerSec:
		return Errorf(CodeBadSetting, "starts_per_sec must be above 0 and at most %d, got %v", MaxStartsPerSec, s.StartsPerSec)
	case s.StartBurst < 1 || s.StartBurst > MaxMaxConcurrent:
		return Errorf(CodeBadSetting, "start_burst must be between 1 and %d, got %d", MaxMaxConcurrent, s.StartBurst)
	case s.BytesPerSec < 1024:
		return Errorf(CodeBadSetting, "bytes_per_sec must be at least 1024, got %d", s.BytesPerSec)
	case s.LeaseTime < time.Second || s.LeaseTime > 24*time.Hour:
		return Errorf(CodeBadSetting, "lease_time must be between 1s and 24h, got %v", s.LeaseTime)
	case s.RetryLimit < 1 || s.RetryLimit > MaxRetryLimit:
		return Errorf(CodeBadSetting, "retry_limit must be between 1 and %d, got %d", MaxRetryLimit, s.RetryLimit)
	case s.RetryBase < time.Millisecond || s.RetryMax < s.RetryBase || s.RetryMax > 24*time.Hour:
		return Errorf(CodeBadSetting, "retry backoff must satisfy 1ms <= retry_base (%v) <= retry_max (%v) <= 24h", s.RetryBase, s.RetryMax)
	}
	return nil
}

// ReleaseKind tells site releases (which upgrade clients) from base-software
// releases (which do not).
type ReleaseKind string

const (
	ReleaseSite ReleaseKind = "site"
	ReleaseBase ReleaseKind = "base"
)

// Target is the version a release sets for one platform, with the package
// description the transport serves (opaque to the engine).
type Target struct {
	Platform Platform        `json:"platform"`
	Version  Version         `json:"version"`
	Package  json.RawMessage `json:"package,omitempty"`
}

// Release is a published software release.
type Release struct {
	ID          string      `json:"id"`
	Kind        ReleaseKind `json:"kind"`
	Requires    string      `json:"requires,omitempty"`
	Targets     []Target    `json:"targets,omitempty"`
	PublishedAt time.Time   `json:"published_at"`
}

// MaxReleaseIDLen caps release ids.
const MaxReleaseIDLen = 64

func (r *Release) validate() error {
	if r.ID == "" || len(r.ID) > MaxReleaseIDLen {
		return Errorf(CodeBadRequest, "release id must be 1..%d bytes", MaxReleaseIDLen)
	}
	switch r.Kind {
	case ReleaseSite:
		if len(r.Targets) == 0 {
			return Errorf(CodeBadRequest, "site release %s has no targets", r.ID)
		}
	case ReleaseBase:
		if len(r.Targets) != 0 {
			return Errorf(CodeBadRequest, "base-software release %s must not carry client targets", r.ID)
		}
	default:
		return Errorf(CodeBadRequest, "release kind %q: want site or base", r.Kind)
	}
	var seen [NumPlatforms]bool
	for _, t := range r.Targets {
		if !t.Platform.Valid() {
			return Errorf(CodeBadPlatform, "release %s names unknown platform %d", r.ID, t.Platform)
		}
		if seen[t.Platform] {
			return Errorf(CodeBadRequest, "release %s names platform %s twice", r.ID, t.Platform)
		}
		seen[t.Platform] = true
		if t.Version.IsZero() {
			return Errorf(CodeBadVersion, "release %s: platform %s has no version", r.ID, t.Platform)
		}
		if len(t.Package) > 0 && !json.Valid(t.Package) {
			return Errorf(CodeBadRequest, "release %s: platform %s: package description is not valid JSON", r.ID, t.Platform)
		}
	}
	return nil
}

// MarshalText and UnmarshalText give platforms, kinds and versions their
// names in JSON.
func (p Platform) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
func (p *Platform) UnmarshalText(b []byte) error {
	v, err := ParsePlatform(string(b))
	*p = v
	return err
}
func (v Version) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
func (v *Version) UnmarshalText(b []byte) error {
	x, err := ParseVersion(string(b))
	*v = x
	return err
}
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
func (k *Kind) UnmarshalText(b []byte) error {
	x, err := ParseKind(string(b))
	*k = x
	return err
}
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *State) UnmarshalText(b []byte) error {
	x, err := ParseState(string(b))
	*s = x
	return err
}
func (l Lane) MarshalText() ([]byte, error)      { return []byte(l.String()), nil }
func (id ClientID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }
func (id *ClientID) UnmarshalText(b []byte) error {
	x, err := ParseClientID(string(b))
	*id = x
	return err
}
