package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"syscall"
	"time"

	"jumpfleet/transport/wire"
)

// Backoff is capped exponential backoff with full jitter: the n-th wait
// is uniform in [0, min(Max, Min·2^n)). A server-given retry-after
// replaces it with retry-after plus uniform jitter up to the same again,
// so that clients told to wait together do not return together. After a
// refused connection (NextAfter) the cap is RefusedMax instead.
type Backoff struct {
	Min, Max time.Duration
	// RefusedMax caps the wait after a refused connection (default
	// DefaultRefusedMax, never above Max).
	RefusedMax time.Duration
	n          int
	rng        *rand.Rand
}

// DefaultRefusedMax caps the wait after a refused connection. Nothing
// listens on the server's port: it is restarting, and its kernel answers
// each attempt with a reset at no cost to the server process. With the
// general cap (seconds) every client would still be asleep for up to that
// long after the server is back, and a restarted broker would sit idle
// while its clients wait; with this cap they return within a second of
// it. What it costs is one SYN and one RST per client per second while
// the server is down (15,000 clients: 15,000 packets/s on loopback, a
// few per cent of one core), and none once it is up: a connection the
// server accepts and then sheds (reset or EOF after the accept bucket or
// the handshake cap) is a load signal and backs off to Max as before.
const DefaultRefusedMax = time.Second

// NewBackoff returns a Backoff; seed makes its jitter reproducible.
func NewBackoff(min, max time.Duration, seed uint64) *Backoff {
	return &Backoff{Min: min, Max: max, RefusedMax: DefaultRefusedMax, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
}

// NextAfter returns the wait before the next attempt after a failure with
// err: the server's retry-after if err carries one, a wait capped by
// RefusedMax if the connection was refused, else Next(0).
func (b *Backoff) NextAfter(err error) time.Duration {
	if ra := RetryAfter(err); ra > 0 {
		return b.Next(ra)
	}
	if !Refused(err) {
		return b.Next(0)
	}
	capped := b.RefusedMax
	if capped <= 0 {
		capped = DefaultRefusedMax
	}
	return b.jitter(min(capped, b.Max))
}

// Refused reports whether err is a refused connection: nothing listens on
// the server's port (it is down or restarting).
func Refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// Next returns the wait before the next attempt.
func (b *Backoff) Next(retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		b.n++
		return retryAfter + time.Duration(b.rng.Int64N(int64(retryAfter)+1))
	}
	return b.jitter(b.Max)
}

// jitter is the n-th wait under ceiling: uniform in [0, min(ceiling,
// Min·2^n)]; it counts the attempt.
func (b *Backoff) jitter(ceiling time.Duration) time.Duration {
	ceil := b.Min
	for k := 0; k < b.n && ceil < ceiling; k++ {
		ceil *= 2
	}
	ceil = min(ceil, ceiling)
	b.n++
	return time.Duration(b.rng.Int64N(int64(ceil) + 1))
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Login runs on a fresh connection (Auth, Enroll or ConsoleAuth).
type Login func(ctx context.Context, c *Conn) error

// Connect dials and logs in, retrying with b until it works, ctx ends, or
// the failure is one retrying cannot fix (bad credentials, an invalid
// installer, a protocol mismatch).
func Connect(ctx context.Context, cfg Config, login Login, b *Backoff) (*Conn, error) {
	for {
		c, err := Dial(ctx, cfg)
		if err == nil {
			if err = login(ctx, c); err == nil {
				b.Reset()
				return c, nil
			}
			_ = c.Close()
		}
		if Permanent(err) {
			return nil, err
		}
		t := time.NewTimer(b.NextAfter(err))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// Permanent reports whether err will not go away by retrying.
func Permanent(err error) bool {
	var we *wire.Error
	if !errors.As(err, &we) {
		return false
	}
	switch we.Code {
	case wire.CodeAuthFailed, wire.CodeInstallerInvalid, wire.CodeUnknownClient, wire.CodeUnsupportedVer,
		wire.CodeBadKind, wire.CodeKindMismatch, wire.CodeForbidden, wire.CodeBadFrame:
		return true
	}
	return false
}
