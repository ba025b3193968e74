package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

func TestBreakerStateMachine(t *testing.T) {
	const (
		A = evAnswered
		U = evUnreachable
		C = evCancelled
	)
	tests := []struct {
		name      string
		threshold int
		events    []breakerEvent
		// openedAt is the index of the event that opens it, -1 for never.
		openedAt int
		failures int
	}{
		{"three in a row open it", 3, []breakerEvent{U, U, U}, 2, 3},
		{"an answer resets the count", 3, []breakerEvent{U, U, A, U, U}, -1, 2},
		{"a cancellation says nothing", 3, []breakerEvent{U, C, U, C, U}, 4, 3},
		{"threshold one", 1, []breakerEvent{A, U}, 1, 1},
		{"zero never opens", 0, []breakerEvent{U, U, U, U, U}, -1, 5},
		{"open stays open after an answer", 2, []breakerEvent{U, U, A, A}, 1, 2},
		{"opens only once", 2, []breakerEvent{U, U, U, U}, 1, 4},
		{"answers only", 3, []breakerEvent{A, A, A}, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &breaker{threshold: tt.threshold}
			opened := -1
			for i, ev := range tt.events {
				if b.observe(ev, fmt.Sprintf("err %d", i)) {
					if opened >= 0 {
						t.Fatalf("opened twice, at %d and %d", opened, i)
					}
					opened = i
				}
			}
			if opened != tt.openedAt || b.failures != tt.failures || b.open != (tt.openedAt >= 0) {
				t.Fatalf("opened at %d (open %v), %d failures; want %d, %d", opened, b.open, b.failures, tt.openedAt, tt.failures)
			}
			if b.open && b.lastErr == "" {
				t.Fatal("open breaker without its last error")
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("authentication refused (HTTP 401)"), false},
		{fmt.Errorf("export: target x: %w", refused), true},
		{fmt.Errorf("import: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("jmap session: %w", os.ErrDeadlineExceeded), true},
		{fmt.Errorf("discover: %w", context.DeadlineExceeded), true},
		{fmt.Errorf("%w: greeting from x: EOF", vandelay.ErrConnect), true},
		{fmt.Errorf("%w: log in", vandelay.ErrAuth), false},
		{context.Canceled, false},
	}
	for _, tt := range tests {
		if got := Unreachable(tt.err); got != tt.want {
			t.Errorf("Unreachable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// downWorld is the fake world with a target that can be down, and a
// probe of it.
type downWorld struct {
	*fakeWorld
	mu      sync.Mutex
	down    bool
	exports int
	probes  []string
}

var _ Prober = (*downWorld)(nil)

func (w *downWorld) refused() error {
	return fmt.Errorf("target stalwart: jmap session: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
}

func (w *downWorld) Export(ctx context.Context, job *Job) (state.Counts, error) {
	w.mu.Lock()
	w.exports++
	down := w.down
	w.mu.Unlock()
	if down {
		return state.Counts{}, w.refused()
	}
	return w.fakeWorld.Export(ctx, job)
}

func (w *downWorld) ProbeSource(ctx context.Context, acct *plan.Account) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probes = append(w.probes, "source "+acct.Address)
	return nil
}

func (w *downWorld) ProbeTarget(ctx context.Context, acct *plan.Account) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probes = append(w.probes, "target "+acct.Address)
	if w.down {
		return w.refused()
	}
	return nil
}

// TestApplyBreaker: a target that refuses connections gets threshold
// exports, then nothing; the wave halts naming it; the journal keeps the
// breaker open; the next apply probes once and skips while it is still
// down, and dispatches again once the probe succeeds.
func TestApplyBreaker(t *testing.T) {
	h := newHarness(t)
	w := &downWorld{fakeWorld: h.w, down: true}
	m := testPlan()
	m.Backends[1].Limits.BreakerFailures = 2
	apply := func(ch *Changes) *ApplyResult {
		t.Helper()
		st := h.j.State()
		open := map[string]string{}
		for name, b := range st.Breakers {
			open[name] = b.Error
		}
		res, err := Apply(context.Background(), ch, &Env{Plan: m, Executor: w, Router: h.w, Journal: h.j, Limiters: NewLimiters(m),
			Parallelism: 1, OpenBreakers: open})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := apply(h.plan())
	if w.exports != 2 {
		t.Fatalf("%d exports to the dead target, want 2 (the threshold)", w.exports)
	}
	if res.OpenBreakers["stalwart"] == "" || !strings.Contains(res.OpenBreakers["stalwart"], "connection refused") || res.Err() == nil {
		t.Fatalf("result: %+v", res)
	}
	skipped := 0
	for _, r := range res.Results {
		if r.Outcome == OutcomeSkipped && strings.Contains(r.Skipped, "stalwart") {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatalf("no change skipped naming the backend: %+v", res.Results)
	}
	b := h.j.State().Breakers["stalwart"]
	if b == nil || !strings.Contains(b.Error, "connection refused") {
		t.Fatalf("journal breaker: %+v", b)
	}

	_, diags := Observe(context.Background(), m, h.j.State(), nil)
	if len(diags) != 1 || diags[0].Summary != "Backend unreachable" || !strings.Contains(diags[0].Detail, "stalwart") {
		t.Fatalf("plan does not warn about the open breaker: %v", diags)
	}

	// Still down: one probe, no export.
	w.exports = 0
	res = apply(h.plan())
	if w.exports != 0 || len(w.probes) != 1 || !strings.HasPrefix(w.probes[0], "target ") {
		t.Fatalf("second run: %d exports, probes %v", w.exports, w.probes)
	}
	if res.OpenBreakers["stalwart"] == "" || h.j.State().Breakers["stalwart"] == nil {
		t.Fatalf("breaker closed while the target is down: %+v", res)
	}

	// Back: the probe closes it and the exports run.
	w.down = false
	res = apply(h.plan())
	if len(w.probes) != 2 || res.OpenBreakers != nil || h.j.State().Breakers != nil && len(h.j.State().Breakers) != 0 {
		t.Fatalf("third run: probes %v, result %+v, state %+v", w.probes, res, h.j.State().Breakers)
	}
	if res.Err() != nil || w.exports == 0 {
		t.Fatalf("third run did not export: %+v", res)
	}
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		if p := h.phase(a + "@example.test"); p != state.PhaseStaged {
			t.Fatalf("%s phase %s after the target came back", a, p)
		}
	}
	h.verifyJournal()
}
