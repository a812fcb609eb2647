package engine

import (
	"bytes"
	"time"
)

// Status is the fleet's progress at a glance.
type Status struct {
	Clients        int                       `json:"clients"`
	ByState        map[string]int            `json:"by_state"`
	ByKind         map[string]map[string]int `json:"by_kind"`
	Online         int                       `json:"online"`
	Offline        int                       `json:"offline"`
	Outdated       int                       `json:"outdated_not_seen"` // current-state clients on an old version, not yet checked in
	InFlight       int                       `json:"in_flight"`
	MaxConcurrent  int                       `json:"max_concurrent"`
	StartsPerSec   float64                   `json:"starts_per_sec"`
	BytesPerSec    int64                     `json:"bytes_per_sec"`
	Paused         bool                      `json:"paused"`
	JumpLane       int                       `json:"jump_lane"`
	NormalLane     int                       `json:"normal_lane"`
	UpgradesPerMin int                       `json:"upgrades_per_minute"`
	MeanUpgradeS   float64                   `json:"mean_upgrade_s"`
	ETASeconds     float64                   `json:"eta_s"` // -1 when unknown
	Site           map[string]string         `json:"site"`
}

// Status reports counts and rates.
func (e *Engine) Status(now time.Time) Status {
	s := Status{
		Clients: len(e.ents), ByState: map[string]int{}, ByKind: map[string]map[string]int{},
		InFlight: e.inFlight, MaxConcurrent: e.settings.MaxConcurrent, StartsPerSec: e.settings.StartsPerSec,
		BytesPerSec: e.settings.BytesPerSec, Paused: e.settings.Paused, JumpLane: e.jump.count,
		NormalLane: e.normal.count, UpgradesPerMin: e.done.perMinute(ms(now)), MeanUpgradeS: e.meanDur,
		Site: map[string]string{},
	}
	for st := State(1); st < numStates; st++ {
		s.ByState[st.String()] = 0
	}
	for k := KindActive; k <= KindJumpoint; k++ {
		m := map[string]int{"online": e.online[k]}
		for st := State(1); st < numStates; st++ {
			m[st.String()] = e.counts[st][k]
			s.ByState[st.String()] += e.counts[st][k]
		}
		s.ByKind[k.String()] = m
		s.Online += e.online[k]
	}
	s.Offline = s.Clients - s.Online
	for k, n := range e.current {
		if t := e.site[k.p]; !t.IsZero() && t != k.v {
			s.Outdated += n
		}
	}
	for p := Platform(1); p < NumPlatforms; p++ {
		if !e.site[p].IsZero() {
			s.Site[p.String()] = e.site[p].String()
		}
	}
	remaining := s.ByState["pending"] + s.ByState["upgrading"] + s.Outdated
	s.ETASeconds = -1
	switch {
	case remaining == 0:
		s.ETASeconds = 0
	case s.UpgradesPerMin > 0:
		s.ETASeconds = float64(remaining) / float64(s.UpgradesPerMin) * 60
	case e.meanDur > 0:
		s.ETASeconds = float64(remaining) / float64(e.settings.MaxConcurrent) * e.meanDur
	}
	return s
}

// ClientInfo is everything known about one client.
type ClientInfo struct {
	ID          ClientID  `json:"id"`
	Kind        Kind      `json:"kind"`
	Platform    Platform  `json:"platform"`
	Version     Version   `json:"version"`
	Target      Version   `json:"target,omitzero"`
	State       State     `json:"state"`
	Outdated    bool      `json:"outdated"`
	Online      bool      `json:"online"`
	Lane        Lane      `json:"lane"`
	Position    int       `json:"position,omitempty"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	LastCheckIn time.Time `json:"last_check_in,omitzero"`
	Lease       time.Time `json:"lease_deadline,omitzero"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	QueuedAt    time.Time `json:"queued_at,omitzero"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
}

// Client returns one client's details.
func (e *Engine) Client(id ClientID) (ClientInfo, bool) {
	i, ok := e.byID[id]
	if !ok {
		return ClientInfo{}, false
	}
	return e.info(i), true
}

func (e *Engine) info(i int32) ClientInfo {
	en := &e.ents[i]
	c := ClientInfo{ID: en.id, Kind: en.kind, Platform: en.platform, Version: en.ver, Target: e.site[en.platform],
		State: en.state, Outdated: e.outdated(en), Online: en.flags&flagOnline != 0, Lane: en.lane,
		Position: e.position(en), Attempts: int(en.attempts), LastError: e.lastErr[i],
		LastCheckIn: fromMS(en.lastCheckIn), QueuedAt: fromMS(en.queuedAt), StartedAt: fromMS(en.startedAt),
		FinishedAt: fromMS(en.finishedAt)}
	switch {
	case en.state == StateUpgrading:
		c.Lease = fromMS(en.deadline)
	case en.state == StatePending && en.flags&flagDelayed != 0:
		c.RetryAt = fromMS(en.deadline)
	}
	return c
}

// Filter selects clients in List. Zero fields match everything.
type Filter struct {
	State    State
	Kind     Kind
	Platform Platform
	Version  Version
	Online   *bool
	// IDPrefix matches clients whose hex id starts with it.
	IDPrefix string
}

func (f *Filter) match(e *Engine, en *entry) bool {
	switch {
	case f.State != 0 && en.state != f.State,
		f.Kind != 0 && en.kind != f.Kind,
		f.Platform != 0 && en.platform != f.Platform,
		!f.Version.IsZero() && en.ver != f.Version,
		f.Online != nil && (en.flags&flagOnline != 0) != *f.Online:
		return false
	}
	if f.IDPrefix != "" {
		var buf [32]byte
		hexID(&buf, en.id)
		return bytes.HasPrefix(buf[:], []byte(f.IDPrefix))
	}
	return true
}

func hexID(dst *[32]byte, id ClientID) {
	const digits = "0123456789abcdef"
	for i, b := range id {
		dst[2*i], dst[2*i+1] = digits[b>>4], digits[b&15]
	}
}

// MaxListLimit caps one page of List.
const MaxListLimit = 10_000

// maxSeq bounds a restored queue sequence number (see Restore).
const maxSeq = 1 << 32

// MaxListScan bounds the clients one List call examines, so that a filter
// matching nothing in a huge fleet still answers promptly (with a cursor to
// continue from).
const MaxListScan = 200_000

// List returns up to limit clients matching f, in enrollment order,
// starting at cursor (0 for the first page). next is the cursor of the next
// page, or 0 when the end was reached.
func (e *Engine) List(f Filter, cursor, limit int) (out []ClientInfo, next int) {
	if cursor < 0 {
		cursor = 0
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxListLimit)
	scanned := 0
	for i := cursor; i < len(e.ents); i++ {
		if len(out) >= limit || scanned >= MaxListScan {
			return out, i
		}
		scanned++
		if f.match(e, &e.ents[i]) {
			out = append(out, e.info(int32(i)))
		}
	}
	return out, 0
}
