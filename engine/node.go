package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"jumpfleet/store"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	DB     *store.DB
	Engine Config
	// Now is the one clock seam (default time.Now). Tests run the node
	// under testing/synctest, where time.Now is virtual anyway.
	Now func() time.Time
	// QueueLen bounds the requests waiting for the loop (default 65536).
	QueueLen int
	// MaxBatch bounds the requests applied in one turn (default 8192).
	MaxBatch int
	// OnCommit is called after each turn's batch is durable, with what the
	// turn decided, from one goroutine, in turn order. It must not block:
	// it holds up every later turn's answers. Hand the work to other
	// goroutines (session queues, an async publisher).
	OnCommit func(turn uint64, out *Output)
	// NoSync commits without fsync. Only for simulations that measure
	// decisions, never for a server: it breaks invariant 4.
	NoSync bool
}

// Node drives an Engine: one goroutine owns it, applies requests in
// batches, commits each turn's writes to Pebble in one synced batch, then
// answers the turn's requests and calls OnCommit.
type Node struct {
	cfg  NodeConfig
	eng  *Engine
	reqs chan *request
	turn uint64
	// pool recycles requests and their done channels. It is per node, not
	// global: a channel belongs to the synctest bubble that made it.
	pool sync.Pool
	// inCommit counts turns handed to the committer and not yet answered.
	inCommit atomic.Int32
	// epoch counts installed releases, published by the loop after each
	// turn: a current client's answer cannot change while it stays put.
	epoch atomic.Uint64

	closeOnce sync.Once
	stop      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the loop has exited
	err       error         // why the loop stopped early; read after stopped
}

type request struct {
	fn func(e *Engine, now time.Time) (any, error)
	// settle, if set, runs after the turn's Tick (the end-of-turn
	// dispatch) on fn's result, before anything is answered or written.
	settle func(e *Engine, now time.Time, res any, err error) (any, error)
	res    any
	err    error
	done   chan struct{}
	async  bool // posted: nobody waits; recycled once applied
}

// ErrClosed is returned for requests to a closed node.
var ErrClosed = Errorf(CodeClosed, "engine is shut down")

// MetaTurn is the metadata key of the last committed turn number, from
// which event ids are made.
const MetaTurn = "turn"

// Open recovers the engine from the store and starts its loop.
func Open(cfg NodeConfig) (*Node, error) {
	if cfg.DB == nil {
		return nil, errors.New("engine: NodeConfig.DB is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 65536
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 8192
	}
	if cfg.Engine.Settings == (Settings{}) {
		cfg.Engine.Settings = DefaultSettings()
	}
	eng, turn, err := Recover(cfg.DB, cfg.Engine, cfg.Now())
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, eng: eng, turn: turn, reqs: make(chan *request, cfg.QueueLen),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	// Recovery may have expired leases: commit that before serving.
	w, err := n.prepare(nil)
	if err != nil {
		return nil, err
	}
	if err := n.finish(w); err != nil {
		return nil, err
	}
	n.pool.New = func() any { return &request{done: make(chan struct{}, 1)} }
	go n.loop()
	return n, nil
}

// Recover builds an engine from the store: settings, releases and every
// client record. It returns the last committed turn number.
func Recover(db *store.DB, cfg Config, now time.Time) (*Engine, uint64, error) {
	eng, err := New(cfg)
	if err != nil {
		return nil, 0, err
	}
	var s Settings
	hasS, err := db.GetMeta(MetaSettings, &s)
	if err != nil {
		return nil, 0, err
	}
	var rels []Release
	if _, err := db.GetMeta(MetaReleases, &rels); err != nil {
		return nil, 0, err
	}
	var sp *Settings
	if hasS {
		sp = &s
	}
	if err := eng.RestoreMeta(now, sp, rels); err != nil {
		return nil, 0, fmt.Errorf("engine: stored settings: %w", err)
	}
	var turn uint64
	if _, err := db.GetMeta(MetaTurn, &turn); err != nil {
		return nil, 0, err
	}
	if err := db.ScanClients(eng.Restore); err != nil {
		return nil, 0, fmt.Errorf("engine: recovery scan: %w", err)
	}
	eng.FinishRestore(now)
	return eng, turn, nil
}

// Close stops the loop after the turn in progress; requests not yet applied
// fail with ErrClosed. It does not close the store. Safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { close(n.stop) })
	<-n.stopped
	return n.err
}

// Err returns why the node stopped on its own (a storage failure), if it did.
func (n *Node) Err() error {
	select {
	case <-n.stopped:
		return n.err
	default:
		return nil
	}
}

// turnWork is one turn on its way to disk: the batch holding its writes,
// what it decided, and the requests to answer once it is durable.
type turnWork struct {
	b     *store.Batch
	out   Output
	reqs  []*request
	turn  uint64
	write bool
}

// loop applies requests turn by turn. Commits are pipelined: while turn N
// is being fsynced by the committer goroutine, the loop already applies
// turn N+1 in memory. Answers still wait for their own turn's commit, and
// the committer commits, answers and calls OnCommit strictly in turn order,
// so nothing is acknowledged before it is durable, and every answer only
// reflects turns that are durable by the time it is given.
func (n *Node) loop() {
	defer close(n.stopped)
	commits := make(chan *turnWork, 1)
	committed := make(chan struct{})
	failed := make(chan struct{})
	go func() {
		defer close(committed)
		var err error
		for w := range commits {
			if err != nil {
				n.answer(w, err) // an earlier turn failed: nothing after it is durable
				if w.b != nil {
					w.b.Close()
				}
			} else if err = n.finish(w); err != nil {
				n.err = err
				close(failed)
			}
			n.inCommit.Add(-1)
		}
	}()
	var prepErr error
	defer func() {
		close(commits)
		<-committed
		if n.err == nil && prepErr != nil {
			n.err = prepErr // the committer is done: no other writer now
		}
		if n.err != nil {
			n.failPending(n.err)
		} else {
			n.failPending(ErrClosed)
		}
	}()

	batch := make([]*request, 0, n.cfg.MaxBatch)
	timer := &turnTimer{t: time.NewTimer(time.Hour)}
	defer func() { timer.t.Stop() }()
	n.arm(timer)
	for {
		batch = batch[:0]
		select {
		case <-failed:
			return // checked first: select picks among ready cases at random
		default:
		}
		select {
		case r := <-n.reqs:
			batch = append(batch, r)
		drain:
			for len(batch) < n.cfg.MaxBatch {
				select {
				case r := <-n.reqs:
					batch = append(batch, r)
				default:
					break drain
				}
			}
		case <-timer.t.C:
			timer.fired()
		case <-n.stop:
			return
		case <-failed:
			return
		}
		now := n.cfg.Now()
		for _, r := range batch {
			r.res, r.err = r.fn(n.eng, now)
		}
		w, err := n.prepare(batch)
		if err != nil {
			// Stop taking turns; the committer may still be finishing
			// earlier ones, so record the error once it is done (below).
			n.answer(&turnWork{reqs: batch}, err)
			prepErr = err
			return
		}
		if !w.write && n.inCommit.Load() == 0 {
			select {
			case <-failed:
				// The turn before failed to commit: memory holds changes
				// the disk does not, so this read may not be answered.
				n.answer(w, n.err)
				return
			default:
			}
			// Nothing to write and every earlier turn is durable and
			// answered: answer here, sparing the hop to the committer.
			// This is the heartbeat path.
			n.answer(w, nil)
			if n.cfg.OnCommit != nil && !w.out.Empty() {
				n.cfg.OnCommit(w.turn, &w.out)
			}
			n.arm(timer)
			continue
		}
		n.inCommit.Add(1)
		select {
		case commits <- w:
		case <-failed:
			n.answer(w, n.err)
			if w.b != nil {
				w.b.Close()
			}
			return
		}
		n.arm(timer)
	}
}

// prepare ticks the engine and writes the turn's output into a new batch
// (no batch when the turn decided nothing durable).
func (n *Node) prepare(batch []*request) (*turnWork, error) {
	now := n.cfg.Now()
	n.eng.Tick(now)
	for _, r := range batch {
		if r.settle != nil {
			r.res, r.err = r.settle(n.eng, now, r.res, r.err)
		}
	}
	n.epoch.Store(uint64(len(n.eng.releases)))
	if checkEveryTurn {
		if err := n.eng.CheckInvariants(); err != nil {
			panic("engine: invariant broken: " + err.Error())
		}
	}
	var b *store.Batch
	if n.eng.hasWrites() {
		b = n.cfg.DB.NewBatch()
	}
	out, err := n.eng.TakeOutput(b)
	if err != nil {
		b.Close()
		return nil, &Error{Code: CodeStorage, Msg: err.Error()}
	}
	w := &turnWork{b: b, out: out, reqs: append([]*request(nil), batch...)}
	if b != nil {
		n.turn++
		w.write = true
		if err := b.PutMeta(MetaTurn, n.turn); err != nil {
			b.Close()
			return nil, &Error{Code: CodeStorage, Msg: err.Error()}
		}
	}
	w.turn = n.turn
	return w, nil
}

// finish commits a prepared turn with Sync, then answers its requests and
// hands its output to OnCommit.
func (n *Node) finish(w *turnWork) error {
	if w.b != nil {
		defer w.b.Close()
	}
	if w.write {
		if err := n.cfg.DB.Commit(w.b, !n.cfg.NoSync); err != nil {
			err = &Error{Code: CodeStorage, Msg: err.Error()}
			n.answer(w, err)
			return err
		}
	}
	n.answer(w, nil)
	if n.cfg.OnCommit != nil && !w.out.Empty() {
		n.cfg.OnCommit(w.turn, &w.out)
	}
	return nil
}

// answer wakes the turn's callers; a non-nil err replaces every result.
func (n *Node) answer(w *turnWork, err error) {
	for _, r := range w.reqs {
		n.wake(r, err)
	}
}

func (n *Node) wake(r *request, err error) {
	if r.async {
		n.recycle(r)
		return
	}
	if err != nil {
		r.res, r.err = nil, err
	}
	r.done <- struct{}{}
}

// turnTimer wakes the node loop at the engine's next deadline.
type turnTimer struct {
	t     *time.Timer
	armed time.Time // when t fires (the engine's clock); zero once its tick was received
}

// arm points the turn timer at the engine's next deadline, moving it only
// when it must. The loop's select leaves the timer in the runtime's timer
// heap when a request wakes it, and Reset on a timer in the heap marks it
// modified: when that time comes, the runtime walks the P's whole heap to
// re-place it. The heap holds every QUIC connection's timer, and Resetting
// after every turn made those walks 4.6 % of the broker's CPU in a
// 20,000-client rollout and 16 % at 100,000 (bench/RESULTS.md, fifteenth
// pass). So, as in quic-go's connections (third_party/quic-go,
// JUMPFLEET.md, first patch): a deadline at or after the armed one leaves
// the timer alone (it fires early, and the loop arms it again after that
// turn); an earlier one gets a new timer; Reset only once the tick was
// received, when the timer is in no heap.
func (n *Node) arm(tt *turnTimer) {
	now := n.cfg.Now()
	at := now.Add(time.Hour)
	if next, ok := n.eng.NextDeadline(now); ok {
		at = next
	}
	tt.set(now, at)
}

// set makes t fire at or before at (see arm for the rule).
func (tt *turnTimer) set(now, at time.Time) {
	switch {
	case tt.armed.IsZero():
		tt.t.Reset(max(at.Sub(now), 0))
	case at.Before(tt.armed):
		tt.t.Stop()
		tt.t = time.NewTimer(max(at.Sub(now), 0))
	default:
		return // fires early; the loop sets it again after that turn
	}
	tt.armed = at
}

// fired records that t's tick was received: t is in no heap, so the next
// set may Reset it.
func (tt *turnTimer) fired() { tt.armed = time.Time{} }

func (n *Node) failPending(err error) {
	for {
		select {
		case r := <-n.reqs:
			n.wake(r, err)
		default:
			return
		}
	}
}

// Do runs fn on the loop goroutine inside the next turn and returns its
// result once the turn is durable. fn must not keep e or block.
func (n *Node) Do(ctx context.Context, fn func(e *Engine, now time.Time) (any, error)) (any, error) {
	return n.do(ctx, fn, nil)
}

// do is Do with a settle step run on fn's result after the turn's Tick.
func (n *Node) do(ctx context.Context, fn func(e *Engine, now time.Time) (any, error),
	settle func(e *Engine, now time.Time, res any, err error) (any, error)) (any, error) {
	r := n.pool.Get().(*request)
	r.fn, r.settle = fn, settle
	select {
	case n.reqs <- r:
	case <-n.stopped:
		n.recycle(r)
		return nil, n.closedErr()
	case <-ctx.Done():
		n.recycle(r)
		return nil, ctx.Err()
	}
	select {
	case <-r.done:
	case <-n.stopped:
		select {
		case <-r.done:
		default:
			// Queued after the loop's last drain: never applied. The
			// request is abandoned, not pooled: nobody will signal it.
			return nil, n.closedErr()
		}
	}
	res, err := r.res, r.err
	n.recycle(r)
	return res, err
}

// recycle clears a request that nobody will signal or read again and
// returns it to the pool (keeping its done channel).
func (n *Node) recycle(r *request) {
	*r = request{done: r.done}
	n.pool.Put(r)
}

// call runs fn in a turn (see Do) and returns its typed result.
func call[T any](ctx context.Context, n *Node, fn func(e *Engine, now time.Time) (T, error)) (T, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return fn(e, now) })
	t, _ := v.(T)
	return t, err
}

func (n *Node) closedErr() error {
	if n.err != nil {
		return n.err
	}
	return ErrClosed
}

// The typed entry points below each run one engine call in a turn.

// CheckIn records a check-in; see Engine.CheckIn. The answer is settled
// after the turn's dispatch (Engine.Settle): it says upgrading if the
// client was started in its own turn.
func (n *Node) CheckIn(ctx context.Context, in CheckIn) (Answer, error) {
	return n.checkIn(ctx, in, nil)
}

// CheckInOnce is CheckIn for a client that leaves with its answer unless
// the turn starts its upgrade, or stay (if not nil) says it waits for
// one: a passive client over HTTPS, or one the transport lets linger only
// while it has descriptors to spare. stay runs on the engine goroutine and
// must be quick. A client that leaves is offline again within the same
// turn, right after its dispatch, so no later turn can give a slot to a
// client that is already gone (CheckIn and then Disconnect left a turn in
// between, and a slot started then waited for the client's next check-in).
func (n *Node) CheckInOnce(ctx context.Context, in CheckIn, stay func(Answer) bool) (Answer, error) {
	return n.checkIn(ctx, in, func(e *Engine, now time.Time, a Answer) error {
		if a.State == StateUpgrading || (stay != nil && stay(a)) {
			return nil
		}
		return e.Disconnect(now, in.ID) // known: the check-in enrolled it
	})
}

// checkIn runs a check-in whose answer is settled after the turn's
// dispatch and then, if leave is set, handed to it.
func (n *Node) checkIn(ctx context.Context, in CheckIn, leave func(e *Engine, now time.Time, a Answer) error) (Answer, error) {
	v, err := n.do(ctx,
		func(e *Engine, now time.Time) (any, error) { return e.CheckIn(now, in) },
		func(e *Engine, now time.Time, res any, err error) (any, error) {
			if err != nil {
				return res, err
			}
			a := res.(Answer)
			if a.State == StatePending { // only a pending answer can change: the rest keep their box
				a = e.Settle(now, in.ID, a)
				res = a
			}
			if leave != nil {
				err = leave(e, now, a)
			}
			return res, err
		})
	a, _ := v.(Answer)
	return a, err
}

// Post queues fn for a coming turn and returns without waiting for it.
// Requests are applied in the order they were queued, so a posted request
// is applied before any request queued after Post returns. It blocks only
// while the queue is full.
func (n *Node) Post(ctx context.Context, fn func(e *Engine, now time.Time) (any, error)) error {
	select {
	case <-n.stopped:
		return n.closedErr()
	default:
	}
	r := n.pool.Get().(*request)
	r.fn, r.async = fn, true
	select {
	case n.reqs <- r:
		return nil
	case <-n.stopped:
		n.recycle(r)
		return n.closedErr()
	case <-ctx.Done():
		n.recycle(r)
		return ctx.Err()
	}
}

// Epoch changes whenever a release is installed. Between two releases,
// the answer to a check-in of a current client on the target version, with
// the same kind, platform and version, is the same answer (nothing else
// moves a current, up-to-date client), so a transport may reuse it while
// the epoch it read before asking is unchanged.
func (n *Node) Epoch() uint64 { return n.epoch.Load() }

// DisconnectAsync marks a client offline without waiting for the turn:
// for a transport closing a connection, which has nobody to answer.
func (n *Node) DisconnectAsync(ctx context.Context, id ClientID) error {
	return n.Post(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Disconnect(now, id) })
}

// UnreachedAsync posts Engine.Unreached for a dispatch whose offer
// reached no connection, without waiting for it. Like Post it blocks
// while the request queue is full: never call it on the engine goroutine
// (an OnCommit hook hands it to a goroutine of its own).
func (n *Node) UnreachedAsync(ctx context.Context, d Dispatch, gone bool) error {
	return n.Post(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Unreached(now, d, gone) })
}

// Disconnect marks a client offline.
func (n *Node) Disconnect(ctx context.Context, id ClientID) error {
	_, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Disconnect(now, id) })
	return err
}

// Progress renews an upgrade's lease.
func (n *Node) Progress(ctx context.Context, id ClientID, bytes uint64) error {
	_, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Progress(now, id, bytes) })
	return err
}

// Fail reports a failed upgrade attempt.
func (n *Node) Fail(ctx context.Context, id ClientID, reason string) error {
	_, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Fail(now, id, reason) })
	return err
}

// Jump handles a console's jump attempt; waiter is told via OnCommit's
// Output.JumpReady when the client becomes current.
func (n *Node) Jump(ctx context.Context, id ClientID, waiter uint64) (JumpAnswer, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (JumpAnswer, error) { return e.Jump(now, id, waiter) })
}

// UpdateSettings applies change to a copy of the settings in force and
// installs the result if it validates.
func (n *Node) UpdateSettings(ctx context.Context, change func(*Settings) error) (Settings, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (Settings, error) {
		s := e.Settings()
		if err := change(&s); err != nil {
			return Settings{}, err
		}
		return s, e.SetSettings(now, s)
	})
}

// Settings returns the settings in force.
func (n *Node) Settings(ctx context.Context) (Settings, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (Settings, error) { return e.Settings(), nil })
}

// PublishRelease installs a release.
func (n *Node) PublishRelease(ctx context.Context, r Release) (Release, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (Release, error) {
		if err := e.PublishRelease(now, r); err != nil {
			return Release{}, err
		}
		rels := e.Releases()
		return rels[len(rels)-1], nil
	})
}

// Releases lists the installed releases.
func (n *Node) Releases(ctx context.Context) ([]Release, error) {
	return call(ctx, n, func(e *Engine, now time.Time) ([]Release, error) { return e.Releases(), nil })
}

// Retry gives a failed client a fresh set of attempts.
func (n *Node) Retry(ctx context.Context, id ClientID) error {
	_, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Retry(now, id) })
	return err
}

// RetryFailed retries up to limit failed clients.
func (n *Node) RetryFailed(ctx context.Context, limit int) (int, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (int, error) { return e.RetryFailed(now, limit), nil })
}

// Status reports the fleet's progress.
func (n *Node) Status(ctx context.Context) (Status, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (Status, error) { return e.Status(now), nil })
}

// Client returns one client's details.
func (n *Node) Client(ctx context.Context, id ClientID) (ClientInfo, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (ClientInfo, error) {
		i, err := e.lookup(id)
		if err != nil {
			return ClientInfo{}, err
		}
		return e.info(i), nil
	})
}

// ListPage is one page of List.
type ListPage struct {
	Clients []ClientInfo `json:"clients"`
	Next    int          `json:"next_cursor"`
}

// List pages through clients matching f.
func (n *Node) List(ctx context.Context, f Filter, cursor, limit int) (ListPage, error) {
	return call(ctx, n, func(e *Engine, now time.Time) (ListPage, error) {
		cs, next := e.List(f, cursor, limit)
		return ListPage{Clients: cs, Next: next}, nil
	})
}
