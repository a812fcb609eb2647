package server

import (
	"sync"

	"jumpfleet/engine"
)

// nonceWindow remembers accepted Auth (client, nonce) pairs for at least
// 2 × skew, so that a replayed proof is refused. Time is cut into
// generations of one skew each; three are kept (the current one and two
// full ones behind it), so an entry lives between 2 and 3 skews. Memory is
// capped in total and per client: at a cap the window refuses (fails
// closed) instead of forgetting early.
type nonceWindow struct {
	mu        sync.Mutex
	genMs     int64 // generation length
	gen       int64 // index of gens[0]
	gens      [3]nonceGen
	total     int
	max       int
	perClient int
}

type nonceKey struct {
	id    engine.ClientID
	nonce [16]byte
}

type nonceGen struct {
	seen map[nonceKey]struct{}
	per  map[engine.ClientID]int
}

func newNonceWindow(skewMs int64, max, perClient int) *nonceWindow {
	w := &nonceWindow{genMs: skewMs, max: max, perClient: perClient}
	for i := range w.gens {
		w.gens[i] = nonceGen{seen: map[nonceKey]struct{}{}, per: map[engine.ClientID]int{}}
	}
	return w
}

type nonceResult uint8

const (
	nonceOK nonceResult = iota
	nonceReplayed
	nonceFull
)

// add records (id, nonce) seen at nowMs.
func (w *nonceWindow) add(nowMs int64, id engine.ClientID, nonce [16]byte) nonceResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotate(nowMs / w.genMs)
	k := nonceKey{id, nonce}
	n := 0
	for i := range w.gens {
		if _, ok := w.gens[i].seen[k]; ok {
			return nonceReplayed
		}
		n += w.gens[i].per[id]
	}
	if w.total >= w.max || n >= w.perClient {
		return nonceFull
	}
	g := &w.gens[0]
	g.seen[k] = struct{}{}
	g.per[id]++
	w.total++
	return nonceOK
}

// rotate advances to generation cur, dropping generations that fell out.
func (w *nonceWindow) rotate(cur int64) {
	for w.gen < cur {
		w.gen++
		old := w.gens[2]
		w.total -= len(old.seen)
		w.gens[2], w.gens[1] = w.gens[1], w.gens[0]
		w.gens[0] = nonceGen{seen: map[nonceKey]struct{}{}, per: map[engine.ClientID]int{}}
		if cur-w.gen > 3 { // long idle: everything is old
			w.gen = cur
			w.total = 0
			for i := range w.gens {
				w.gens[i] = nonceGen{seen: map[nonceKey]struct{}{}, per: map[engine.ClientID]int{}}
			}
		}
	}
}
