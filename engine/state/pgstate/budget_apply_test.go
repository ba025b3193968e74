package pgstate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// countingExec counts the imports and exports running at once, per
// backend, across every Apply that shares it (the test's two processes).
type countingExec struct {
	mu            sync.Mutex
	running, most map[string]int
	done          atomic.Int64
}

func (x *countingExec) run(b string) (state.Counts, error) {
	x.mu.Lock()
	x.running[b]++
	x.most[b] = max(x.most[b], x.running[b])
	x.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	x.mu.Lock()
	x.running[b]--
	x.mu.Unlock()
	x.done.Add(1)
	return state.Counts{Messages: 1}, nil
}

func (x *countingExec) Import(_ context.Context, j *engine.Job) (state.Counts, error) {
	return x.run(j.Change.Source)
}

func (x *countingExec) Export(_ context.Context, j *engine.Job) (state.Counts, error) {
	return x.run(j.Change.Target)
}

func (x *countingExec) Verify(context.Context, *engine.Job) (state.Counts, error) {
	return state.Counts{}, nil
}

type nopRouter struct{}

func (nopRouter) SetRoute(context.Context, string, string, bool) error { return nil }

// TestBudgetApply: two Applies (two processes: each its own Budget, pool
// and journal) import accounts from a backend limited to 2 connections;
// each process alone would run 2 at once, together they never run more
// than 2, and every change succeeds.
func TestBudgetApply(t *testing.T) {
	_, dsn := newStore(t)
	x := &countingExec{running: map[string]int{}, most: map[string]int{}}
	var wg sync.WaitGroup
	for p := range 2 {
		m := &plan.Migration{Hash: "h"}
		m.Backends = []*plan.Backend{{Name: "src", Limits: plan.Limits{Connections: 2}}, {Name: "dst", Limits: plan.Limits{Connections: 20}}}
		for i := range 6 {
			m.Accounts = append(m.Accounts, &plan.Account{Address: fmt.Sprintf("p%d-%d@example.test", p, i), From: "src", To: "dst"})
		}
		ch, diags := engine.Diff(m, &engine.Observed{}, nil)
		if diags.HasErrors() || len(ch.All()) != 12 {
			t.Fatalf("diff: %v, %d changes", diags, len(ch.All()))
		}
		j, err := state.Open(t.TempDir(), &state.Options{Actor: "tester"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		limits := map[string]BudgetLimits{"src": {Connections: 2}, "dst": {Connections: 20}}
		b, _ := openBudget(t, dsn, limits, 0)
		env := &engine.Env{Plan: m, Executor: x, Router: nopRouter{}, Journal: j, Limiters: engine.NewLimiters(m), Budget: b}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := engine.Apply(context.Background(), ch, env)
			if err != nil {
				t.Error(err)
				return
			}
			if res.OK != 12 {
				t.Errorf("process %d: %d of 12 changes ok: %v", p, res.OK, res.Err())
			}
		}()
	}
	wg.Wait()
	if x.most["src"] > 2 {
		t.Errorf("%d imports from src at once across both processes, limit 2", x.most["src"])
	}
	if x.done.Load() != 24 {
		t.Errorf("%d of 24 changes ran", x.done.Load())
	}
}
