package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"jumpfleet/transport/wire"
)

// Backoff is capped exponential backoff with full jitter: the n-th wait
// is uniform in [0, min(Max, Min·2^n)). A server-given retry-after
// replaces it with retry-after plus uniform jitter up to the same again,
// so that clients told to wait together do not return together.
type Backoff struct {
	Min, Max time.Duration
	n        int
	rng      *rand.Rand
}

// NewBackoff returns a Backoff; seed makes its jitter reproducible.
func NewBackoff(min, max time.Duration, seed uint64) *Backoff {
	return &Backoff{Min: min, Max: max, rng: rand.New(rand.NewPCG(seed, seed^0x5bd1e995))}
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next(retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		b.n++
		return retryAfter + time.Duration(b.rng.Int64N(int64(retryAfter)+1))
	}
	ceil := b.Min
	for k := 0; k < b.n && ceil < b.Max; k++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
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
		t := time.NewTimer(b.Next(RetryAfter(err)))
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
