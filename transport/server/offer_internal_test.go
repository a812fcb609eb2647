package server

import (
	"testing"

	"jumpfleet/engine"
)

// TestCheckInKeepsSameTurnOffer: a passive client's check-in and its
// dispatch can fall in the same engine turn; OnCommit's push then sets the
// offer before the check-in handler (whose answer still says pending)
// runs its tail. The tail must keep that offer, or the client's first
// ChunkRequest is refused with not_upgrading and its slot is held until
// the lease ends. Only an answer saying the upgrade is over (current) or
// abandoned (failed) drops it.
func TestCheckInKeepsSameTurnOffer(t *testing.T) {
	for _, tc := range []struct {
		state engine.State
		keep  bool
	}{
		{engine.StatePending, true},
		{engine.StateUpgrading, true},
		{engine.StateCurrent, false},
		{engine.StateFailed, false},
	} {
		s := &session{}
		o := &offer{}
		s.offer.Store(o) // the push landed first
		s.dropFinishedOffer(tc.state)
		if got := s.offer.Load(); (got == o) != tc.keep {
			t.Errorf("answer %v: offer kept = %v, want %v", tc.state, got == o, tc.keep)
		}
	}
}
