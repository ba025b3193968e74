package report

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// TestBuilder folds a small journal: staging, a cut-over rolled back by
// verify, a retried cut-over, an account frozen at the end, and the
// export's collapsed totals taken from the latest export.
func TestBuilder(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 13, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	seq := uint64(0)
	rec := func(s int, r state.Record) *state.Record {
		seq++
		r.Seq, r.Time = seq, at(s)
		return &r
	}
	cnt := func(c state.Counts) *state.Counts { return &c }
	recs := []*state.Record{
		rec(0, state.Record{Type: state.TypeInit, Lineage: "L"}),
		rec(1, state.Record{Type: state.TypeApplyStart}),
		rec(2, state.Record{Type: state.TypeStart, Account: "a@x.test", Action: "import", Wave: "w1"}),
		rec(3, state.Record{Type: state.TypeFinish, Account: "a@x.test", Action: "import", Outcome: state.OutcomeOK, Counts: cnt(state.Counts{Messages: 10, Bytes: 100})}),
		rec(4, state.Record{Type: state.TypeFinish, Account: "a@x.test", Action: "export", Outcome: state.OutcomeOK, Counts: cnt(state.Counts{Messages: 10, Bytes: 100, Duplicates: 5, KeywordsMerged: 2})}),
		rec(5, state.Record{Type: state.TypeTransition, Account: "a@x.test", Phase: state.PhaseStaged}),
		rec(10, state.Record{Type: state.TypeTransition, Account: "a@x.test", Phase: state.PhaseFrozen}),
		rec(14, state.Record{Type: state.TypeFinish, Account: "a@x.test", Action: "cutover", Outcome: state.OutcomeRolledBack, Error: "verify found 3 mismatches", Counts: cnt(state.Counts{Mismatches: 3})}),
		rec(15, state.Record{Type: state.TypeTransition, Account: "a@x.test", Phase: state.PhaseCatchingUp}),
		rec(20, state.Record{Type: state.TypeTransition, Account: "a@x.test", Phase: state.PhaseFrozen}),
		rec(26, state.Record{Type: state.TypeTransition, Account: "a@x.test", Phase: state.PhaseDone}),
		rec(26, state.Record{Type: state.TypeFinish, Account: "a@x.test", Action: "cutover", Outcome: state.OutcomeOK, Counts: cnt(state.Counts{Messages: 1, Bytes: 10, Duplicates: 4, KeywordsMerged: 2})}),
		rec(30, state.Record{Type: state.TypeTransition, Account: "b@x.test", Phase: state.PhaseFrozen}),
	}
	b := NewBuilder()
	for _, r := range recs {
		b.Add(r)
	}
	m := &plan.Migration{Waves: []*plan.Wave{{Name: "w1"}, {Name: "w2"}},
		Accounts: []*plan.Account{{Address: "a@x.test", Wave: "w1"}, {Address: "b@x.test", Wave: "w2"}, {Address: "c@x.test"}}}
	rep := b.Report(&Options{Plan: m, Now: at(40), Routes: map[string]engine.Route{"b@x.test": {Backend: "old", Frozen: true}}})
	a := rep.Accounts[0]
	want := &Account{Address: "a@x.test", Wave: "w1", InPlan: true, Phase: state.PhaseDone, Messages: 11, Bytes: 210,
		Duplicates: 4, KeywordsMerged: 2, Staged: at(5), FrozenAt: at(20), CutOver: at(26), TimeFrozen: 10 * time.Second,
		Freezes: []Interval{{Start: at(10), End: at(14), Outcome: state.OutcomeRolledBack}, {Start: at(20), End: at(26), Outcome: state.OutcomeOK}},
		Errors:  1, RolledBack: 1, LastError: "verify found 3 mismatches", Mismatches: 3}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("a@x.test (-want +got):\n%s", diff)
	}
	bb := rep.Accounts[1]
	if bb.TimeFrozen != 10*time.Second || !bb.Frozen || bb.Route != "old" || bb.Freezes[0].End != (time.Time{}) {
		t.Errorf("b@x.test, frozen since 30 s at 40 s: %+v", bb)
	}
	if len(rep.Waves) != 3 || rep.Waves[2].Name != engine.NoWave || rep.Waves[0].Totals.Done != 1 {
		t.Errorf("waves: %+v", rep.Waves)
	}
	if rep.Totals.TimeFrozen != 20*time.Second || rep.Totals.Duplicates != 4 || rep.Applies != 1 || rep.Serial != seq {
		t.Errorf("totals: %+v, applies %d, serial %d", rep.Totals, rep.Applies, rep.Serial)
	}
	if again := b.Report(&Options{Plan: m, Now: at(40)}); again.Totals.TimeFrozen != 20*time.Second {
		t.Errorf("a second Report counts open freezes again: %v", again.Totals.TimeFrozen)
	}
	only := b.Report(&Options{Plan: m, Now: at(40), Waves: []string{"w2"}})
	if len(only.Accounts) != 1 || only.Accounts[0].Address != "b@x.test" || len(only.Waves) != 1 {
		t.Errorf("-wave w2: %+v", only.Accounts)
	}
}
