package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// markRecorder is a PendingMarker that records each mark with whether the
// account's route was frozen at the time.
type markRecorder struct {
	h    *harness
	fail bool

	mu    sync.Mutex
	marks []string
}

func (m *markRecorder) MarkPending(_ context.Context, account, target string) error {
	m.h.w.mu.Lock()
	frozen := m.h.w.routes[account].Frozen
	m.h.w.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := account + " → " + target
	if frozen {
		s += " (frozen!)"
	}
	m.marks = append(m.marks, s)
	if m.fail {
		return errors.New("route table unreachable")
	}
	return nil
}

// TestApplyMarksPending: every account the apply works on towards a
// cut-over is marked pending with its target, from its first import on
// and never only once frozen; a mark that fails does not stop the change.
func TestApplyMarksPending(t *testing.T) {
	for name, fail := range map[string]bool{"marked": false, "marking fails": true} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			rec := &markRecorder{h: h, fail: fail}
			apply := func() *ApplyResult {
				t.Helper()
				m := testPlan()
				res, err := Apply(context.Background(), h.plan(), &Env{Plan: m, Executor: h.w, Router: h.w, Journal: h.j,
					Limiters: NewLimiters(m), Parallelism: h.par, Pending: rec})
				if err != nil {
					t.Fatal(err)
				}
				if res.Failed+res.RolledBack != 0 {
					t.Fatalf("apply: %+v", res)
				}
				return res
			}
			apply() // imports and exports
			want := []string{"a@example.test → stalwart", "b@example.test → stalwart", "c@example.test → stalwart", "d@example.test → stalwart", "e@example.test → stalwart"}
			rec.mu.Lock()
			got := slices.Compact(slices.Sorted(slices.Values(rec.marks)))
			rec.mu.Unlock()
			if !slices.Equal(got, want) {
				t.Fatalf("marks after staging: %q, want %q", got, want)
			}
			for range 4 {
				apply() // catch-ups and cut-overs
			}
			if h.phase("a@example.test") != state.PhaseDone {
				t.Fatalf("a not cut over: %s", h.phase("a@example.test"))
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, m := range rec.marks {
				if !slices.Contains(want, m) {
					t.Errorf("mark %q", m)
				}
			}
		})
	}
}
