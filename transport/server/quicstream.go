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
// 12–18 % of the broker's CPU. The sweeper puts a past deadline on a
// stream only when its deadline has passed, which ends the blocked Read
// at once, as the stream's own timer would have.
//
// The sweeper looks only at the streams whose deadline may have come: a
// deadlineWheel files each stream under the tick its deadline falls in.
// It used to look at every live session at every sweep, which at 100,000
// sessions was 16 % of the broker's CPU in a rollout (bench/RESULTS.md,
// eighteenth pass): a cache miss per session, once a second. A deadline
// that moves later, as the idle deadline does with every frame, leaves
// the stream where it is (one atomic load); the sweeper moves it on when
// its tick comes. So a session is touched about once per idle timeout.
//
// A deadline is enforced late by less than one sweep interval
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

	wheel *deadlineWheel // nil: deadlines are not swept (a test's stream)
	tick  atomic.Int64   // the wheel tick it is filed under; 0: none. Written under wheel.mu
	slot  int            // owned by wheel.mu: its index in that tick's list
	gone  bool           // owned by wheel.mu: closed, never filed again
}

// quicCloseWait bounds how long a closed session's QUIC connection waits
// for its peer to close it.
const quicCloseWait = 2 * time.Second

func (q *quicStream) Close() error {
	q.once.Do(func() {
		if q.wheel != nil {
			q.wheel.remove(q)
		}
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
	if ns != 0 && q.wheel != nil {
		q.wheel.file(q, ns)
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
// passed, every tick of the wheel, until the server closes.
func (srv *Server) sweepQUICDeadlines() {
	t := time.NewTicker(time.Duration(srv.qdl.width))
	defer t.Stop()
	var due []*quicStream
	for {
		select {
		case <-srv.ctx.Done():
			return
		case <-t.C:
		}
		now := srv.now().UnixNano()
		due = srv.qdl.take(now, due[:0])
		for i, q := range due {
			q.expire(now)
			due[i] = nil
		}
	}
}

// deadlineWheel files QUIC streams under the tick (a span of width ns)
// their read deadline falls in, rounded up, so that a sweep at time now
// takes only the ticks up to now: every stream it finds there is due,
// unless its deadline has moved since. A stream is filed under one tick
// at most (tick and slot, owned by mu): a later deadline leaves it there,
// to be moved on by take; an earlier one moves it at once.
type deadlineWheel struct {
	width int64 // ns

	mu    sync.Mutex
	ticks map[int64][]*quicStream // owned by mu
	next  int64                   // owned by mu: the first tick not yet taken
}

func newDeadlineWheel(width time.Duration, now time.Time) *deadlineWheel {
	w := &deadlineWheel{width: max(int64(width), 1), ticks: make(map[int64][]*quicStream)}
	w.next = w.tickOf(now.UnixNano())
	return w
}

// tickOf is the tick a deadline at ns is filed under: the first whose
// start is at or after it.
func (w *deadlineWheel) tickOf(ns int64) int64 {
	return (ns + w.width - 1) / w.width
}

// file puts q under the tick of its new deadline ns, unless it is already
// filed under that tick or an earlier one (then take moves it on).
func (w *deadlineWheel) file(q *quicStream, ns int64) {
	tk := w.tickOf(ns)
	// Fast path, without the lock: rdl was stored before this load, and
	// take clears tick before it loads rdl, so a take that has already
	// unfiled q sees the new deadline and files it again itself.
	if cur := q.tick.Load(); cur != 0 && cur <= tk {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if q.gone {
		return
	}
	if cur := q.tick.Load(); cur != 0 {
		if cur <= tk {
			return
		}
		w.unfile(q)
	}
	w.put(q, max(tk, w.next))
}

// put files q under tick tk. Called with mu held, q not filed.
func (w *deadlineWheel) put(q *quicStream, tk int64) {
	l := w.ticks[tk]
	q.slot = len(l)
	w.ticks[tk] = append(l, q)
	q.tick.Store(tk)
}

// unfile takes q out of its tick's list. Called with mu held, q filed.
func (w *deadlineWheel) unfile(q *quicStream) {
	tk := q.tick.Load()
	l := w.ticks[tk]
	last := len(l) - 1
	if q.slot != last {
		l[q.slot] = l[last]
		l[q.slot].slot = q.slot
	}
	l[last] = nil
	if last == 0 {
		delete(w.ticks, tk)
	} else {
		w.ticks[tk] = l[:last]
	}
	q.tick.Store(0)
}

// remove takes a closing stream out of the wheel for good, so that the
// wheel holds no closed connection until its deadline.
func (w *deadlineWheel) remove(q *quicStream) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q.gone = true
	if q.tick.Load() != 0 {
		w.unfile(q)
	}
}

// take appends the streams whose deadline is at or before now, taking
// them out of the wheel, and files the others it finds under the tick of
// their deadline as it is now (a stream without one is left unfiled: its
// next deadline files it). It visits the filed ticks, as many as the
// longest deadline spans (~720 for a 360 s idle timeout), not the
// sessions.
func (w *deadlineWheel) take(now int64, out []*quicStream) []*quicStream {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := now / w.width // ticks up to here have started
	if last < w.next {
		return out
	}
	w.next = last + 1 // streams filed again below go after last
	for tk, l := range w.ticks {
		if tk > last {
			continue
		}
		delete(w.ticks, tk)
		for _, q := range l {
			q.tick.Store(0) // before the load of rdl: see file
			switch d := q.rdl.Load(); {
			case d == 0:
			case d <= now:
				out = append(out, q)
			default:
				w.put(q, max(w.tickOf(d), w.next))
			}
		}
	}
	return out
}
