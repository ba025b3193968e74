package vandelay

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// TakeFunc takes up to want tokens from a bucket shared with other
// processes (the fleet's budget in PostgreSQL). It returns how many it
// got, possibly 0; with 0, retry says how long until the bucket has
// refilled enough to try again.
type TakeFunc func(ctx context.Context, want int64) (got int64, retry time.Duration, err error)

// Share makes the throttle draw its message and byte tokens from shared
// buckets instead of only its own: each round trip takes a chunk (a tenth
// of a second's worth) into a local reserve that the waits spend, so the
// processes sharing a backend stay together within its rates without one
// round trip per message. A nil TakeFunc, or a rate the throttle does not
// limit, stays local. When a take fails (the database is out of reach)
// that wait falls back to the throttle's own bucket, so one process alone
// still keeps to the limit. Call Share before the throttle is used.
func (t *Throttle) Share(msgs, bytes TakeFunc) {
	if t == nil {
		return
	}
	if msgs != nil && t.msgs != nil {
		t.sharedMsgs = newSharedBucket(msgs, float64(t.msgs.Limit()))
	}
	if bytes != nil && t.bytes != nil {
		t.sharedBytes = newSharedBucket(bytes, float64(t.bytes.Limit()))
	}
}

// sharedBucket is a process's reserve of tokens taken from a shared
// bucket.
type sharedBucket struct {
	take  TakeFunc
	chunk int64
	// sem lets one waiter at a time take and spend (honouring ctx, which
	// a mutex would not); the reserve is only touched while holding it.
	sem  chan struct{}
	have int64
}

func newSharedBucket(take TakeFunc, perSecond float64) *sharedBucket {
	return &sharedBucket{take: take, chunk: max(1, int64(math.Ceil(perSecond/10))), sem: make(chan struct{}, 1)}
}

// Bounds of the pause between takes that found the shared bucket empty.
const (
	minSharedRetry = 10 * time.Millisecond
	maxSharedRetry = time.Second
)

// wait spends n tokens, taking more from the shared bucket as needed.
func (b *sharedBucket) wait(ctx context.Context, n int64, local *rate.Limiter) error {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-b.sem }()
	for b.have < n {
		got, retry, err := b.take(ctx, max(b.chunk, n-b.have))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The shared bucket is out of reach: keep to the
			// process's own limit for what is still missing.
			return waitLocal(ctx, local, n-b.have, b)
		}
		b.have += got
		if b.have >= n || got > 0 {
			continue
		}
		t := time.NewTimer(min(max(retry, minSharedRetry), maxSharedRetry))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	b.have -= n
	return nil
}

// waitLocal spends the reserve and waits on the local limiter for the
// remaining missing tokens.
func waitLocal(ctx context.Context, l *rate.Limiter, missing int64, b *sharedBucket) error {
	b.have = 0
	for missing > 0 {
		c := min(missing, int64(max(1, l.Burst())))
		if err := l.WaitN(ctx, int(c)); err != nil {
			return err
		}
		missing -= c
	}
	return nil
}
