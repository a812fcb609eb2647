package adminapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"jumpfleet/engine"
	"jumpfleet/events"
)

// events serves GET /v1/events: committed events as server-sent events,
// read from the broker's ring. The stream holds no buffer of its own; a
// reader that falls behind the ring is told of the gap and goes on.
func (a *API) events(w http.ResponseWriter, r *http.Request) {
	select {
	case a.streams <- struct{}{}:
		defer func() { <-a.streams }()
	default:
		writeError(w, errorf(engine.CodeOverloaded, "too many event streams open (%d)", cap(a.streams)))
		return
	}
	q := r.URL.Query()
	var want map[engine.EventType]bool
	if s := q.Get("types"); s != "" {
		want = map[engine.EventType]bool{}
		for _, t := range strings.Split(s, ",") {
			want[engine.EventType(strings.TrimSpace(t))] = true
		}
	}
	ring := a.cfg.Ring
	cur, complete := ring.Head(), true
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		cur, complete = ring.Since(id)
	} else if id := q.Get("since"); id != "" {
		cur, complete = ring.Since(id)
	}
	// The stream outlives the server's write timeout, if any.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf []byte
	if !complete {
		buf = append(buf, "event: gap\ndata: {\"missed\":true}\n\n"...)
	}
	buf = append(buf, ": stream open\n\n"...)
	recs := make([]events.Record, 256)
	for {
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			buf = buf[:0]
		}
		n, next, gap := ring.Read(cur, recs)
		cur = next
		if gap {
			buf = append(buf, "event: gap\ndata: {\"missed\":true}\n\n"...)
		}
		for i := range recs[:n] {
			rec := &recs[i]
			if want != nil && !want[rec.Type] {
				continue
			}
			data, err := json.Marshal(rec)
			if err != nil {
				continue
			}
			buf = append(buf, "id: "...)
			buf = append(buf, rec.ID...)
			buf = append(buf, "\nevent: "...)
			buf = append(buf, rec.Type...)
			buf = append(buf, "\ndata: "...)
			buf = append(buf, data...)
			buf = append(buf, "\n\n"...)
		}
		clear(recs[:n])
		if n > 0 || len(buf) > 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.KeepAlive)
		ok := ring.Wait(ctx, cur)
		cancel()
		switch {
		case ok:
		case r.Context().Err() != nil, ring.Closed():
			return
		default:
			buf = append(buf, ": keepalive\n\n"...)
		}
	}
}
