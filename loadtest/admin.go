package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"jumpfleet/adminapi"
	"jumpfleet/engine"
	"jumpfleet/packages"
)

// Admin is a Control over a broker's admin API (HTTPS + bearer token, the
// certificate pinned), signing the packages it publishes with the broker's
// release key.
type Admin struct {
	C   *adminapi.Client
	Key ed25519.PrivateKey
}

// NewAdmin reaches the admin API described by a jumpctl.json.
func NewAdmin(ctl adminapi.CtlFile, key ed25519.PrivateKey) *Admin {
	return &Admin{C: adminapi.NewClient(ctl.AdminURL, ctl.Token, ctl.CertSHA256), Key: key}
}

// Installer implements Control.
func (a *Admin) Installer(ctx context.Context, kind engine.Kind) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := a.C.Do(ctx, "POST", "/v1/installers", map[string]string{"kind": kind.String()}, &out)
	return out.Token, err
}

// ConsoleToken implements Control.
func (a *Admin) ConsoleToken(ctx context.Context, name string) (string, error) {
	var out struct {
		Token string `json:"token"`
	}
	err := a.C.Do(ctx, "POST", "/v1/console-tokens", map[string]string{"name": name}, &out)
	return out.Token, err
}

// Configure implements Control.
func (a *Admin) Configure(ctx context.Context, maxConcurrent int, startsPerSec float64, lease time.Duration, paused bool) error {
	body := map[string]any{"max_concurrent": maxConcurrent, "starts_per_sec": startsPerSec,
		"start_burst": startBurst(startsPerSec, maxConcurrent), "paused": paused}
	if lease > 0 {
		body["lease_time"] = lease.String()
	}
	return a.C.Do(ctx, "PATCH", "/v1/settings", body, nil)
}

// PublishSite implements Control: a package of size bytes, uploaded with
// the release and signed with the release key.
func (a *Admin) PublishSite(ctx context.Context, id string, p engine.Platform, v engine.Version, size int) error {
	content := packageBytes(size)
	sum := sha256.Sum256(content)
	m := packages.Manifest{Release: id, Platform: p.String(), Version: v.String(), Size: int64(size), SHA256: hex.EncodeToString(sum[:])}
	body := map[string]any{"id": id, "kind": "site", "packages": []map[string]any{{
		"platform": m.Platform, "version": m.Version, "size": m.Size, "sha256": m.SHA256,
		"signature": packages.Sign(a.Key, m), "content": content,
	}}}
	return a.C.Do(ctx, "POST", "/v1/releases", body, nil)
}

// packageBytes is the content of the packages jumpload publishes.
func packageBytes(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// Status implements Control.
func (a *Admin) Status(ctx context.Context) (engine.Status, error) {
	var s engine.Status
	err := a.C.Do(ctx, "GET", "/v1/status", nil, &s)
	return s, err
}

// Process implements Control from the broker's /metrics.
func (a *Admin) Process(ctx context.Context) (float64, float64, bool, error) {
	var raw json.RawMessage // Do copies a non-JSON body verbatim into a RawMessage
	if err := a.C.Do(ctx, "GET", "/metrics", nil, &raw); err != nil {
		return 0, 0, false, err
	}
	m, err := ParseMetrics(raw, "process_cpu_seconds_total", "process_resident_memory_bytes")
	if err != nil {
		return 0, 0, false, err
	}
	return m["process_cpu_seconds_total"], m["process_resident_memory_bytes"], true, nil
}

// ParseMetrics reads the named unlabelled samples from Prometheus text
// exposition; every name must be present.
func ParseMetrics(text []byte, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %s: %v", f[0], err)
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("metrics: %s not exposed", n)
		}
	}
	return out, nil
}

// brokerSampleEvery is how often watchBroker reads the broker's status.
const brokerSampleEvery = 250 * time.Millisecond

// watchBroker samples the broker's own in-flight count (Control.Status)
// every brokerSampleEvery, from now until the returned stop is called;
// stop ends the sampling goroutine, waits for it and writes the most seen
// and the samples above the broker's max_concurrent into the summary.
// Unlike the client-observed figures, these are the broker's word: a
// violation here is an engine bug, not a measuring artefact.
func (r *run) watchBroker(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	// Written only by the sampling goroutine; stop reads them after it
	// has ended (<-done), so they need no lock.
	var (
		samples, maxN, over int64
		errs                int64
		lastErr             error
	)
	sample := func() {
		st, err := r.b.Control.Status(ctx)
		if err != nil {
			if ctx.Err() == nil {
				errs++
				lastErr = err
			}
			return
		}
		samples++
		maxN = max(maxN, int64(st.InFlight))
		if st.InFlight > st.MaxConcurrent {
			over++
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(brokerSampleEvery)
		defer t.Stop()
		for {
			sample()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
			if errs > 0 {
				r.note("broker status unreadable %d times while sampling its in-flight count: %v", errs, lastErr)
			}
			if samples == 0 {
				return
			}
			r.sum.BrokerMaxInFlight, r.sum.BrokerOverLimitSamples, r.sum.BrokerSamples = &maxN, &over, &samples
		})
	}
}

// QueueWatcher is a Control that can tell when the broker queued each
// client: the order of the broker's queue, which a client cannot always
// observe. A release's sweep queues the outdated clients connected at that
// moment, among them passive clients whose check-in was just answered
// "current"; such a client hears that it is queued only at its next
// check-in, a period later, and by its own account would seem queued then.
type QueueWatcher interface {
	// WatchQueued starts recording, from now on, the broker's time of each
	// client's first queueing; stop ends it and returns the times (Unix
	// ns) and whether none was missed.
	WatchQueued(ctx context.Context) (stop func() (first map[engine.ClientID]int64, complete bool), err error)
}

// WatchQueued implements QueueWatcher from the admin API's event stream
// (queued events).
func (a *Admin) WatchQueued(ctx context.Context) (func() (map[engine.ClientID]int64, bool), error) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu       sync.Mutex
		first    = map[engine.ClientID]int64{}
		complete = true
	)
	opened := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.C.EventsFrom(ctx, "types="+string(engine.EvQueued), func() { close(opened) }, func(e adminapi.SSE) bool {
			var ev struct {
				Client engine.ClientID `json:"client"`
				At     time.Time       `json:"at"`
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Event == "gap":
				complete = false
			case json.Unmarshal(e.Data, &ev) != nil:
				complete = false
			default:
				if _, ok := first[ev.Client]; !ok {
					first[ev.Client] = ev.At.UnixNano()
				}
			}
			return true
		})
	}()
	select {
	case <-opened:
	case err := <-done:
		cancel()
		if err == nil {
			err = fmt.Errorf("event stream ended before it opened")
		}
		return nil, err
	}
	var once sync.Once
	return func() (map[engine.ClientID]int64, bool) {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				mu.Lock()
				complete = false
				mu.Unlock()
			}
		})
		mu.Lock()
		defer mu.Unlock()
		return first, complete
	}, nil
}
