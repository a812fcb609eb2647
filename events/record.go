// Package events carries jumpfleet's committed engine events out of the
// engine: to NATS (Publisher, asynchronous through a bounded queue so that a
// slow or absent NATS never slows the engine), and to in-process readers such
// as the admin API's server-sent event stream and client history (Ring, a
// bounded in-memory log). It also runs the embedded NATS server that a
// single-machine broker uses by default.
//
// Everything here is fed from engine.NodeConfig.OnCommit, which runs on the
// engine goroutine: the entry points (Publisher.Enqueue, Ring.Add) copy or
// queue and return; they never block and never encode.
package events

import (
	"strconv"
	"time"

	"jumpfleet/engine"
)

// Record is one committed event as published: the engine event plus its id.
// Its JSON form is the body of NATS messages and of SSE data lines
// (documented in docs/API.md, "Events on NATS").
type Record struct {
	// ID is "<turn>-<index>": unique and increasing for the life of the
	// data directory, because turns are persisted. It is the Nats-Msg-Id.
	ID string `json:"id"`
	engine.Event
	// Settings shadows engine.Event.Settings so that settings appear in the
	// admin API's form (durations as strings) rather than as nanoseconds.
	Settings *Settings `json:"settings,omitempty"`
	// Lane shadows engine.Event.Lane as a plain string so that consumers
	// can decode records (engine.Lane only encodes).
	Lane string `json:"lane,omitempty"`
}

// MakeRecord builds the record of the index-th event of turn.
func MakeRecord(turn uint64, index int, ev engine.Event) Record {
	r := Record{Event: ev}
	r.ID = ID(turn, index)
	if ev.Settings != nil {
		s := SettingsFrom(*ev.Settings)
		r.Settings = &s
	}
	r.Event.Settings = nil
	if ev.Lane != engine.LaneNone {
		r.Lane = ev.Lane.String()
	}
	return r
}

// ID formats an event id.
func ID(turn uint64, index int) string {
	b := make([]byte, 0, 24)
	b = strconv.AppendUint(b, turn, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(index), 10)
	return string(b)
}

// ParseID parses an id made by ID.
func ParseID(s string) (turn uint64, index int, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			continue
		}
		t, err1 := strconv.ParseUint(s[:i], 10, 64)
		x, err2 := strconv.ParseUint(s[i+1:], 10, 31)
		if err1 != nil || err2 != nil {
			return 0, 0, false
		}
		return t, int(x), true
	}
	return 0, 0, false
}

// Subject is the NATS subject of an event type under prefix, e.g.
// "jumpfleet.events.upgraded".
func Subject(prefix string, t engine.EventType) string { return prefix + "." + string(t) }

// DefaultPrefix is the default subject prefix.
const DefaultPrefix = "jumpfleet.events"

// Settings is the JSON form of engine.Settings shared by the admin API and
// the events: durations are Go duration strings ("10m0s").
type Settings struct {
	MaxConcurrent int      `json:"max_concurrent"`
	StartsPerSec  float64  `json:"starts_per_sec"`
	StartBurst    int      `json:"start_burst"`
	BytesPerSec   int64    `json:"bytes_per_sec"`
	LeaseTime     Duration `json:"lease_time"`
	RetryLimit    int      `json:"retry_limit"`
	RetryBase     Duration `json:"retry_base"`
	RetryMax      Duration `json:"retry_max"`
	Paused        bool     `json:"paused"`
}

// SettingsFrom converts engine settings to their JSON form.
func SettingsFrom(s engine.Settings) Settings {
	return Settings{
		MaxConcurrent: s.MaxConcurrent, StartsPerSec: s.StartsPerSec, StartBurst: s.StartBurst,
		BytesPerSec: s.BytesPerSec, LeaseTime: Duration(s.LeaseTime), RetryLimit: s.RetryLimit,
		RetryBase: Duration(s.RetryBase), RetryMax: Duration(s.RetryMax), Paused: s.Paused,
	}
}

// Engine converts back to engine settings.
func (s Settings) Engine() engine.Settings {
	return engine.Settings{
		MaxConcurrent: s.MaxConcurrent, StartsPerSec: s.StartsPerSec, StartBurst: s.StartBurst,
		BytesPerSec: s.BytesPerSec, LeaseTime: time.Duration(s.LeaseTime), RetryLimit: s.RetryLimit,
		RetryBase: time.Duration(s.RetryBase), RetryMax: time.Duration(s.RetryMax), Paused: s.Paused,
	}
}

// Duration is a time.Duration whose JSON form is a Go duration string.
type Duration time.Duration

// MarshalText formats d as time.Duration.String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses a Go duration string ("90s", "10m").
func (d *Duration) UnmarshalText(b []byte) error {
	x, err := time.ParseDuration(string(b))
	if err != nil {
		return engine.Errorf(engine.CodeBadSetting, "duration %q: want a Go duration such as 90s or 10m", b)
	}
	*d = Duration(x)
	return nil
}
