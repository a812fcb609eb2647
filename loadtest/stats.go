package loadtest

import (
	"bufio"
	"encoding/json"
	"maps"
	"math"
	"math/bits"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"jumpfleet/engine"
)

// Histogram counts durations in log-linear buckets: 16 sub-buckets per
// power of two of microseconds, so a quantile is within about 6% of the
// true value. Its size is fixed (no per-sample memory), it is safe for
// concurrent use, and histograms of several load processes merge exactly.
type Histogram struct {
	counts [histBuckets]atomic.Int64
}

const (
	histSub     = 16 // sub-buckets per power of two
	histSubBits = 4
	histBuckets = 64 * histSub
)

func histIndex(us int64) int {
	if us < histSub {
		return int(max(us, 0))
	}
	exp := bits.Len64(uint64(us)) - 1 // us in [2^exp, 2^(exp+1))
	sub := int((us >> (exp - histSubBits)) & (histSub - 1))
	return min((exp-histSubBits+1)*histSub+sub, histBuckets-1)
}

// histLower is the smallest value (µs) of bucket i; histUpper the next one's.
func histLower(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	exp := i/histSub + histSubBits - 1
	sub := int64(i % histSub)
	return (1 << exp) + sub<<(exp-histSubBits)
}

// Record adds one duration.
func (h *Histogram) Record(d time.Duration) { h.counts[histIndex(d.Microseconds())].Add(1) }

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 {
	var n int64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Quantile returns the q-quantile (0 < q ≤ 1), the midpoint of its bucket,
// or 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.Count()
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	rank = min(max(rank, 1), total)
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := histLower(i), histLower(i+1)
			return time.Duration((lo+hi)/2) * time.Microsecond
		}
	}
	return 0
}

// Buckets returns the non-empty buckets as index → count, for merging.
func (h *Histogram) Buckets() map[int]int64 {
	m := make(map[int]int64)
	for i := range h.counts {
		if n := h.counts[i].Load(); n != 0 {
			m[i] = n
		}
	}
	return m
}

// Merge adds buckets (from Buckets of another histogram).
func (h *Histogram) Merge(b map[int]int64) {
	for i, n := range b {
		if i >= 0 && i < histBuckets {
			h.counts[i].Add(n)
		}
	}
}

// Recorder collects what the agents see. All methods are safe for
// concurrent use; the maps it keeps are bounded by the fleet size.
type Recorder struct {
	maxConcurrent atomic.Int64

	checkins   atomic.Int64
	handshakes atomic.Int64
	upgraded   atomic.Int64
	failed     atomic.Int64 // attempts reported as failed
	gaveUp     atomic.Int64 // agents that stopped trying to reach the broker
	inFlight   atomic.Int64
	maxFlight  atomic.Int64
	violations atomic.Int64
	online     atomic.Int64
	lastDone   atomic.Int64 // UnixNano of the latest upgrade

	Latency Histogram // check-in round trips
	Connect Histogram // connection set-up (TLS/QUIC handshake, auth)
	JumpLag Histogram // jump answered → the client's upgrade started
	// The parts of a slot the agent sees besides the install itself: Fetch
	// from the offer to the package verified, Restart from Done to the
	// answer of the check-in on the new version (reconnect included).
	Fetch, Restart Histogram

	mu      sync.Mutex
	flight  []int64 // with trackFlight: +UnixNano of a start, −UnixNano of an end
	track   bool
	errors  map[string]int64
	samples map[string]string      // the first message seen under each code (at most maxErrorSamples)
	jumpAt  map[[16]byte]time.Time // jumped clients not yet started
	turns   []Turn                 // first starts with their queue times (bounded by the fleet)
	started map[[16]byte]bool      // clients whose upgrade started (for the jump scenario)
}

// NewRecorder returns a recorder judging in-flight counts against
// maxConcurrent (0: not judged yet; see SetMaxConcurrent).
func NewRecorder(maxConcurrent int) *Recorder {
	r := &Recorder{errors: map[string]int64{}, samples: map[string]string{}, jumpAt: map[[16]byte]time.Time{}, started: map[[16]byte]bool{}}
	r.maxConcurrent.Store(int64(maxConcurrent))
	return r
}

// SetMaxConcurrent changes the limit in-flight counts are judged against.
func (r *Recorder) SetMaxConcurrent(n int) { r.maxConcurrent.Store(int64(n)) }

// CheckIn records one answered check-in and its round trip.
func (r *Recorder) CheckIn(d time.Duration) {
	r.checkins.Add(1)
	r.Latency.Record(d)
}

// Handshake records one connection set up and how long it took.
func (r *Recorder) Handshake(d time.Duration) {
	r.handshakes.Add(1)
	r.Connect.Record(d)
}

// Err counts err under its stable code (CodeOf), which it returns, and
// keeps the first message seen under each code: a count of "other" says
// something went wrong, the message says what.
func (r *Recorder) Err(err error) string {
	code := CodeOf(err)
	r.mu.Lock()
	r.errors[code]++
	if _, ok := r.samples[code]; !ok && len(r.samples) < maxErrorSamples {
		r.samples[code] = clip(err.Error(), maxSampleLen)
	}
	r.mu.Unlock()
	return code
}

// Bounds of the error samples a recorder keeps.
const (
	maxErrorSamples = 32
	maxSampleLen    = 240
)

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Online moves the count of connected agents by delta.
func (r *Recorder) Online(delta int64) { r.online.Add(delta) }

// UpgradeStarted records that a client received its upgrade offer. The
// client-side in-flight count rises; a count above max_concurrent is a
// violation. Agents lower it (UpgradeEnded) just before the first message
// of the attempt's end (Done or Fail), or when they abandon it, and never
// raise it again for the same offer: each client's interval lies inside
// the broker's slot (which starts before the offer is sent and ends after
// that message arrives), so the count never runs ahead of the broker's and
// every violation seen is real.
func (r *Recorder) UpgradeStarted(id [16]byte, now time.Time) {
	n := r.inFlight.Add(1)
	for {
		m := r.maxFlight.Load()
		if n <= m || r.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if lim := r.maxConcurrent.Load(); lim > 0 && n > lim {
		r.violations.Add(1)
	}
	r.mu.Lock()
	if r.track {
		r.flight = append(r.flight, now.UnixNano())
	}
	r.started[id] = true
	if at, ok := r.jumpAt[id]; ok {
		delete(r.jumpAt, id)
		r.JumpLag.Record(now.Sub(at))
	}
	r.mu.Unlock()
}

// Turn is one client's first upgrade start and when it joined the queue:
// Queued is when it sent its first check-in answered pending or upgrading
// and Acked when that answer arrived (both 0: queued when the release was
// published, as online persistent clients are), all UnixNano. Turns from
// every process together give the passive clients' lateness
// (passiveLateness).
type Turn struct {
	Queued  int64 `json:"q"`
	Acked   int64 `json:"a,omitempty"`
	Start   int64 `json:"s"`
	Passive bool  `json:"p,omitempty"`
	// ID is the client's, to look up when the broker queued it.
	ID engine.ClientID `json:"i"`
	// History is a late passive client's recent contacts (history.format,
	// relative to Start); empty unless it started over a period after it
	// was queued.
	History string `json:"h,omitempty"`
}

// Turn records a client's first upgrade start (see Turn).
func (r *Recorder) Turn(id engine.ClientID, queued, acked, start time.Time, passive bool, history string) {
	t := Turn{ID: id, Start: start.UnixNano(), Passive: passive, History: history}
	if !queued.IsZero() {
		t.Queued, t.Acked = queued.UnixNano(), max(acked.UnixNano(), queued.UnixNano())
	}
	r.mu.Lock()
	r.turns = append(r.turns, t)
	r.mu.Unlock()
}

// takeTurns returns and forgets the turns recorded so far.
func (r *Recorder) takeTurns() []Turn {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.turns
	r.turns = nil
	return t
}

// passiveLateness measures, for each passive client, how long after its
// turn its upgrade started, as engine/sim does: its turn is the first
// start of any client queued after it (had it been online, it would have
// had that slot). Where the broker's queue times are known (queued, by
// client, from its queued events) they give the order exactly. Otherwise
// "after it" is judged from what the clients saw: a client that sent its
// check-in after this one had its answer was queued after it by the
// broker, if both were queued by those check-ins; two check-ins that
// overlapped are not ordered (the broker may have taken either first), so
// neither is late for the other. Client-observed order is wrong for a
// client the broker queued without telling it (see QueueWatcher): it
// seems queued a period later than it was, its start counts as the turn
// of clients truly queued after it, and its own turn is missed.
func passiveLateness(turns []Turn, period time.Duration, queued map[engine.ClientID]int64) lateness {
	ts := append([]Turn(nil), turns...)
	var l lateness
	for i := range ts {
		if q, ok := queued[ts[i].ID]; ok {
			ts[i].Queued, ts[i].Acked = q, q
			l.BrokerOrder++
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Queued < ts[j].Queued })
	// suffix[i] is the first start among ts[i:], by[i] whose it is.
	suffix := make([]int64, len(ts)+1)
	by := make([]int, len(ts)+1)
	suffix[len(ts)] = math.MaxInt64
	for i := len(ts) - 1; i >= 0; i-- {
		suffix[i], by[i] = suffix[i+1], by[i+1]
		if ts[i].Start < suffix[i] {
			suffix[i], by[i] = ts[i].Start, i
		}
	}
	for _, x := range ts {
		if !x.Passive {
			continue
		}
		l.Judged++
		acked := max(x.Acked, x.Queued)
		j := sort.Search(len(ts), func(i int) bool { return ts[i].Queued > acked })
		if turn := suffix[j]; turn != math.MaxInt64 && x.Start > turn {
			d := time.Duration(x.Start - turn)
			if d > l.Worst {
				l.Worst, l.WorstQueued = d, time.Duration(x.Start-x.Queued)
				l.WorstHistory, l.WorstBy = x.History, ts[by[j]]
			}
			if d > period {
				l.Beyond++
			}
		}
	}
	return l
}

// lateness is what passiveLateness measured: the worst lateness, how many
// passive clients started more than a period after their turn, and how
// many were judged; for the worst client (whose turn came Worst before its
// start), how long before its start it was queued, and its history
// (Turn.History).
type lateness struct {
	Worst          time.Duration
	Beyond, Judged int64
	WorstQueued    time.Duration
	WorstHistory   string
	WorstBy        Turn // the start that was the worst client's turn
	BrokerOrder    int  // clients ordered by the broker's queue time
}

// writeTurns writes turns to path as JSON lines (Config.TurnsFile).
func writeTurns(path string, turns []Turn) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, t := range turns {
		if err := enc.Encode(t); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// UpgradeEnded lowers the client-side in-flight count.
func (r *Recorder) UpgradeEnded() {
	r.inFlight.Add(-1)
	r.mu.Lock()
	if r.track {
		r.flight = append(r.flight, -time.Now().UnixNano())
	}
	r.mu.Unlock()
}

// trackFlight makes the recorder keep every in-flight change with its
// time, for a parent process to merge (takeFlight) into a fleet-wide count.
func (r *Recorder) trackFlight() {
	r.mu.Lock()
	r.track = true
	r.mu.Unlock()
}

// takeFlight returns and forgets the in-flight changes recorded so far.
func (r *Recorder) takeFlight() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.flight
	r.flight = nil
	return f
}

// flightMax replays in-flight changes from several processes in time order
// (an end before a start at the same instant) and returns the most in
// flight at once and how many starts found the count above limit.
func flightMax(events []int64, limit int64) (maxN, violations int64) {
	abs := func(v int64) int64 { return max(v, -v) }
	sort.Slice(events, func(i, j int) bool {
		a, b := abs(events[i]), abs(events[j])
		return a < b || (a == b && events[i] < events[j])
	})
	var n int64
	for _, e := range events {
		if e < 0 {
			n--
			continue
		}
		n++
		maxN = max(maxN, n)
		if limit > 0 && n > limit {
			violations++
		}
	}
	return maxN, violations
}

// Upgraded records a client back on the target version.
func (r *Recorder) Upgraded(now time.Time) {
	r.upgraded.Add(1)
	r.lastDone.Store(now.UnixNano())
}

// Failed records a failed upgrade attempt.
func (r *Recorder) Failed() { r.failed.Add(1) }

// GaveUp records an agent that stopped trying to reach the broker.
func (r *Recorder) GaveUp() { r.gaveUp.Add(1) }

// Jumped records that a console's jump to id was answered "upgrade
// pending" at now; the lag ends when the client's upgrade starts. It
// reports false when the client had already started (nothing to measure).
func (r *Recorder) Jumped(id [16]byte, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started[id] {
		return false
	}
	if _, ok := r.jumpAt[id]; !ok {
		r.jumpAt[id] = now
	}
	return true
}

// InFlight is the current client-side in-flight count.
func (r *Recorder) InFlight() int { return int(r.inFlight.Load()) }

// Snapshot is a Recorder's counters at one moment, in a form that crosses
// process boundaries (a load-generator child prints them as JSON lines)
// and adds up.
type Snapshot struct {
	Checkins    int64 `json:"checkins"`
	Handshakes  int64 `json:"handshakes"`
	Upgraded    int64 `json:"upgraded"`
	Failed      int64 `json:"failed"`
	GaveUp      int64 `json:"gave_up"`
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
	Violations  int64 `json:"violations"`
	Online      int64 `json:"online"`
	LastDone    int64 `json:"last_done_unix_ns"`
	// The fleet's own progress (not the Recorder's): agents enrolled and
	// checked in, agents whose enrollment failed for good, persistent agents
	// back since the storm began, jumps measured.
	Enrolled     int64             `json:"enrolled"`
	FailedEnroll int64             `json:"failed_enroll"`
	Reconnected  int64             `json:"reconnected"`
	Jumps        int64             `json:"jumps"`
	Errors       map[string]int64  `json:"errors"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"`
	histograms
	// Flight carries a child's in-flight changes since its previous line,
	// Turns its first upgrade starts.
	Flight []int64 `json:"flight,omitempty"`
	Turns  []Turn  `json:"turns,omitempty"`
}

// Snapshot copies the recorder's counters.
func (r *Recorder) Snapshot() Snapshot { return r.snapshot(true) }

// snapshot copies the counters, and the histograms only if hist: a load
// process sends its counters ten times a second and its histograms once
// (RunChild). Their maps and JSON were a quarter of what a load process
// allocated in a rollout when every line carried them.
func (r *Recorder) snapshot(hist bool) Snapshot {
	s := Snapshot{
		Checkins: r.checkins.Load(), Handshakes: r.handshakes.Load(), Upgraded: r.upgraded.Load(),
		Failed: r.failed.Load(), GaveUp: r.gaveUp.Load(), InFlight: r.inFlight.Load(),
		MaxInFlight: r.maxFlight.Load(), Violations: r.violations.Load(), Online: r.online.Load(),
		LastDone: r.lastDone.Load(), Errors: map[string]int64{},
	}
	if hist {
		s.histograms = histograms{Latency: r.Latency.Buckets(), Connect: r.Connect.Buckets(), JumpLag: r.JumpLag.Buckets(),
			Fetch: r.Fetch.Buckets(), Restart: r.Restart.Buckets()}
	}
	r.mu.Lock()
	for k, v := range r.errors {
		s.Errors[k] = v
	}
	if len(r.samples) > 0 {
		s.ErrorSamples = maps.Clone(r.samples)
	}
	r.mu.Unlock()
	return s
}

// histograms are a Snapshot's histograms, in one place so that a line
// without them (Latency nil, JSON null) can take the previous line's
// whole (keepHistograms). Their fields are promoted: the JSON is flat.
type histograms struct {
	Latency map[int]int64 `json:"latency"`
	Connect map[int]int64 `json:"connect"`
	JumpLag map[int]int64 `json:"jump_lag"`
	Fetch   map[int]int64 `json:"fetch,omitempty"`
	Restart map[int]int64 `json:"restart,omitempty"`
}

// Merge adds the snapshots of several processes into one recorder view.
// In-flight counts add up (each process saw its own clients); the maximum
// in flight at once across processes is not a sum of maxima: Merge adds
// them (an upper bound) and a parent replaces it with the replay of the
// children's Flight changes (flightMax).
func Merge(snaps ...Snapshot) Snapshot {
	out := Snapshot{Errors: map[string]int64{}, ErrorSamples: map[string]string{}, histograms: histograms{
		Latency: map[int]int64{}, Connect: map[int]int64{}, JumpLag: map[int]int64{}, Fetch: map[int]int64{}, Restart: map[int]int64{}}}
	for _, s := range snaps {
		out.Checkins += s.Checkins
		out.Handshakes += s.Handshakes
		out.Upgraded += s.Upgraded
		out.Failed += s.Failed
		out.GaveUp += s.GaveUp
		out.InFlight += s.InFlight
		out.MaxInFlight += s.MaxInFlight
		out.Violations += s.Violations
		out.Online += s.Online
		out.LastDone = max(out.LastDone, s.LastDone)
		out.Enrolled += s.Enrolled
		out.FailedEnroll += s.FailedEnroll
		out.Reconnected += s.Reconnected
		out.Jumps += s.Jumps
		for k, v := range s.Errors {
			out.Errors[k] += v
		}
		for k, v := range s.ErrorSamples {
			if _, ok := out.ErrorSamples[k]; !ok {
				out.ErrorSamples[k] = v // the first process's
			}
		}
		for _, p := range [][2]map[int]int64{{out.Latency, s.Latency}, {out.Connect, s.Connect}, {out.JumpLag, s.JumpLag},
			{out.Fetch, s.Fetch}, {out.Restart, s.Restart}} {
			for k, v := range p[1] {
				p[0][k] += v
			}
		}
	}
	return out
}

// quantiles reads quantiles from merged buckets.
func quantiles(b map[int]int64, qs ...float64) []time.Duration {
	var h Histogram
	h.Merge(b)
	out := make([]time.Duration, len(qs))
	for i, q := range qs {
		out[i] = h.Quantile(q)
	}
	return out
}

// Summary is the one JSON object a run ends with. Its keys are a contract
// (issue 5, bench/run.sh): add keys, never rename one. Figures that could
// not be measured are null.
type Summary struct {
	Scenario string `json:"scenario"`
	Protocol string `json:"protocol"`

	Clients   int `json:"clients"`
	Active    int `json:"active"`
	Passive   int `json:"passive"`
	Jumpoints int `json:"jumpoints"`
	Consoles  int `json:"consoles"`

	DurationS      float64 `json:"duration_s"`
	Checkins       int64   `json:"checkins"`
	CheckinsPerS   float64 `json:"checkins_per_s"`
	Handshakes     int64   `json:"handshakes"`
	HandshakesPerS float64 `json:"handshakes_per_s"`
	LatencyP50ms   float64 `json:"latency_p50_ms"`
	LatencyP99ms   float64 `json:"latency_p99_ms"`
	LatencyP999ms  float64 `json:"latency_p999_ms"`

	Upgraded      int64    `json:"upgraded"`
	Failed        int64    `json:"failed"`
	MakespanS     *float64 `json:"makespan_s"`
	BoundS        *float64 `json:"bound_s"`
	MakespanRatio *float64 `json:"makespan_ratio"`
	// FloorS is the makespan an ideal broker would reach with this run's
	// rollout (sim.IdealMakespan: every freed slot restarted at once, starts
	// at the run's start rate, installs from the run's distribution);
	// FloorRatio is FloorS / BoundS, the part of makespan_ratio no broker
	// can win back. Only for fleets of persistent clients without
	// simulated failures; null otherwise.
	FloorS        *float64 `json:"floor_s"`
	FloorRatio    *float64 `json:"floor_ratio"`
	MaxConcurrent int      `json:"max_concurrent"`
	MaxInFlight   int64    `json:"max_in_flight"`
	Violations    int64    `json:"violations"`
	// BrokerMaxInFlight is the most upgrades in flight the broker itself
	// reported (its status, sampled every brokerSampleEvery during rollout
	// and jump); BrokerOverLimitSamples counts samples above the broker's
	// own max_concurrent, BrokerSamples the samples taken. Null when not
	// sampled.
	BrokerMaxInFlight      *int64 `json:"broker_max_in_flight"`
	BrokerOverLimitSamples *int64 `json:"broker_over_limit_samples"`
	BrokerSamples          *int64 `json:"broker_samples"`

	// Where a slot goes besides the install, as the agents see it (rollout
	// and jump): SlotFetch* from the offer to the package verified,
	// SlotRestart* from Done to the answer of the check-in on the new
	// version (the reconnect included); means and p99 in seconds. The
	// broker holds the slot for these plus the install plus the offer's
	// delivery; makespan_ratio − 1 is about their share of a slot.
	SlotFetchMeanS   *float64 `json:"slot_fetch_mean_s"`
	SlotFetchP99S    *float64 `json:"slot_fetch_p99_s"`
	SlotRestartMeanS *float64 `json:"slot_restart_mean_s"`
	SlotRestartP99S  *float64 `json:"slot_restart_p99_s"`

	Jumps           int64    `json:"jumps"`
	JumpToStartP50s *float64 `json:"jump_to_start_p50_s"`
	JumpToStartP99s *float64 `json:"jump_to_start_p99_s"`
	SlotTurnoverS   *float64 `json:"slot_turnover_s"`

	// PassiveLateMaxS is the longest a passive client's upgrade started
	// after its turn (the first start of any client queued after it);
	// PassiveLateBeyondPeriod counts those later than one check-in period
	// (PassivePeriodS, the 24 h divided by the time scale). Rollout only.
	PassiveLateMaxS         *float64 `json:"passive_late_max_s"`
	PassiveLateBeyondPeriod *int64   `json:"passive_late_beyond_period"`
	PassivePeriodS          *float64 `json:"passive_period_s"`

	ReconnectS *float64 `json:"reconnect_s"`
	// ReconnectCPUBoundS is the broker's CPU time during the storm divided
	// by the machine's cores: how fast the reconnections could have been
	// had the broker's CPU been the only limit.
	ReconnectCPUBoundS *float64 `json:"reconnect_cpu_bound_s"`
	// ReconnectBrokerBoundS is the broker's CPU time over the reconnect
	// window (from /proc/<pid>/stat, at the restarted broker's readiness
	// and at the last check-in) ÷ cores.
	ReconnectBrokerBoundS *float64 `json:"reconnect_broker_bound_s"`
	// ReconnectMachineBoundS is the CPU time of the broker and of every
	// load process over the same window ÷ cores: on one machine the load
	// generator does the client half of every handshake on the same
	// cores, so this is what the handshake cost allows. ReconnectRatio is
	// reconnect_s ÷ this bound (issue 5's 1.3× target).
	ReconnectMachineBoundS *float64 `json:"reconnect_machine_bound_s"`
	ReconnectRatio         *float64 `json:"reconnect_ratio"`
	GaveUp                 int64    `json:"gave_up"`

	Errors map[string]int64 `json:"errors"`
	// ErrorSamples holds one message for each error code (the first one
	// a load process saw), so that a count can be read.
	ErrorSamples map[string]string `json:"error_samples,omitempty"`

	ServerCPUusPerCheckin *float64 `json:"server_cpu_us_per_checkin"`
	ServerRSSBytes        *float64 `json:"server_rss_bytes"`

	// ConnectS is how long the fleet took to enroll and check in once,
	// before the scenario began; ConnectServerCPUusPerClient is the
	// broker's CPU over that phase per client (null when the broker runs
	// in this process). The same command on the same machine should give
	// about the same cost: a run where it differs ran on a machine (or
	// code) whose handshakes cost more, and its other figures are not
	// comparable with the others'.
	ConnectS                    *float64 `json:"connect_s"`
	ConnectServerCPUusPerClient *float64 `json:"connect_server_cpu_us_per_client"`

	// Notes say in words what a null figure or a failed target means.
	Notes []string `json:"notes,omitempty"`
}

// fill copies a merged snapshot's client-side figures over window.
func (s *Summary) fill(snap Snapshot, window time.Duration) {
	s.DurationS = window.Seconds()
	s.Checkins, s.Handshakes = snap.Checkins, snap.Handshakes
	if sec := window.Seconds(); sec > 0 {
		s.CheckinsPerS = float64(snap.Checkins) / sec
		s.HandshakesPerS = float64(snap.Handshakes) / sec
	}
	q := quantiles(snap.Latency, 0.5, 0.99, 0.999)
	s.LatencyP50ms, s.LatencyP99ms, s.LatencyP999ms = ms(q[0]), ms(q[1]), ms(q[2])
	s.Upgraded, s.Failed = snap.Upgraded, snap.Failed
	s.MaxInFlight, s.Violations, s.GaveUp = snap.MaxInFlight, snap.Violations, snap.GaveUp
	s.Errors, s.ErrorSamples = snap.Errors, snap.ErrorSamples
	if countOf(snap.Fetch) > 0 {
		s.SlotFetchMeanS, s.SlotFetchP99S = ptr(meanOf(snap.Fetch).Seconds()), ptr(quantiles(snap.Fetch, 0.99)[0].Seconds())
	}
	if countOf(snap.Restart) > 0 {
		s.SlotRestartMeanS, s.SlotRestartP99S = ptr(meanOf(snap.Restart).Seconds()), ptr(quantiles(snap.Restart, 0.99)[0].Seconds())
	}
	if n := countOf(snap.JumpLag); n > 0 {
		j := quantiles(snap.JumpLag, 0.5, 0.99)
		s.JumpToStartP50s, s.JumpToStartP99s = ptr(j[0].Seconds()), ptr(j[1].Seconds())
	}
}

// meanOf is the mean of merged buckets, each counted at its midpoint.
func meanOf(b map[int]int64) time.Duration {
	var n, sum int64
	for i, c := range b {
		if i < 0 || i >= histBuckets {
			continue
		}
		n += c
		sum += c * (histLower(i) + histLower(i+1)) / 2
	}
	if n == 0 {
		return 0
	}
	return time.Duration(sum/n) * time.Microsecond
}

func countOf(b map[int]int64) int64 {
	var n int64
	for _, v := range b {
		n += v
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr(f float64) *float64 { return &f }

// sortedErrors lists error codes by count, for the progress line.
func sortedErrors(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	return keys
}

// MarshalJSON keeps errors an object even when empty.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	if s.Errors == nil {
		s.Errors = map[string]int64{}
	}
	return json.Marshal(plain(s))
}
