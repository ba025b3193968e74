package engine

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailmig/mailmig/plan"
)

// Default connection limit of a backend whose limits block sets none.
const DefaultConnections = 8

// Limiter holds one backend's shared limits: token buckets for messages
// and bytes per second, and the connection count. Every worker talking to
// the backend uses the same Limiter. Its methods are safe for concurrent
// use.
type Limiter struct {
	// Backend is the backend's name.
	Backend string
	// Messages and Bytes are nil when unlimited.
	Messages *rate.Limiter
	Bytes    *rate.Limiter
	// Connections is the most concurrent actions using the backend.
	Connections int
}

// NewLimiters builds one Limiter per backend of m.
func NewLimiters(m *plan.Migration) map[string]*Limiter {
	out := make(map[string]*Limiter, len(m.Backends))
	for _, b := range m.Backends {
		l := &Limiter{Backend: b.Name, Connections: b.Limits.Connections}
		if l.Connections <= 0 {
			l.Connections = DefaultConnections
		}
		if r := b.Limits.MessagesPerSecond; r > 0 {
			l.Messages = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
		}
		if r := b.Limits.BytesPerSecond; r > 0 {
			// A burst of one second's worth, at least 1 MiB so that one
			// large message does not need many waits.
			l.Bytes = rate.NewLimiter(rate.Limit(r), int(max(r, 1<<20)))
		}
		out[b.Name] = l
	}
	return out
}

// WaitMessages blocks until n messages may be sent (or ctx ends). A nil
// Limiter never blocks.
func (l *Limiter) WaitMessages(ctx context.Context, n int) error {
	if l == nil || l.Messages == nil {
		return nil
	}
	return waitN(ctx, l.Messages, n)
}

// WaitBytes blocks until n bytes may be sent (or ctx ends).
func (l *Limiter) WaitBytes(ctx context.Context, n int64) error {
	if l == nil || l.Bytes == nil {
		return nil
	}
	for n > 0 {
		c := min(n, int64(l.Bytes.Burst()))
		if err := l.Bytes.WaitN(ctx, int(c)); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

func waitN(ctx context.Context, lim *rate.Limiter, n int) error {
	for n > 0 {
		c := min(n, lim.Burst())
		if err := lim.WaitN(ctx, c); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// Backoff waits before retry attempt (0-based) after the server signalled
// throttling: retryAfter when the server named a delay, else exponential
// from one second up to a minute. It returns ctx's error if ctx ends first.
func Backoff(ctx context.Context, attempt int, retryAfter time.Duration) error {
	d := retryAfter
	if d <= 0 {
		d = time.Second << min(attempt, 6)
	}
	d = min(d, time.Minute)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
