package engine

import (
	"context"
	"testing"
	"time"
)

// heldBudget is a Budget whose slots of the backends in wait are never
// free: each Acquire for them says it is waiting and blocks until its ctx
// ends. (The real one, in PostgreSQL, is tested in engine/state/pgstate.)
type heldBudget struct {
	wait    map[string]bool
	waiting chan []string
}

func (b *heldBudget) Acquire(ctx context.Context, backends []string) (func(), error) {
	for _, name := range backends {
		if b.wait[name] {
			b.waiting <- backends
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}
	return func() {}, nil
}

func (b *heldBudget) Take(_ context.Context, _ string, _ RateKind, want int64) (int64, time.Duration, error) {
	return want, 0, nil
}

// TestApplyBudgetWait: changes waiting for a shared slot wait on their own
// goroutines (two at once, as legacy's local limit allows: the applier's
// mutex is not held while waiting), and a stop while they wait skips them
// and their dependents without running anything.
func TestApplyBudgetWait(t *testing.T) {
	h := newHarness(t)
	b := &heldBudget{wait: map[string]bool{"legacy": true}, waiting: make(chan []string, 10)}
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := testPlan()
	done := make(chan *ApplyResult, 1)
	go func() {
		res, err := Apply(context.Background(), h.plan(), &Env{Plan: m, Executor: h.w, Router: h.w, Journal: h.j, Limiters: NewLimiters(m), Stop: stop, Budget: b})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for range 2 { // legacy's connections
		<-b.waiting
	}
	cancel()
	res := <-done
	if res.OK != 0 || res.Failed != 0 || res.Skipped != len(res.Results) || len(h.w.calls) != 0 {
		t.Errorf("ok %d, failed %d, skipped %d of %d; executor calls %v", res.OK, res.Failed, res.Skipped, len(res.Results), h.w.calls)
	}
	for _, r := range res.Results {
		if r.Skipped == "" {
			t.Errorf("%s: skipped without a reason", r.Change.ID)
		}
	}
}
