package server_test

import (
	"testing"

	"jumpfleet/engine"
	"jumpfleet/transport/server"
	"jumpfleet/transport/wire"
)

// TestCheckInCacheFollowsReleases: a current client's repeated check-ins
// may be answered from the session's cache, but never across a release:
// the first check-in after one reaches the engine and is queued.
func TestCheckInCacheFollowsReleases(t *testing.T) {
	for _, proto := range []string{"tls", "quic"} {
		t.Run(proto, func(t *testing.T) {
			h := newHarness(t, 11, func(c *server.Config, s *engine.Settings) { s.Paused = true })
			_, a := h.enroll(proto, wire.KindActive, v1, "")
			for i := 0; i < 5; i++ {
				ans, err := a.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
				if err != nil || ans.State != wire.StateCurrent {
					t.Fatalf("check-in %d before the release: %+v %v", i, ans, err)
				}
			}
			h.publish("r2", v2, 1000)
			ans, err := a.CheckIn(ctx(t), checkIn(wire.KindActive, v1))
			if err != nil || ans.State != wire.StatePending || ans.Target != wire.Version(v2) {
				t.Fatalf("check-in after the release answered %+v %v, want pending for %v", ans, err, v2)
			}
			st, err := h.node.Status(ctx(t))
			if err != nil || st.ByState["pending"] != 1 {
				t.Fatalf("engine status %+v %v", st.ByState, err)
			}
		})
	}
}
