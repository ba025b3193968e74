package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// benchWorld builds a plan of n accounts in four waves (each after the one
// before) and a state in which 10% are pending, 30% staged, 40% catching
// up and 20% done, like engine/internal/benchgen.
func benchWorld(n int) (*plan.Migration, *Observed) {
	m := &plan.Migration{Hash: "bench"}
	m.Backends = []*plan.Backend{{Name: "legacy"}, {Name: "target"}}
	for w := 0; w < 4; w++ {
		wv := &plan.Wave{Name: fmt.Sprintf("w%d", w), CutoverWindow: nightWindow(), Canary: 2, MaxParallel: 8, CatchupThreshold: 100, CatchupThresholdBytes: 10 << 20}
		if w > 0 {
			wv.After = []string{fmt.Sprintf("w%d", w-1)}
		}
		m.Waves = append(m.Waves, wv)
	}
	st := &state.State{}
	seq := uint64(0)
	rec := func(r state.Record) {
		seq++
		r.Seq = seq
		r.Time = time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
		st.Apply(&r)
	}
	rec(state.Record{Type: state.TypeInit, Lineage: "bench"})
	routes := map[string]Route{}
	for i := 0; i < n; i++ {
		a := fmt.Sprintf("user%06d@example.test", i)
		w := m.Waves[i%4]
		w.Accounts = append(w.Accounts, a)
		m.Accounts = append(m.Accounts, &plan.Account{Address: a, From: "legacy", To: "target", Wave: w.Name})
		p := i % 10
		if p == 0 {
			continue
		}
		c := &state.Counts{Messages: 2000}
		rec(state.Record{Type: state.TypeFinish, Account: a, Action: "import", Outcome: state.OutcomeOK, Counts: c})
		rec(state.Record{Type: state.TypeFinish, Account: a, Action: "export", Outcome: state.OutcomeOK, Counts: c})
		rec(state.Record{Type: state.TypeTransition, Account: a, Phase: state.PhaseStaged})
		if p <= 3 {
			continue
		}
		rec(state.Record{Type: state.TypeFinish, Account: a, Action: "catch-up", Outcome: state.OutcomeOK, Counts: &state.Counts{Messages: int64(i % 30)}})
		rec(state.Record{Type: state.TypeTransition, Account: a, Phase: state.PhaseCatchingUp})
		if p <= 7 {
			continue
		}
		rec(state.Record{Type: state.TypeTransition, Account: a, Phase: state.PhaseDone})
		routes[a] = Route{Backend: "target", Generation: 3}
	}
	return m, &Observed{State: st, Routes: routes}
}

// BenchmarkDiff100k plans 100,000 accounts (no refresh) at a time when the
// first wave's window is open.
func BenchmarkDiff100k(b *testing.B) {
	m, obs := benchWorld(100_000)
	b.ReportAllocs()
	var ch *Changes
	for b.Loop() {
		ch, _ = Diff(m, obs, &DiffOptions{Clock: FixedClock{night}})
	}
	b.ReportMetric(float64(ch.Summary.Changes), "changes")
}
