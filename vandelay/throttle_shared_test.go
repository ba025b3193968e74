package vandelay

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestThrottleShare: the waits take tokens from the shared bucket a chunk
// (a tenth of a second's worth) at a time, not one per message; an empty
// bucket is retried; a failing bucket falls back to the local one; kinds
// without a rate stay local.
func TestThrottleShare(t *testing.T) {
	ctx := context.Background()
	var takes, empty int
	th := NewThrottle(0, 1000, 0)
	th.Share(func(_ context.Context, want int64) (int64, time.Duration, error) {
		takes++
		if takes%3 == 0 {
			empty++
			return 0, time.Millisecond, nil // empty: retried
		}
		return want, 0, nil
	}, func(context.Context, int64) (int64, time.Duration, error) {
		t.Error("bytes are not limited: the shared bucket must not be asked")
		return 0, 0, nil
	})
	for range 500 {
		if err := th.WaitMessage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := takes - empty; got != 5 { // 500 messages, chunks of 100
		t.Errorf("%d takes that got tokens for 500 messages, want 5", got)
	}
	if err := th.WaitBytes(ctx, 1<<20); err != nil {
		t.Fatal(err)
	}

	broken := NewThrottle(0, 1000, 1000)
	calls := 0
	fail := func(context.Context, int64) (int64, time.Duration, error) {
		calls++
		return 0, 0, errors.New("database away")
	}
	broken.Share(fail, fail)
	for range 3 {
		if err := broken.WaitMessage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := broken.WaitBytes(ctx, 500); err != nil {
		t.Fatal(err)
	}
	if calls != 4 {
		t.Errorf("%d takes, want 4 (each wait tried the shared bucket once)", calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := broken.WaitMessage(cctx); err == nil {
		t.Error("a cancelled wait returned nil")
	}
}
