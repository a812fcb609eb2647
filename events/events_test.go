package events

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"

	"jumpfleet/engine"
)

func ev(typ engine.EventType, client byte) engine.Event {
	return engine.Event{Type: typ, At: time.UnixMilli(1_700_000_000_000).UTC(), Client: engine.ClientID{client},
		Kind: engine.KindActive, Platform: engine.PlatformLinuxX64, State: engine.StatePending,
		Version: engine.Version{Major: 1, Minor: 2, Patch: 3}}
}

func TestRecordJSON(t *testing.T) {
	s := engine.DefaultSettings()
	r := MakeRecord(42, 3, engine.Event{Type: engine.EvSettingsChanged, At: time.Unix(0, 0).UTC(), Settings: &s})
	b, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"42-3","type":"settings_changed","at":"1970-01-01T00:00:00Z","settings":{"max_concurrent":100,"starts_per_sec":50,"start_burst":50,"bytes_per_sec":104857600,"lease_time":"10m0s","retry_limit":5,"retry_base":"30s","retry_max":"30m0s","paused":false}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	r = MakeRecord(7, 0, ev(engine.EvQueued, 0xab))
	b, _ = json.Marshal(&r)
	want = `{"id":"7-0","type":"queued","at":"2023-11-14T22:13:20Z","client":"ab000000000000000000000000000000","kind":"active","platform":"linux-x64","state":"pending","version":"1.2.3"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	for _, id := range []string{"0-0", "18446744073709551615-2147483647", "5-12"} {
		tn, ix, ok := ParseID(id)
		if !ok || ID(tn, ix) != id {
			t.Fatalf("ParseID(%q) = %d %d %v", id, tn, ix, ok)
		}
	}
	for _, bad := range []string{"", "5", "-1", "a-1", "1-", "1-b", "1-2-3"} {
		if _, _, ok := ParseID(bad); ok {
			t.Fatalf("ParseID(%q) accepted", bad)
		}
	}
}

func TestRingReadGapSinceClient(t *testing.T) {
	r := NewRing(8)
	if n, next, gap := r.Read(0, make([]Record, 4)); n != 0 || next != 0 || gap {
		t.Fatalf("empty read: %d %d %v", n, next, gap)
	}
	// Turn 1: 3 events, turn 2: 4 events; all held.
	r.Add(1, []engine.Event{ev(engine.EvQueued, 1), ev(engine.EvQueued, 2), ev(engine.EvQueued, 1)})
	r.Add(2, []engine.Event{ev(engine.EvStarted, 1), ev(engine.EvStarted, 2), ev(engine.EvProgress, 1), ev(engine.EvUpgraded, 1)})
	dst := make([]Record, 16)
	n, next, gap := r.Read(0, dst)
	if n != 7 || next != 7 || gap || dst[3].ID != "2-0" || dst[6].ID != "2-3" {
		t.Fatalf("read all: n=%d next=%d gap=%v ids %s..%s", n, next, gap, dst[0].ID, dst[n-1].ID)
	}
	if s, ok := r.Since("1-2"); s != 3 || !ok {
		t.Fatalf("Since(1-2) = %d %v", s, ok)
	}
	if s, ok := r.Since("2-3"); s != 7 || !ok {
		t.Fatalf("Since(2-3) = %d %v", s, ok)
	}
	if s, ok := r.Since("junk"); s != 7 || ok {
		t.Fatalf("Since(junk) = %d %v", s, ok)
	}
	h := r.Client(engine.ClientID{1}, 10)
	if len(h) != 5 || h[0].ID != "1-0" || h[4].ID != "2-3" {
		t.Fatalf("history of client 1: %v", h)
	}
	if h := r.Client(engine.ClientID{1}, 2); len(h) != 2 || h[1].ID != "2-3" {
		t.Fatalf("capped history keeps the newest: %v", h)
	}
	// Turn 3 evicts: 7+4 = 11 events, ring 8: oldest held is seq 3 ("1-2"... no: seq 3 is "2-0").
	r.Add(3, []engine.Event{ev(engine.EvQueued, 3), ev(engine.EvQueued, 4), ev(engine.EvQueued, 5), ev(engine.EvQueued, 6)})
	n, next, gap = r.Read(1, dst)
	if !gap || n != 8 || next != 11 || dst[0].ID != "2-0" {
		t.Fatalf("read after eviction: n=%d next=%d gap=%v first=%s", n, next, gap, dst[0].ID)
	}
	if s, ok := r.Since("1-0"); s != 3 || ok {
		t.Fatalf("Since(evicted) = %d %v, want 3 false", s, ok)
	}
	if s, ok := r.Since("1-2"); s != 3 || !ok {
		t.Fatalf("Since(just before oldest) = %d %v, want 3 true", s, ok)
	}
	n, next, _ = r.Read(next, dst)
	if n != 0 || next != 11 {
		t.Fatalf("read at head: %d %d", n, next)
	}
}

func TestRingWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := NewRing(4)
		got := make(chan bool, 1)
		go func() { got <- r.Wait(context.Background(), 0) }()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("Wait returned before any event")
		default:
		}
		r.Add(1, []engine.Event{ev(engine.EvQueued, 1)})
		if !<-got {
			t.Fatal("Wait = false after Add")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r.Wait(ctx, 1) {
			t.Fatal("Wait(head) = true without a new event")
		}
		go func() { got <- r.Wait(context.Background(), 1) }()
		synctest.Wait()
		r.Close()
		r.Close()
		if <-got {
			t.Fatal("Wait = true after Close")
		}
	})
}

func startNATS(t testing.TB) (*nats.Conn, string) {
	t.Helper()
	ns, err := StartEmbedded("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, ns.ClientURL()
}

func TestPublisherSubjectsHeadersAndOrder(t *testing.T) {
	pubConn, url := startNATS(t)
	sub, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs := make(chan *nats.Msg, 100)
	s, err := sub.ChanSubscribe("jumpfleet.events.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(PublisherConfig{Conn: pubConn})
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Event{ev(engine.EvQueued, 1), ev(engine.EvStarted, 1), ev(engine.EvUpgraded, 1)}
	p.Enqueue(9, want[:2])
	p.Enqueue(10, want[2:])
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	ids := []string{"9-0", "9-1", "10-0"}
	for i, w := range want {
		select {
		case m := <-msgs:
			if m.Subject != "jumpfleet.events."+string(w.Type) {
				t.Fatalf("msg %d subject %s", i, m.Subject)
			}
			if got := m.Header.Get("Nats-Msg-Id"); got != ids[i] {
				t.Fatalf("msg %d Nats-Msg-Id %q want %q", i, got, ids[i])
			}
			var rec Record
			if err := json.Unmarshal(m.Data, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.ID != ids[i] || rec.Type != w.Type || rec.Client != w.Client || rec.Version != w.Version {
				t.Fatalf("msg %d body %s", i, m.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not received", i)
		}
	}
	if st := p.Stats(); st.Published != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPublisherDropsAreCountedNeverBlock(t *testing.T) {
	nc, _ := startNATS(t)
	p, err := NewPublisher(PublisherConfig{Conn: nc, QueueLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	// One turn larger than the queue: what does not fit is dropped at once.
	big := make([]engine.Event, 25)
	for i := range big {
		big[i] = ev(engine.EvProgress, byte(i))
	}
	p.Enqueue(1, big)
	if d := p.Stats().Dropped[DropQueueFull]; d != 15 {
		t.Fatalf("queue_full drops = %d, want 15", d)
	}
	_ = p.Close()
	p.Enqueue(2, big[:4])
	st := p.Stats()
	if st.Dropped[DropClosed] != 4 || st.Published != 10 {
		t.Fatalf("after close: %+v", st)
	}

	// A closed connection: every publish fails and is counted.
	nc2, _ := startNATS(t)
	nc2.Close()
	p2, _ := NewPublisher(PublisherConfig{Conn: nc2})
	p2.Enqueue(1, big[:5])
	_ = p2.Close()
	if st := p2.Stats(); st.Dropped[DropPublishError] != 5 || st.Published != 0 {
		t.Fatalf("closed conn: %+v", st)
	}
}

func TestEmbeddedBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	start := time.Now()
	if ns, err := StartEmbedded(ln.Addr().String()); err == nil {
		ns.Shutdown()
		t.Fatal("StartEmbedded on a busy port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a busy port took %v to report", d)
	}
	if _, err := StartEmbedded("nocolon"); err == nil {
		t.Fatal("bad address accepted")
	}
}

// FuzzParseID: ParseID accepts exactly what ID produces.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"0-0", "12-3", "1-", "-1", "a-b", "18446744073709551615-2147483647", "01-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		turn, index, ok := ParseID(s)
		if !ok {
			return
		}
		if again := ID(turn, index); again != s {
			// Leading zeros or '+' parse but are not canonical: the ring
			// still orders them correctly by value.
			if t2, i2, ok2 := ParseID(again); !ok2 || t2 != turn || i2 != index {
				t.Fatalf("%q -> %d %d -> %q does not parse back", s, turn, index, again)
			}
		}
	})
}
