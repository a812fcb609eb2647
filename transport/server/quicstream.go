package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// A QUIC session's stream (quicStream): its read deadlines are kept by one
// sweeper per server instead of by the stream itself, and closing it
// closes the whole connection once the peer has read the last frame.
//
// A quic-go stream with a read deadline makes a time.Timer for every Read
// that blocks, so 100,000 idle QUIC sessions kept 100,000 timers in the
// runtime's timer heaps on top of quic-go's own timer per connection, and
// made and stopped one per heartbeat. The runtime re-walks a whole timer
// heap whenever a timer that was moved earlier comes due (quic-go moved
// its connection timers on most packets, until our patch in
// third_party/quic-go): in the profile of the
// 100,000-client QUIC rollout that walk (runtime.(*timers).adjust) was
// 12–18 % of the broker's CPU. The sweeper checks every session's
// deadline a few times a second (one atomic load each) and puts a past
// deadline on the stream only when one has passed, which ends the
// blocked Read at once, as the stream's own timer would have.
//
// A deadline is therefore enforced late by up to one sweep interval
// (sweepEvery: an eighth of the shortest read deadline the server sets,
// at most 1 s); the idle timeout is 90 s by default.

// quicStream is a session's QUIC stream; closing it closes the whole
// connection.
type quicStream struct {
	*quic.Stream
	conn *quic.Conn
	wg   *sync.WaitGroup
	once sync.Once

	rdl     atomic.Int64 // read deadline, unix ns; 0: none
	dmu     sync.Mutex
	expired bool // owned by dmu: a past deadline is on the stream
}

// quicCloseWait bounds how long a closed session's QUIC connection waits
// for its peer to close it.
const quicCloseWait = 2 * time.Second

func (q *quicStream) Close() error {
	q.once.Do(func() {
		_ = q.Stream.Close()
		// Give the peer the stream's last bytes (an Error, a Bye with its
		// retry-after) before the connection close overtakes them:
		// CloseWithError discards unsent data, and a peer that has not
		// read them yet when the close arrives loses them too. So the
		// connection is closed by the peer, once it has read the FIN, or
		// after quicCloseWait. (The stream's Context is no help: it ends
		// as soon as Close is called.)
		q.wg.Add(1) // safe: the session's own goroutine is counted too
		go func() {
			defer q.wg.Done()
			t := time.NewTimer(quicCloseWait)
			defer t.Stop()
			select {
			case <-q.conn.Context().Done():
			case <-t.C:
			}
			_ = q.conn.CloseWithError(0, "")
		}()
	})
	return nil
}

// SetReadDeadline records the deadline for the sweeper. A deadline that
// has already passed goes on the stream at once.
func (q *quicStream) SetReadDeadline(t time.Time) error {
	q.dmu.Lock()
	defer q.dmu.Unlock()
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	q.rdl.Store(ns)
	if ns != 0 && !t.After(time.Now()) {
		q.expired = true
		return q.Stream.SetReadDeadline(t)
	}
	if q.expired {
		// The session read again after the sweeper had ended a Read (or a
		// frame beat it): the stream must not keep the old deadline.
		q.expired = false
		return q.Stream.SetReadDeadline(time.Time{})
	}
	return nil
}

// expire ends a blocked Read whose deadline is at or before now.
func (q *quicStream) expire(now int64) {
	q.dmu.Lock()
	defer q.dmu.Unlock()
	if d := q.rdl.Load(); d != 0 && d <= now && !q.expired {
		q.expired = true
		_ = q.Stream.SetReadDeadline(time.Unix(0, d))
	}
}

// due reports whether the stream's deadline is at or before now (cheap:
// the sweeper asks every session).
func (q *quicStream) due(now int64) bool {
	d := q.rdl.Load()
	return d != 0 && d <= now
}

// sweepEvery is how often the sweeper looks: an eighth of the shortest
// read deadline a session gets, within 1 ms..1 s.
func (c *Config) sweepEvery() time.Duration {
	d := min(c.FirstFrameTimeout, c.IdleTimeout)
	if c.PassiveLinger > 0 {
		d = min(d, c.PassiveLinger)
	}
	return min(time.Second, max(time.Millisecond, d/8))
}

// sweepQUICDeadlines ends the Reads of QUIC sessions whose deadline has
// passed, every sweepEvery, until the server closes.
func (srv *Server) sweepQUICDeadlines() {
	t := time.NewTicker(srv.cfg.sweepEvery())
	defer t.Stop()
	var due []*quicStream
	for {
		select {
		case <-srv.ctx.Done():
			return
		case <-t.C:
		}
		now := srv.now().UnixNano()
		due = srv.reg.dueQUIC(now, due[:0])
		for i, q := range due {
			q.expire(now)
			due[i] = nil
		}
	}
}

// dueQUIC appends the QUIC streams of live sessions whose read deadline
// is at or before now.
func (r *registry) dueQUIC(now int64, out []*quicStream) []*quicStream {
	for i := range r.all {
		sh := &r.all[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			if q, ok := s.conn.(*quicStream); ok && q.due(now) {
				out = append(out, q)
			}
		}
		sh.mu.Unlock()
	}
	return out
}
