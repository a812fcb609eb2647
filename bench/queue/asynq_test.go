package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// BenchmarkQueueAsynq runs the mix on github.com/hibiken/asynq over a
// redis-server child: two queues, "jump" with strict priority over
// "normal", and the server's Concurrency as the in-flight limit. A jump
// deletes the pending task from "normal" and enqueues it on "jump" under the
// same task id. Sub-benchmarks: aof-always (fsync before every reply, the
// durability jumpfleet has) and volatile (no persistence).
func BenchmarkQueueAsynq(b *testing.B) {
	for _, d := range []redisDurability{redisFsyncAlways, redisVolatile} {
		b.Run(string(d), func(b *testing.B) {
			benchMix(b, DefaultMix, func(tb testing.TB, m Mix) backend { return openAsynq(tb, m, d) })
		})
	}
}

func TestQueueMixAsynq(t *testing.T) {
	testBackend(t, func(tb testing.TB, m Mix) backend { return openAsynq(tb, m, redisFsyncAlways) })
}

const (
	asynqJump   = "jump"
	asynqNormal = "normal"
	asynqType   = "upgrade"
)

type asynqQueue struct {
	m      Mix
	client *asynq.Client
	insp   *asynq.Inspector
	tr     atomic.Pointer[Tracker]
	logErr atomic.Pointer[string]
}

func openAsynq(tb testing.TB, m Mix, d redisDurability) backend {
	rs := startRedis(tb, d)
	opt := asynq.RedisClientOpt{Addr: rs.Addr, PoolSize: m.Producers}
	q := &asynqQueue{m: m, client: asynq.NewClient(opt), insp: asynq.NewInspector(opt)}
	tb.Cleanup(func() { q.client.Close(); q.insp.Close() })
	for _, name := range []string{asynqJump, asynqNormal} {
		if err := q.insp.PauseQueue(name); err != nil {
			tb.Fatal(err)
		}
	}
	srv := asynq.NewServer(opt, asynq.Config{
		Concurrency:    m.Limit,
		Queues:         map[string]int{asynqJump: 2, asynqNormal: 1},
		StrictPriority: true,
		// Poll paused/empty queues often, so that releasing dispatch is
		// not timed as a one-second nap.
		TaskCheckInterval: 2 * time.Millisecond,
		Logger:            asynqLogger{q},
		LogLevel:          asynq.ErrorLevel,
		ShutdownTimeout:   5 * time.Second,
	})
	err := srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		tr := q.tr.Load()
		if tr == nil || len(t.Payload()) != 8 {
			return fmt.Errorf("task %q outside a round", t.Payload())
		}
		i := int(binary.BigEndian.Uint64(t.Payload()))
		tr.Start(i)
		tr.Finish(i)
		return nil
	}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown)
	return q
}

func asynqTask(r, i int) (*asynq.Task, asynq.Option) {
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], uint64(i))
	return asynq.NewTask(asynqType, p[:]), asynq.TaskID(fmt.Sprintf("%d-%d", r, i))
}

func (q *asynqQueue) Enqueue(ctx context.Context, r, i int) error {
	t, id := asynqTask(r, i)
	_, err := q.client.EnqueueContext(ctx, t, id, asynq.Queue(asynqNormal))
	return err
}

func (q *asynqQueue) Jump(ctx context.Context, r, i int) error {
	t, id := asynqTask(r, i)
	if err := q.insp.DeleteTask(asynqNormal, fmt.Sprintf("%d-%d", r, i)); err != nil {
		return err
	}
	_, err := q.client.EnqueueContext(ctx, t, id, asynq.Queue(asynqJump))
	return err
}

func (q *asynqQueue) Run(ctx context.Context, r int, tr *Tracker) error {
	q.tr.Store(tr)
	// The jump queue first, so that the processor never sees the normal
	// queue open while the jump queue is still paused.
	for _, name := range []string{asynqJump, asynqNormal} {
		if err := q.insp.UnpauseQueue(name); err != nil {
			return err
		}
	}
	if err := waitDone(ctx, tr); err != nil {
		return err
	}
	// The handlers have returned; a job is complete once the processor has
	// removed it from Redis (its "done" write).
	for {
		empty := true
		for _, name := range []string{asynqJump, asynqNormal} {
			info, err := q.insp.GetQueueInfo(name)
			if err != nil {
				return err
			}
			if info.Size != 0 {
				empty = false
			}
		}
		if empty {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	for _, name := range []string{asynqJump, asynqNormal} {
		if err := q.insp.PauseQueue(name); err != nil {
			return err
		}
	}
	if e := q.logErr.Load(); e != nil {
		return fmt.Errorf("asynq logged an error: %s", *e)
	}
	return nil
}

// asynqLogger keeps asynq quiet but remembers the last error it reported,
// which fails the round.
type asynqLogger struct{ q *asynqQueue }

func (asynqLogger) Debug(...any) {}
func (asynqLogger) Info(...any)  {}
func (asynqLogger) Warn(...any)  {}
func (l asynqLogger) Error(args ...any) {
	s := fmt.Sprint(args...)
	l.q.logErr.Store(&s)
}
func (l asynqLogger) Fatal(args ...any) { l.Error(args...) }
