package vandelay

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"golang.org/x/time/rate"
)

// Throttle bounds what an import may ask of a backend: parallel
// connections and token buckets for messages and bytes per second. A nil
// *Throttle or a zero field means unlimited.
type Throttle struct {
	// Connections caps parallel connections. 0: no cap.
	Connections int
	msgs, bytes *rate.Limiter
	// sharedMsgs and sharedBytes, when set (Share), replace msgs and
	// bytes: the tokens come from a bucket shared with other processes.
	sharedMsgs, sharedBytes *sharedBucket
}

// NewThrottle returns a throttle. msgsPerSec and bytesPerSec of 0 mean
// unlimited.
func NewThrottle(connections int, msgsPerSec float64, bytesPerSec int64) *Throttle {
	t := &Throttle{Connections: connections}
	if msgsPerSec > 0 {
		t.msgs = rate.NewLimiter(rate.Limit(msgsPerSec), max(1, int(math.Ceil(msgsPerSec/10))))
	}
	if bytesPerSec > 0 {
		t.bytes = rate.NewLimiter(rate.Limit(bytesPerSec), int(min(bytesPerSec, math.MaxInt32)))
	}
	return t
}

// Conns returns the connection count to use for a wanted count.
func (t *Throttle) Conns(want int) int {
	if want <= 0 {
		want = 4
	}
	if t != nil && t.Connections > 0 && want > t.Connections {
		return t.Connections
	}
	return want
}

// WaitMessage waits for one message's worth of tokens.
func (t *Throttle) WaitMessage(ctx context.Context) error {
	if t == nil || t.msgs == nil {
		return nil
	}
	if t.sharedMsgs != nil {
		return t.sharedMsgs.wait(ctx, 1, t.msgs)
	}
	return t.msgs.Wait(ctx)
}

// WaitBytes waits until n bytes may be transferred.
func (t *Throttle) WaitBytes(ctx context.Context, n int64) error {
	if t == nil || t.bytes == nil {
		return nil
	}
	if t.sharedBytes != nil {
		return t.sharedBytes.wait(ctx, n, t.bytes)
	}
	for n > 0 {
		c := min(n, int64(t.bytes.Burst()))
		if err := t.bytes.WaitN(ctx, int(c)); err != nil {
			return err
		}
		n -= c
	}
	return nil
}

// Backoff is a capped exponential backoff with jitter for retrying after
// a server says [LIMIT], [UNAVAILABLE], [INUSE] or drops the connection.
type Backoff struct {
	// Base is the first delay. Default: 500ms.
	Base time.Duration
	// Max caps a delay. Default: 30s.
	Max time.Duration
	// Attempts is how many retries are allowed. Default: 6.
	Attempts int

	n int
}

// ErrGiveUp is returned by Backoff.Wait when the attempts are used up.
var ErrGiveUp = errors.New("giving up after repeated temporary failures")

// Wait sleeps for the next delay, or returns ErrGiveUp or ctx's error.
func (b *Backoff) Wait(ctx context.Context) error {
	base, mx, att := b.Base, b.Max, b.Attempts
	if base <= 0 {
		base = 500 * time.Millisecond
	}
	if mx <= 0 {
		mx = 30 * time.Second
	}
	if att <= 0 {
		att = 6
	}
	if b.n >= att {
		return ErrGiveUp
	}
	d := base << b.n
	if d > mx || d <= 0 {
		d = mx
	}
	d = d/2 + rand.N(d/2+1)
	b.n++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Reset starts the delays over after a success.
func (b *Backoff) Reset() { b.n = 0 }
