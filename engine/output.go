package engine

import (
	"time"

	"jumpfleet/store"
)

// Output is what one engine turn decided. The driver writes Records and Meta
// in one synced batch, and only after that commit answers the turn's
// requests, pushes Dispatches and publishes Events.
type Output struct {
	dirty []int32 // entries whose records must be written

	// Meta holds metadata to write (settings, releases), by name.
	Meta map[string]any
	// Dispatches are upgrades that started this turn: tell each client.
	Dispatches []Dispatch
	// JumpReady lists consoles to tell that the client they wanted is now
	// current.
	JumpReady []JumpReady
	// Events are state changes to publish (NATS, dashboards).
	Events []Event
}

// Dispatch tells an online client to start its upgrade.
type Dispatch struct {
	Client   ClientID
	Kind     Kind
	Platform Platform
	Target   Version
	Release  string
	Lease    time.Time
	Attempt  int
}

// JumpReady tells consoles (opaque waiter ids given with Jump) that a client
// is current and can be jumped to.
type JumpReady struct {
	Client  ClientID
	Version Version
	Waiters []uint64
}

// EventType names a state change. These strings are part of the NATS
// subjects: never rename one.
type EventType string

const (
	EvQueued           EventType = "queued"
	EvStarted          EventType = "started"
	EvProgress         EventType = "progress"
	EvUpgraded         EventType = "upgraded"
	EvRetryScheduled   EventType = "retry_scheduled"
	EvFailed           EventType = "failed"
	EvLeaseExpired     EventType = "lease_expired"
	EvJumpRequested    EventType = "jump_requested"
	EvJumpReady        EventType = "jump_ready"
	EvRetried          EventType = "retried"
	EvSettingsChanged  EventType = "settings_changed"
	EvReleasePublished EventType = "release_published"
)

// EventTypes lists every EventType, for consumers that count or route by
// type (the events publisher's jumpfleet_engine_events_total).
var EventTypes = [...]EventType{EvQueued, EvStarted, EvProgress, EvUpgraded, EvRetryScheduled, EvFailed,
	EvLeaseExpired, EvJumpRequested, EvJumpReady, EvRetried, EvSettingsChanged, EvReleasePublished}

// Event is one committed state change.
type Event struct {
	Type     EventType `json:"type"`
	At       time.Time `json:"at"`
	Client   ClientID  `json:"client,omitzero"`
	Kind     Kind      `json:"kind,omitzero"`
	Platform Platform  `json:"platform,omitzero"`
	State    State     `json:"state,omitzero"`
	Version  Version   `json:"version,omitzero"`
	Target   Version   `json:"target,omitzero"`
	Lane     Lane      `json:"lane,omitzero"`
	Position int       `json:"position,omitempty"`
	Attempt  int       `json:"attempt,omitempty"`
	Bytes    uint64    `json:"bytes,omitempty"`
	Error    string    `json:"error,omitempty"`
	Release  string    `json:"release,omitempty"`
	Settings *Settings `json:"settings,omitempty"`
}

// Empty reports whether the turn decided nothing.
func (o *Output) Empty() bool {
	return len(o.dirty) == 0 && len(o.Meta) == 0 && len(o.Dispatches) == 0 &&
		len(o.JumpReady) == 0 && len(o.Events) == 0
}

// hasWrites reports whether the turn so far must write anything: records,
// metadata, or events (which are numbered by the persisted turn).
func (e *Engine) hasWrites() bool {
	return len(e.out.dirty) > 0 || len(e.out.Meta) > 0 || len(e.out.Events) > 0
}

// NumRecords is the number of client records the turn must write.
func (o *Output) NumRecords() int { return len(o.dirty) }

// TakeOutput returns this turn's output and starts a new one. Client
// records are appended to b (which may be nil for a caller that only
// simulates).
func (e *Engine) TakeOutput(b *store.Batch) (Output, error) {
	var r store.ClientRecord
	for _, i := range e.out.dirty {
		if b != nil {
			e.record(i, &r)
			b.PutClient(&r)
		}
		e.ents[i].flags &^= flagDirty
	}
	if b != nil {
		for name, v := range e.out.Meta {
			if err := b.PutMeta(name, v); err != nil {
				return Output{}, err
			}
		}
	}
	o := e.out
	e.out = Output{dirty: o.dirty[:0]}
	o.dirty = nil
	return o, nil
}

// doneRing counts completed upgrades per second over the last few minutes,
// for upgrades-per-minute and the ETA.
type doneRing struct {
	sec [300]int64 // which second each bucket holds
	n   [300]int32
}

func (d *doneRing) add(nowMS int64) {
	s := nowMS / 1000
	b := s % int64(len(d.sec))
	if d.sec[b] != s {
		d.sec[b], d.n[b] = s, 0
	}
	d.n[b]++
}

// perMinute returns completions in the minute before now.
func (d *doneRing) perMinute(nowMS int64) int {
	s := nowMS / 1000
	total := 0
	for k := int64(0); k < 60; k++ {
		b := (s - k) % int64(len(d.sec))
		if b < 0 {
			b += int64(len(d.sec))
		}
		if d.sec[b] == s-k {
			total += int(d.n[b])
		}
	}
	return total
}
