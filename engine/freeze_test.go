package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// ackRouter is the fake world's route table with proxies that acknowledge
// route changes (a Barrier): it records "await EVENT ACCOUNT" among the
// world's calls, so the order against the executor's shows, and can
// withhold it.
type ackRouter struct {
	*fakeWorld
	never bool // never acknowledge: wait for ctx
}

func (r *ackRouter) AwaitRoute(ctx context.Context, account string, ev RouteEvent) error {
	r.mu.Lock()
	rt := r.routes[account]
	r.calls = append(r.calls, "await "+string(ev)+" "+account+" "+rt.Backend)
	r.mu.Unlock()
	if !rt.Frozen {
		return errors.New("not frozen")
	}
	if r.never {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

var _ Barrier = (*ackRouter)(nil)

// TestApplyFreezeAck: with a Barrier the cut-over waits for the
// acknowledgement right after the freeze and starts the final catch-up
// after it, without the settle delay (set to an hour here: it would hang
// the test), and waits again after the flip, before it unfreezes; a freeze
// that is never acknowledged rolls the account back after
// BarrierTimeout, unfrozen on its source.
func TestApplyFreezeAck(t *testing.T) {
	for _, never := range []bool{false, true} {
		h := newHarness(t)
		h.apply(h.plan(), nil) // staging
		h.apply(h.plan(), nil) // catch-up of the pilot
		ch := h.plan("a@example.test")
		if got := changeList(ch); len(got) != 1 || got[0] != "> cutover a@example.test" {
			t.Fatalf("want the pilot's cut-over, got %v", got)
		}
		rt := &ackRouter{fakeWorld: h.w, never: never}
		h.w.calls = nil
		m := testPlan()
		res, err := Apply(context.Background(), ch, &Env{Plan: m, Executor: h.w, Router: rt, Journal: h.j, Limiters: NewLimiters(m),
			SettleDelay: time.Hour, Barrier: rt, BarrierTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		calls := strings.Join(h.w.calls, ",")
		r := h.w.routes["a@example.test"]
		if !never {
			if res.OK != 1 || calls != "await freeze a@example.test legacy,import a@example.test,export a@example.test,verify a@example.test,await flip a@example.test stalwart" {
				t.Fatalf("acknowledged: %+v, calls %s", res.Results[0], calls)
			}
			if r.Backend != "stalwart" || r.Frozen {
				t.Fatalf("route after the cut-over: %+v", r)
			}
			continue
		}
		if res.RolledBack != 1 || calls != "await freeze a@example.test legacy" {
			t.Fatalf("never acknowledged: %+v, calls %s", res.Results[0], calls)
		}
		if e := res.Results[0].Err; e == nil || !strings.Contains(e.Error(), "did not acknowledge the freeze") {
			t.Fatalf("error %v", e)
		}
		if r.Backend != "legacy" || r.Frozen || h.phase("a@example.test") != state.PhaseCatchingUp {
			t.Fatalf("route after the rollback: %+v, phase %s", r, h.phase("a@example.test"))
		}
	}
}
