package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// copyBackWorld is the fake world with a target that received mail after
// the cut-over: CopyBack moves it to the source.
type copyBackWorld struct {
	*fakeWorld
	pending map[string]int64 // messages on the target not yet copied back
	fail    error
	// routeAtCopy is where the account was routed when CopyBack ran.
	routeAtCopy map[string]string
}

func (w *copyBackWorld) CopyBack(ctx context.Context, job *Job) (state.Counts, error) {
	k := Key(job.Account.Address)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "copy back "+k)
	w.routeAtCopy[k] = w.routes[k].Backend
	if w.fail != nil {
		return state.Counts{}, w.fail
	}
	n := w.pending[k]
	w.source[k] += n
	w.pending[k] = 0
	return state.Counts{Messages: n, CopiedBack: n}, nil
}

func (w *copyBackWorld) CountCopyBack(ctx context.Context, acct *plan.Account, source, target string) (CopyBack, error) {
	k := Key(acct.Address)
	switch {
	case k == "c@example.test":
		return CopyBack{}, ErrNoCopyBack
	case k == "d@example.test":
		return CopyBack{}, errors.New("target down")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return CopyBack{Messages: w.pending[k], Flags: 1}, nil
}

// TestApplyRollbackCopiesBack: the rollback of a cut-over account copies
// back before it routes back; when the copy-back fails the route stays on
// the target and the change fails; the next rollback completes and
// journals the count.
func TestApplyRollbackCopiesBack(t *testing.T) {
	h := newHarness(t)
	for range 3 { // staging, catch-up, cut-over of the pilot wave
		h.apply(h.plan(), nil)
	}
	const k = "a@example.test"
	if h.phase(k) != state.PhaseDone {
		t.Fatalf("phase %s, want done", h.phase(k))
	}
	w := &copyBackWorld{fakeWorld: h.w, pending: map[string]int64{k: 5}, routeAtCopy: map[string]string{}}
	rollback := func() *Result {
		c := &Change{ID: "rollback:" + k, Account: k, Action: Rollback, Phase: h.phase(k), Wave: "pilot", Source: "legacy", Target: "stalwart", Destructive: true}
		ch := &Changes{FormatVersion: FormatVersion, Waves: []*WaveChanges{{Name: "pilot", Changes: []*Change{c}}}}
		m := testPlan()
		res, err := Apply(context.Background(), ch, &Env{Plan: m, Executor: w, Router: w, Journal: h.j, Limiters: NewLimiters(m), Manual: true})
		if err != nil {
			t.Fatal(err)
		}
		return res.Results[0]
	}

	w.fail = errors.New("source refused the connection")
	if r := rollback(); r.Outcome != state.OutcomeFailed || !errors.Is(r.Err, w.fail) {
		t.Fatalf("failed copy-back: %+v", r)
	}
	if r := w.routes[k]; r.Backend != "stalwart" || r.Frozen {
		t.Fatalf("route after a failed copy-back: %+v, want stalwart", r)
	}
	if h.phase(k) != state.PhaseDone {
		t.Fatalf("phase after a failed copy-back: %s", h.phase(k))
	}

	w.fail = nil
	r := rollback()
	if r.Outcome != state.OutcomeOK || r.Counts.CopiedBack != 5 {
		t.Fatalf("rollback: %+v", r)
	}
	if w.routeAtCopy[k] != "stalwart" || w.routes[k].Backend != "legacy" || w.pending[k] != 0 {
		t.Fatalf("copy-back ran with the route on %q; route now %+v; source %d", w.routeAtCopy[k], w.routes[k], w.source[k])
	}
	if a := h.j.Account(k); !a.Held || a.Phase != state.PhaseCatchingUp {
		t.Fatalf("after the rollback: %+v", a)
	}
	found := false
	state.ReadRecords(h.dir, func(rec *state.Record) bool {
		if rec.Type == state.TypeFinish && rec.Action == "rollback" && rec.Outcome == state.OutcomeOK && rec.Counts != nil && rec.Counts.CopiedBack == 5 {
			found = true
		}
		return true
	})
	if !found {
		t.Error("no journaled rollback with copied_back 5")
	}
	h.verifyJournal()
}

func TestCountCopyBacks(t *testing.T) {
	w := &copyBackWorld{fakeWorld: newWorld(), pending: map[string]int64{"a@example.test": 3}}
	mk := func(acct string, p state.Phase) *Change {
		return &Change{ID: "rollback:" + acct, Account: acct, Action: Rollback, Phase: p, Source: "legacy", Target: "stalwart"}
	}
	done, frozen, noArchive, down := mk("a@example.test", state.PhaseDone), mk("b@example.test", state.PhaseFrozen),
		mk("c@example.test", state.PhaseDone), mk("d@example.test", state.PhaseCutOver)
	ch := &Changes{Waves: []*WaveChanges{{Changes: []*Change{done, frozen, noArchive, down}}}}
	CountCopyBacks(context.Background(), ch, testPlan(), w)
	tests := map[string]struct {
		c    *Change
		want *CopyBack
	}{
		"cut over: counted":               {done, &CopyBack{Messages: 3, Flags: 1}},
		"left frozen on the source: none": {frozen, nil},
		"no archive: by route only":       {noArchive, nil},
		"target down: the error is kept":  {down, &CopyBack{Error: "target down"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.c.CopyBack
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
