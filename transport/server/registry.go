package server

import (
	"sync"
	"time"

	"jumpfleet/engine"
)

const numShards = 64

// registry maps client ids to their live session (for pushes) and session
// ids to sessions (consoles waiting for JumpReady; every session, for
// Shutdown). Sharded so that check-ins and OnCommit do not contend.
type registry struct {
	clients [numShards]clientShard
	all     [numShards]sessionShard
}

type clientShard struct {
	mu sync.Mutex
	m  map[engine.ClientID]*session // owned by mu
}

type sessionShard struct {
	mu sync.Mutex
	m  map[uint64]*session // owned by mu
}

func newRegistry() *registry {
	r := &registry{}
	for i := range r.clients {
		r.clients[i].m = make(map[engine.ClientID]*session)
		r.all[i].m = make(map[uint64]*session)
	}
	return r
}

func (r *registry) clientShard(id engine.ClientID) *clientShard {
	return &r.clients[id[0]%numShards] // ids are random
}

func (r *registry) addSession(s *session) {
	sh := &r.all[s.sid%numShards]
	sh.mu.Lock()
	sh.m[s.sid] = s
	sh.mu.Unlock()
}

func (r *registry) removeSession(s *session) {
	sh := &r.all[s.sid%numShards]
	sh.mu.Lock()
	delete(sh.m, s.sid)
	sh.mu.Unlock()
}

func (r *registry) session(sid uint64) *session {
	sh := &r.all[sid%numShards]
	sh.mu.Lock()
	s := sh.m[sid]
	sh.mu.Unlock()
	return s
}

// each calls fn for every live session (outside the shard locks).
func (r *registry) each(fn func(*session)) {
	var list []*session
	for i := range r.all {
		sh := &r.all[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			list = append(list, s)
		}
		sh.mu.Unlock()
	}
	for _, s := range list {
		fn(s)
	}
}

// clientOrLeaving returns the client's live session, or nil and whether
// a session of the client is leaving (closed, its Disconnect not yet told
// to the engine).
func (r *registry) clientOrLeaving(id engine.ClientID) (s *session, leaving bool) {
	sh := r.clientShard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s = sh.m[id]
	if s == nil {
		return nil, false
	}
	if s.leaving { // leaving is written under sh.mu (unbindBegin)
		return nil, true
	}
	return s, false
}

// bind makes s the session of its client. A newer connection wins: the
// old session is kicked. If the old one is still telling the engine that
// the client went offline, bind waits for that first, so the engine never
// sees the old Disconnect after the new CheckIn.
func (r *registry) bind(s *session, wait time.Duration) {
	sh := r.clientShard(s.client)
	deadline := time.Now().Add(wait)
	for {
		sh.mu.Lock()
		old := sh.m[s.client]
		if old != nil && old.leaving {
			sh.mu.Unlock()
			select {
			case <-old.gone:
			case <-time.After(time.Until(deadline)):
				// The engine is stuck; go on rather than hang the client.
				sh.mu.Lock()
				if sh.m[s.client] == old {
					delete(sh.m, s.client)
				}
				sh.mu.Unlock()
			}
			continue
		}
		sh.m[s.client] = s
		sh.mu.Unlock()
		if old != nil && old != s {
			old.kick(dropReplaced)
		}
		return
	}
}

// unbindBegin marks s as leaving if it is still its client's session and
// reports whether it was. The caller then tells the engine and calls
// unbindEnd.
func (r *registry) unbindBegin(s *session) bool {
	sh := r.clientShard(s.client)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[s.client] != s {
		return false
	}
	s.leaving = true
	return true
}

func (r *registry) unbindEnd(s *session) {
	sh := r.clientShard(s.client)
	sh.mu.Lock()
	if sh.m[s.client] == s {
		delete(sh.m, s.client)
	}
	sh.mu.Unlock()
}
