package engine

import (
	"context"
	"time"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// Default connection limit of a backend whose limits block sets none.
const DefaultConnections = 8

// Limiter holds one backend's shared limits: token buckets for messages
// and bytes per second (golang.org/x/time/rate, inside a vandelay.Throttle
// so that vandelay's sources wait on the very same buckets), and the
// number of changes that may use the backend at once. Every worker talking
// to the backend uses the same Limiter; its methods are safe for
// concurrent use.
type Limiter struct {
	// Backend is the backend's name.
	Backend string
	// Connections is the most concurrent changes using the backend; each
	// change uses one connection to it.
	Connections int
	throttle    *vandelay.Throttle
}

// NewLimiter returns a Limiter; zero rates mean unlimited, connections of
// 0 DefaultConnections.
func NewLimiter(backend string, connections int, msgsPerSec float64, bytesPerSec int64) *Limiter {
	if connections <= 0 {
		connections = DefaultConnections
	}
	// The throttle caps no connections itself: Apply does, per change.
	return &Limiter{Backend: backend, Connections: connections, throttle: vandelay.NewThrottle(0, msgsPerSec, bytesPerSec)}
}

// NewLimiters builds one Limiter per backend of m.
func NewLimiters(m *plan.Migration) map[string]*Limiter {
	out := make(map[string]*Limiter, len(m.Backends))
	for _, b := range m.Backends {
		out[b.Name] = NewLimiter(b.Name, b.Limits.Connections, b.Limits.MessagesPerSecond, b.Limits.BytesPerSecond)
	}
	return out
}

// Throttle returns the shared buckets as a vandelay.Throttle for
// a source's Throttle (sources.Spec.Throttle). A nil Limiter returns nil (unlimited).
func (l *Limiter) Throttle() *vandelay.Throttle {
	if l == nil {
		return nil
	}
	return l.throttle
}

// WaitMessages blocks until n messages may be sent (or ctx ends). A nil
// Limiter never blocks.
func (l *Limiter) WaitMessages(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		if err := l.Throttle().WaitMessage(ctx); err != nil {
			return err
		}
	}
	return nil
}

// WaitBytes blocks until n bytes may be sent (or ctx ends).
func (l *Limiter) WaitBytes(ctx context.Context, n int64) error {
	return l.Throttle().WaitBytes(ctx, n)
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
