package vandelay

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var nilT *Throttle
	if nilT.Conns(0) != 4 || nilT.Conns(7) != 7 || nilT.WaitMessage(context.Background()) != nil {
		t.Error("nil throttle must be unlimited with 4 default connections")
	}
	th := NewThrottle(2, 1000, 1<<20)
	if th.Conns(8) != 2 {
		t.Errorf("cap: %d", th.Conns(8))
	}
	start := time.Now()
	for i := 0; i < 200; i++ { // burst 100, then 1000/s
		if err := th.WaitMessage(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("200 messages at 1000/s with burst 100 took only %v", d)
	}
	// More bytes than the burst are waited for in pieces, not refused.
	if err := th.WaitBytes(context.Background(), 1<<20+10); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	b := &Backoff{Base: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}
	for i := 0; i < 3; i++ {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if err := b.Wait(context.Background()); !errors.Is(err, ErrGiveUp) {
		t.Errorf("after the attempts: %v", err)
	}
	b.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b.Base = time.Hour
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestInScope(t *testing.T) {
	c := &Scope{Include: []*regexp.Regexp{regexp.MustCompile(`^(INBOX|Work/)`)}, Exclude: []*regexp.Regexp{regexp.MustCompile(`/Old$`)}}
	for p, want := range map[string]bool{"INBOX": true, "Work/A": true, "Work/Old": false, "Sent": false} {
		if c.InScope(p) != want {
			t.Errorf("%q: %v", p, !want)
		}
	}
	if !(&Scope{}).InScope("anything") {
		t.Error("empty filters must take everything")
	}
}

func TestPartialError(t *testing.T) {
	e := &PartialError{Failed: map[string]error{"A": errors.New("boom")}}
	if e.Error() != "1 mailbox not synced: A: boom" {
		t.Error(e.Error())
	}
}
