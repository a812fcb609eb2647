package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// OnCommit is called on the loop goroutine after each turn's batch is
	// durable, with what the turn decided. It must not block: hand the
	// work to other goroutines (session queues, an async publisher).
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

	closeOnce sync.Once
	stop      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the loop has exited
	err       error         // why the loop stopped early; read after stopped
}

type request struct {
	fn   func(e *Engine, now time.Time) (any, error)
	res  any
	err  error
	done chan struct{}
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
	if err := n.commit(nil); err != nil {
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

func (n *Node) loop() {
	defer close(n.stopped)
	batch := make([]*request, 0, n.cfg.MaxBatch)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	n.arm(timer)
	for {
		batch = batch[:0]
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
		case <-timer.C:
		case <-n.stop:
			n.failPending(ErrClosed)
			return
		}
		now := n.cfg.Now()
		for _, r := range batch {
			r.res, r.err = r.fn(n.eng, now)
		}
		if err := n.commit(batch); err != nil {
			// Memory now holds changes the disk does not: stop rather
			// than answer anything more.
			n.err = err
			n.failPending(err)
			return
		}
		n.arm(timer)
	}
}

// commit ticks the engine, writes the turn's output in one synced batch,
// then answers the batch's requests and hands the output to OnCommit.
func (n *Node) commit(batch []*request) error {
	now := n.cfg.Now()
	n.eng.Tick(now)
	b := n.cfg.DB.NewBatch()
	defer b.Close()
	out, err := n.eng.TakeOutput(b)
	if err == nil && (b.Len() > 0 || len(out.Events) > 0) {
		n.turn++
		if err = b.PutMeta(MetaTurn, n.turn); err == nil {
			err = n.cfg.DB.Commit(b, !n.cfg.NoSync)
		}
	}
	if err != nil {
		err = &Error{Code: CodeStorage, Msg: err.Error()}
		for _, r := range batch {
			r.res, r.err = nil, err
			r.done <- struct{}{}
		}
		return err
	}
	for _, r := range batch {
		r.done <- struct{}{}
	}
	if n.cfg.OnCommit != nil && !out.Empty() {
		n.cfg.OnCommit(n.turn, &out)
	}
	return nil
}

func (n *Node) arm(t *time.Timer) {
	now := n.cfg.Now()
	d := time.Hour
	if at, ok := n.eng.NextDeadline(now); ok {
		d = max(at.Sub(now), 0)
	}
	t.Reset(d)
}

func (n *Node) failPending(err error) {
	for {
		select {
		case r := <-n.reqs:
			r.res, r.err = nil, err
			r.done <- struct{}{}
		default:
			return
		}
	}
}

// Do runs fn on the loop goroutine inside the next turn and returns its
// result once the turn is durable. fn must not keep e or block.
func (n *Node) Do(ctx context.Context, fn func(e *Engine, now time.Time) (any, error)) (any, error) {
	r := n.pool.Get().(*request)
	r.fn = fn
	select {
	case n.reqs <- r:
	case <-n.stopped:
		n.pool.Put(r)
		return nil, n.closedErr()
	case <-ctx.Done():
		n.pool.Put(r)
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
	r.fn, r.res, r.err = nil, nil, nil
	n.pool.Put(r)
	return res, err
}

func (n *Node) closedErr() error {
	if n.err != nil {
		return n.err
	}
	return ErrClosed
}

// The typed entry points below each run one engine call in a turn.

// CheckIn records a check-in; see Engine.CheckIn.
func (n *Node) CheckIn(ctx context.Context, in CheckIn) (Answer, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.CheckIn(now, in) })
	a, _ := v.(Answer)
	return a, err
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
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.Jump(now, id, waiter) })
	a, _ := v.(JumpAnswer)
	return a, err
}

// UpdateSettings applies change to a copy of the settings in force and
// installs the result if it validates.
func (n *Node) UpdateSettings(ctx context.Context, change func(*Settings) error) (Settings, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) {
		s := e.Settings()
		if err := change(&s); err != nil {
			return nil, err
		}
		return s, e.SetSettings(now, s)
	})
	s, _ := v.(Settings)
	return s, err
}

// Settings returns the settings in force.
func (n *Node) Settings(ctx context.Context) (Settings, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.Settings(), nil })
	s, _ := v.(Settings)
	return s, err
}

// PublishRelease installs a release.
func (n *Node) PublishRelease(ctx context.Context, r Release) (Release, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) {
		if err := e.PublishRelease(now, r); err != nil {
			return nil, err
		}
		rels := e.releases
		return rels[len(rels)-1], nil
	})
	out, _ := v.(Release)
	return out, err
}

// Releases lists the installed releases.
func (n *Node) Releases(ctx context.Context) ([]Release, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.Releases(), nil })
	r, _ := v.([]Release)
	return r, err
}

// Retry gives a failed client a fresh set of attempts.
func (n *Node) Retry(ctx context.Context, id ClientID) error {
	_, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return nil, e.Retry(now, id) })
	return err
}

// RetryFailed retries up to limit failed clients.
func (n *Node) RetryFailed(ctx context.Context, limit int) (int, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.RetryFailed(now, limit), nil })
	c, _ := v.(int)
	return c, err
}

// Status reports the fleet's progress.
func (n *Node) Status(ctx context.Context) (Status, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) { return e.Status(now), nil })
	s, _ := v.(Status)
	return s, err
}

// Client returns one client's details.
func (n *Node) Client(ctx context.Context, id ClientID) (ClientInfo, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) {
		c, ok := e.Client(id)
		if !ok {
			return nil, Errorf(CodeUnknownClient, "unknown client %s", id)
		}
		return c, nil
	})
	c, _ := v.(ClientInfo)
	return c, err
}

// ListPage is one page of List.
type ListPage struct {
	Clients []ClientInfo `json:"clients"`
	Next    int          `json:"next_cursor"`
}

// List pages through clients matching f.
func (n *Node) List(ctx context.Context, f Filter, cursor, limit int) (ListPage, error) {
	v, err := n.Do(ctx, func(e *Engine, now time.Time) (any, error) {
		cs, next := e.List(f, cursor, limit)
		return ListPage{Clients: cs, Next: next}, nil
	})
	p, _ := v.(ListPage)
	return p, err
}
