package vandelay

import (
	"context"
	"time"
)

// WaitFunc waits d, or less when ctx ends first (then it returns ctx's
// error).
type WaitFunc func(ctx context.Context, d time.Duration) error

type waitsKey struct{}

// WithWaits returns a context under which the waits a source is told to
// make by its server (Retry-After, an EWS back-off, a device-code poll
// interval) go to fn instead of a timer. Tests pass a recorder, so that
// they assert the exact waits asked for without spending them, also
// through layers (the CLI, the engine) that build the source themselves.
func WithWaits(ctx context.Context, fn WaitFunc) context.Context {
	return context.WithValue(ctx, waitsKey{}, fn)
}

// Wait waits d: through the function WithWaits put in ctx, or a timer.
func Wait(ctx context.Context, d time.Duration) error {
	if fn, ok := ctx.Value(waitsKey{}).(WaitFunc); ok && fn != nil {
		return fn(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
