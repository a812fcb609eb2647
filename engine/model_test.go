package engine

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var modelSeed = flag.Uint64("model.seed", 0, "seed for TestModel (0: several fixed seeds)")

// refModel is the simplest possible reference for the engine's queue
// discipline: two slices for the lanes, a set for in-flight upgrades. It
// ignores tokens (the test gives the engine plenty) and backoff (a single
// attempt: a failure is final).
type refModel struct {
	max    int
	paused bool
	target Version
	state  map[int]State
	ver    map[int]Version
	online map[int]bool
	jumpQ  []int
	normQ  []int
	fly    map[int]bool
	jumped map[int]bool // jumped to and not current since: re-enters the jump lane
	order  []int        // clients in order of first check-in (the engine's sweep order)
}

// publish models a site release: the new target, then the release sweep
// (which covers the whole small fleet within the same tick).
func (m *refModel) publish(v Version) {
	m.target = v
	for _, c := range m.order {
		switch st := m.state[c]; {
		case st == StateCurrent && m.online[c] && m.outdated(c):
			m.state[c] = StatePending
			m.normQ = append(m.normQ, c)
		case (st == StatePending || st == StateFailed) && !m.outdated(c):
			m.becomeCurrent(c)
		}
	}
}

func (m *refModel) requeue(c int) {
	m.state[c] = StatePending
	if m.jumped[c] {
		m.jumpQ = append(m.jumpQ, c)
	} else {
		m.normQ = append(m.normQ, c)
	}
}

func (m *refModel) becomeCurrent(c int) {
	m.jumpQ, m.normQ = remove(m.jumpQ, c), remove(m.normQ, c)
	m.state[c] = StateCurrent
	delete(m.jumped, c)
}

func (m *refModel) outdated(c int) bool { return m.ver[c] != m.target }

func remove(q []int, c int) []int {
	if i := slices.Index(q, c); i >= 0 {
		return slices.Delete(q, i, i+1)
	}
	return q
}

func (m *refModel) checkIn(c int, v Version) {
	changed := m.ver[c] != v
	if _, known := m.state[c]; !known {
		m.state[c] = StateCurrent
		m.order = append(m.order, c)
	}
	m.ver[c] = v
	m.online[c] = true
	switch m.state[c] {
	case StateUpgrading:
		if changed {
			delete(m.fly, c)
			if m.outdated(c) {
				m.requeue(c)
			} else {
				m.becomeCurrent(c)
			}
		}
	case StatePending, StateFailed:
		if !m.outdated(c) {
			m.becomeCurrent(c)
		}
	case StateCurrent:
		if m.outdated(c) {
			m.state[c] = StatePending
			m.normQ = append(m.normQ, c)
		}
	}
}

func (m *refModel) jump(c int) JumpResult {
	if (m.state[c] == StatePending || m.state[c] == StateFailed) && !m.outdated(c) {
		m.becomeCurrent(c)
	}
	if m.state[c] == StateCurrent && !m.outdated(c) {
		if m.online[c] {
			return JumpAllowed
		}
		return JumpOffline
	}
	m.jumped[c] = true
	switch m.state[c] {
	case StateCurrent, StateFailed:
		m.state[c] = StatePending
		m.jumpQ = append(m.jumpQ, c)
	case StatePending:
		if !slices.Contains(m.jumpQ, c) {
			m.normQ = remove(m.normQ, c)
			m.jumpQ = append(m.jumpQ, c)
		}
	}
	return JumpUpgradePending
}

// dispatch returns the clients the model starts, in order.
func (m *refModel) dispatch() []int {
	var out []int
	for !m.paused && len(m.fly) < m.max {
		pick := -1
		for _, q := range [][]int{m.jumpQ, m.normQ} {
			for _, c := range q {
				if m.online[c] {
					pick = c
					break
				}
			}
			if pick >= 0 {
				break
			}
		}
		if pick < 0 {
			break
		}
		m.jumpQ, m.normQ = remove(m.jumpQ, pick), remove(m.normQ, pick)
		m.state[pick] = StateUpgrading
		m.fly[pick] = true
		out = append(out, pick)
	}
	return out
}

func (m *refModel) position(c int) int {
	if i := slices.Index(m.jumpQ, c); i >= 0 {
		return i + 1
	}
	if i := slices.Index(m.normQ, c); i >= 0 {
		return len(m.jumpQ) + i + 1
	}
	return 0
}

// TestModel runs random operations against the engine and the reference
// model and requires the same dispatches, states and queue positions after
// every step, plus the engine's own invariants.
func TestModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	if *modelSeed != 0 {
		seeds = []uint64{*modelSeed}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Logf("seed %d (rerun with -model.seed=%d)", seed, seed)
			runModel(t, seed, 3000)
		})
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	const clients = 40
	e := newTestEngine(t, func(s *Settings) {
		s.MaxConcurrent = 3
		s.StartsPerSec = 1e6
		s.StartBurst = 1e6
		s.RetryLimit = 1
		s.LeaseTime = time.Hour
	})
	m := &refModel{max: 3, target: vNew, state: map[int]State{}, ver: map[int]Version{}, online: map[int]bool{}, fly: map[int]bool{}, jumped: map[int]bool{}}
	now := t0
	versions := []Version{vOld, vNew, {23, 0, 0, 1}}
	dispatched, jumps := 0, 0
	defer func() {
		if !t.Failed() && (dispatched < steps/50 || jumps < steps/50) {
			t.Errorf("only %d dispatches and %d queue-moving jumps in %d steps: the test exercises too little", dispatched, jumps, steps)
		}
	}()
	for step := 0; step < steps; step++ {
		now = now.Add(time.Second)
		c := rng.IntN(clients)
		op := rng.IntN(100)
		var desc string
		switch {
		case op < 35:
			v := versions[rng.IntN(2)]
			if rng.IntN(10) == 0 {
				v = versions[2]
			}
			if m.state[c] == StateUpgrading && rng.IntN(2) == 0 {
				v = vNew // finishing an upgrade
			}
			desc = fmt.Sprintf("checkin %d %s", c, v)
			if _, err := e.CheckIn(now, CheckIn{ID: id(c), Kind: KindActive, Platform: PlatformWindowsX64, Version: v}); err != nil {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			m.checkIn(c, v)
		case op < 50:
			desc = fmt.Sprintf("disconnect %d", c)
			err := e.Disconnect(now, id(c))
			if _, known := m.state[c]; known != (err == nil) {
				t.Fatalf("step %d %s: %v", step, desc, err)
			}
			if known := err == nil; known {
				m.online[c] = false
			}
		case op < 65:
			desc = fmt.Sprintf("jump %d", c)
			a, err := e.Jump(now, id(c), 0)
			if _, known := m.state[c]; !known {
				if CodeOf(err) != CodeUnknownClient {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
				break
			}
			if a.Result == JumpUpgradePending {
				jumps++
			}
			if want := m.jump(c); a.Result != want {
				t.Fatalf("step %d %s: result %v, model %v", step, desc, a.Result, want)
			}
		case op < 75:
			desc = fmt.Sprintf("fail %d", c)
			err := e.Fail(now, id(c), "boom")
			if m.state[c] == StateUpgrading {
				if err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
				delete(m.fly, c)
				m.state[c] = StateFailed
				if !m.outdated(c) {
					m.becomeCurrent(c) // a release made its version the target
				}
			} else if err == nil {
				t.Fatalf("step %d %s: engine accepted a failure from a %v client", step, desc, m.state[c])
			}
		case op < 82:
			desc = fmt.Sprintf("retry %d", c)
			err := e.Retry(now, id(c))
			if m.state[c] == StateFailed {
				if err != nil {
					t.Fatalf("step %d %s: %v", step, desc, err)
				}
				if m.outdated(c) {
					m.requeue(c)
				} else {
					m.becomeCurrent(c)
				}
			} else if err == nil {
				t.Fatalf("step %d %s: retried a %v client", step, desc, m.state[c])
			}
		case op < 90:
			n := 1 + rng.IntN(5)
			desc = fmt.Sprintf("max_concurrent %d", n)
			s := e.Settings()
			s.MaxConcurrent = n
			if err := e.SetSettings(now, s); err != nil {
				t.Fatal(err)
			}
			m.max = n
		case op < 93:
			v := versions[rng.IntN(len(versions))]
			desc = fmt.Sprintf("publish site release targeting %s", v)
			rel := Release{ID: fmt.Sprint("r-", step), Kind: ReleaseSite, Targets: []Target{{Platform: PlatformWindowsX64, Version: v}}}
			if err := e.PublishRelease(now, rel); err != nil {
				t.Fatal(err)
			}
			m.publish(v)
		default:
			desc = "pause/resume"
			s := e.Settings()
			s.Paused = !s.Paused
			_ = e.SetSettings(now, s)
			m.paused = s.Paused
		}
		e.Tick(now)
		out, _ := e.TakeOutput(nil)
		want := m.dispatch()
		var got []int
		for _, d := range out.Dispatches {
			got = append(got, int(d.Client[0])<<8|int(d.Client[1]))
		}
		dispatched += len(got)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d after %s: dispatched %v, model %v (jumpQ %v normQ %v)", step, desc, got, want, m.jumpQ, m.normQ)
		}
		if err := e.CheckInvariants(); err != nil {
			t.Fatalf("step %d after %s: %v", step, desc, err)
		}
		if e.InFlight() > m.max && len(got) > 0 {
			t.Fatalf("step %d: started with %d in flight > max %d", step, e.InFlight(), m.max)
		}
		for cl, st := range m.state {
			info, ok := e.Client(id(cl))
			if !ok || info.State != st || info.Position != m.position(cl) {
				t.Fatalf("step %d after %s: client %d engine %v pos %d, model %v pos %d", step, desc, cl, info.State, info.Position, st, m.position(cl))
			}
		}
	}
}
