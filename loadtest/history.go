package loadtest

import (
	"fmt"
	"strings"
	"time"

	"jumpfleet/engine"
)

// history is a passive agent's last few contacts with the broker, kept to
// explain an upgrade that started long after the agent was queued: the
// run's notes give the latest such client's (which check-ins it made,
// what it was told, when it was sent away). It is bounded: the last
// histLen events.
type history struct {
	ev [histLen]histEv
	n  int // events recorded, ever; the ring holds the last histLen
}

const histLen = 24

type histEv struct {
	at    int64 // unix ns
	what  byte  // see histWhat
	state engine.State
	pos   int32
	ms    int32 // a duration in ms: retry-after, a goodbye's retry-after
}

// What a history event is.
const (
	histCheckIn = 'c' // a check-in answered: state, position, retry-after
	histBye     = 'b' // the connection closed with the broker's retry-after
	histOffer   = 'o' // an upgrade offer arrived (the start)
	histLinger  = 'l' // a linger ended without an offer
	histFailed  = 'x' // a check-in failed on its connection
)

func (h *history) add(what byte, state engine.State, pos int, d time.Duration) {
	if h == nil {
		return
	}
	h.ev[h.n%histLen] = histEv{at: time.Now().UnixNano(), what: what, state: state, pos: int32(min(pos, 1<<30)), ms: int32(min(d.Milliseconds(), 1<<30))}
	h.n++
}

// format renders the ring oldest first, times in seconds relative to ref.
func (h *history) format(ref int64) string {
	if h == nil || h.n == 0 {
		return ""
	}
	var b strings.Builder
	if h.n > histLen {
		fmt.Fprintf(&b, "(%d earlier) ", h.n-histLen)
	}
	first := max(0, h.n-histLen)
	for i := first; i < h.n; i++ {
		e := h.ev[i%histLen]
		if i > first {
			b.WriteString("; ")
		}
		t := time.Duration(e.at - ref).Seconds()
		switch e.what {
		case histCheckIn:
			fmt.Fprintf(&b, "%+.1fs %s pos %d retry %.1fs", t, e.state, e.pos, float64(e.ms)/1000)
		case histBye:
			fmt.Fprintf(&b, "%+.1fs bye retry %.1fs", t, float64(e.ms)/1000)
		case histOffer:
			fmt.Fprintf(&b, "%+.1fs offer", t)
		case histLinger:
			fmt.Fprintf(&b, "%+.1fs linger ended", t)
		case histFailed:
			fmt.Fprintf(&b, "%+.1fs check-in failed", t)
		}
	}
	return b.String()
}
