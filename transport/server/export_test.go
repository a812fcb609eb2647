package server

import (
	"time"

	"jumpfleet/engine"
)

// SetLingerFDs sets how many descriptors connections may hold before
// passive clients are no longer let linger (lingerRoom), as if the
// open-files limit were 10/9 of n.
func (srv *Server) SetLingerFDs(n int64) { srv.lingerFDs.Store(n) }

// MayLinger is mayLinger, with whether a says the client is overdue, for
// tests.
func (srv *Server) MayLinger(a engine.Answer) (stay, overdue bool) {
	return srv.mayLinger(a), a.Overdue()
}

// RejoinAfter is awayRetry for an overdue client, for tests.
func (srv *Server) RejoinAfter(a engine.Answer) time.Duration { return srv.awayRetry(a) }
