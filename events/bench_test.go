package events

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"jumpfleet/engine"
)

// BenchmarkOnCommitPerEvent is what the broker's OnCommit costs the engine
// goroutine per event: the ring copy plus the publisher's enqueue.
func BenchmarkOnCommitPerEvent(b *testing.B) {
	nc, _ := startNATS(b)
	p, err := NewPublisher(PublisherConfig{Conn: nc, QueueLen: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	r := NewRing(65536)
	turn := make([]engine.Event, 256)
	for i := range turn {
		turn[i] = ev(engine.EvStarted, byte(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(turn) {
		r.Add(uint64(i), turn)
		p.Enqueue(uint64(i), turn)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// BenchmarkPublishToSubscriber measures events per second from Enqueue to a
// NATS subscriber on the embedded server, JSON encoding included.
func BenchmarkPublishToSubscriber(b *testing.B) {
	pubConn, url := startNATS(b)
	sub, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	got := make(chan struct{}, 1)
	n := 0
	s, _ := sub.Subscribe("jumpfleet.events.>", func(*nats.Msg) {
		n++
		if n == b.N {
			got <- struct{}{}
		}
	})
	_ = s.SetPendingLimits(-1, -1)
	_ = sub.Flush()
	p, err := NewPublisher(PublisherConfig{Conn: pubConn, QueueLen: 1 << 22})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	turn := make([]engine.Event, 64)
	for i := range turn {
		turn[i] = ev(engine.EvUpgraded, byte(i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i += len(turn) {
		p.Enqueue(uint64(i), turn[:min(len(turn), b.N-i)])
	}
	select {
	case <-got:
	case <-time.After(60 * time.Second):
		b.Fatalf("subscriber got %d of %d (stats %+v)", n, b.N, p.Stats())
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
