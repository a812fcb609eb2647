package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkQueueJetStream runs the mix on a NATS JetStream work queue: an
// embedded nats-server with file storage in a temporary directory, one
// work-queue stream with subjects work.normal and work.jump, a durable pull
// consumer on each with MaxAckPending = Limit, and a dispatcher that fetches
// from the jump consumer first and only then from the normal one, never
// holding more than Limit messages unacknowledged. A jump deletes the message
// from the stream and publishes it again on work.jump; a completion is an
// acknowledgement confirmed by the server (DoubleAck). Sub-benchmarks:
// sync-always (every write fsynced, the durability jumpfleet has) and
// sync-default (the server's default, fsync every 2 minutes).
func BenchmarkQueueJetStream(b *testing.B) {
	for _, always := range []bool{true, false} {
		name := "sync-default"
		if always {
			name = "sync-always"
		}
		b.Run(name, func(b *testing.B) {
			benchMix(b, DefaultMix, func(tb testing.TB, m Mix) backend { return openJetStream(tb, m, always) })
		})
	}
}

func TestQueueMixJetStream(t *testing.T) {
	testBackend(t, func(tb testing.TB, m Mix) backend { return openJetStream(tb, m, true) })
}

const (
	jsStream = "WORK"
	jsNormal = "work.normal"
	jsJump   = "work.jump"
)

type jsQueue struct {
	m            Mix
	nc           *nats.Conn
	js           jetstream.JetStream
	stream       jetstream.Stream
	jump, normal jetstream.Consumer
	seqs         []atomic.Uint64 // stream sequence of each job of the round, for jumps

	rounds chan *jsRound // Run hands each round to the dispatcher
	quit   chan struct{}
	wg     sync.WaitGroup // the dispatcher and its workers
}

// jsRound is one round as the dispatcher serves it.
type jsRound struct {
	ctx     context.Context
	tr      *Tracker
	acked   atomic.Int64
	allDone chan struct{}
	failed  chan struct{} // closed, after err is set, by the first failure
	errOnce sync.Once
	err     error
}

func (r *jsRound) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

func (r *jsRound) isFailed() bool {
	select {
	case <-r.failed:
		return true
	default:
		return false
	}
}

func openJetStream(tb testing.TB, m Mix, syncAlways bool) backend {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		JetStream: true, StoreDir: tb.TempDir(), SyncAlways: syncAlways,
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv.Start()
	tb.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("embedded nats-server not ready after 10s")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	q := &jsQueue{m: m, nc: nc, seqs: make([]atomic.Uint64, m.N),
		rounds: make(chan *jsRound), quit: make(chan struct{})}
	if q.js, err = jetstream.New(nc); err != nil {
		tb.Fatal(err)
	}
	ctx := context.Background()
	q.stream, err = q.js.CreateStream(ctx, jetstream.StreamConfig{Name: jsStream,
		Subjects: []string{jsNormal, jsJump}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		tb.Fatal(err)
	}
	consumer := func(name, subject string) jetstream.Consumer {
		c, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: name,
			FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy,
			MaxAckPending: m.Limit, AckWait: time.Minute, MaxRequestBatch: m.Limit})
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	q.jump, q.normal = consumer("jump", jsJump), consumer("normal", jsNormal)
	q.wg.Add(1)
	go q.dispatcher()
	tb.Cleanup(func() { close(q.quit); q.wg.Wait() })
	return q
}

func jsData(i int) []byte {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(i))
	return p[:]
}

func (q *jsQueue) Enqueue(ctx context.Context, _, i int) error {
	ack, err := q.js.Publish(ctx, jsNormal, jsData(i))
	if err != nil {
		return err
	}
	q.seqs[i].Store(ack.Sequence)
	return nil
}

func (q *jsQueue) Jump(ctx context.Context, _, i int) error {
	if err := q.stream.DeleteMsg(ctx, q.seqs[i].Load()); err != nil {
		return fmt.Errorf("delete job %d from the normal lane: %w", i, err)
	}
	_, err := q.js.Publish(ctx, jsJump, jsData(i))
	return err
}

func (q *jsQueue) Run(ctx context.Context, _ int, tr *Tracker) error {
	r := &jsRound{ctx: ctx, tr: tr, allDone: make(chan struct{}), failed: make(chan struct{})}
	select {
	case q.rounds <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.allDone:
		return nil
	case <-r.failed:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dispatcher serves one round at a time: it keeps up to Limit messages
// unacknowledged, asking the jump consumer first. It asks for no more than
// the round has left, so that no pull request outlives the round and takes
// the next round's messages while dispatch is meant to be held.
func (q *jsQueue) dispatcher() {
	defer q.wg.Done()
	sem := make(chan struct{}, q.m.Limit)
	for {
		var r *jsRound
		select {
		case r = <-q.rounds:
		case <-q.quit:
			return
		}
		dispatched := 0
		for dispatched < q.m.N && !r.isFailed() {
			select {
			case sem <- struct{}{}:
			case <-q.quit:
				return
			}
			n := 1
		more:
			for n < min(q.m.Limit, q.m.N-dispatched) {
				select {
				case sem <- struct{}{}:
					n++
				default:
					break more
				}
			}
			got, err := q.serve(r, sem, func() (jetstream.MessageBatch, error) { return q.jump.FetchNoWait(n) })
			if err == nil && got == 0 {
				got, err = q.serve(r, sem, func() (jetstream.MessageBatch, error) {
					return q.normal.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
				})
			}
			if err != nil {
				r.fail(err)
			}
			for range n - got {
				<-sem
			}
			dispatched += got
		}
	}
}

// serve hands every message of one fetch to its own worker and returns how
// many it handed out.
func (q *jsQueue) serve(r *jsRound, sem chan struct{}, fetch func() (jetstream.MessageBatch, error)) (int, error) {
	batch, err := fetch()
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		got++
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			i := int(binary.BigEndian.Uint64(msg.Data()))
			r.tr.Start(i)
			r.tr.Finish(i)
			if err := msg.DoubleAck(r.ctx); err != nil {
				r.fail(fmt.Errorf("ack job %d: %w", i, err))
			}
			<-sem
			if r.acked.Add(1) == int64(q.m.N) {
				close(r.allDone)
			}
		}()
	}
	return got, batch.Error()
}
