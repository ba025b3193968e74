package main

// What apply processes sharing a PostgreSQL state share besides the
// journal: the backends' budgets (pgstate.Budget) and the archives'
// observations recorded for machines without the archive (docs/fleet.md,
// "Shared budgets" and "Archives on other machines").

import (
	"context"
	"log/slog"
	"os"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/executor"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
	"github.com/mailmig/mailmig/plan"
)

// workerName names this process in the observations it records: an
// apply worker's name (apply -worker NAME sets it), else the host's.
var workerName string

func observationBy() engine.RecordedBy {
	host, _ := os.Hostname()
	by := engine.RecordedBy{Worker: workerName, Host: host}
	if by.Worker == "" {
		by.Worker = host
	}
	return by
}

// attachPostgresState adds to w what the PostgreSQL state shares: with
// write (apply), the shared budget and the recording of observations
// after each change; without (plan, show), archives and refresh probes
// that fall back on the recorded observations. Nothing without state {
// postgres }.
func attachPostgresState(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger, w *world) error {
	if m.State.Postgres == nil {
		return nil
	}
	b, err := openState(ctx, m, write)
	if err != nil {
		return err
	}
	ref, ok := b.(state.Remote).Store.(*pgRef)
	if !ok {
		return b.Close()
	}
	closeWorld := w.Close
	var budget *pgstate.Budget
	if write {
		budget = ref.Budget(budgetLimits(m), 0, log)
		w.Budget = budget
		if x, ok := w.Exec.(*executor.Executor); ok {
			w.Record = &observationRecorder{m: m, x: x, store: ref.Store, by: observationBy(), log: log}
		}
	} else {
		ra, err := engine.NewRecordedArchives(ctx, w.Archives, ref.Store)
		if err != nil {
			ref.Close()
			return err
		}
		w.Archives = ra
		if x, ok := w.Detector.(*executor.Executor); ok {
			x.SetRecorded(ra.Get)
		}
	}
	w.Close = func() error {
		if budget != nil {
			budget.Close()
		}
		ref.Close()
		return closeWorld()
	}
	return nil
}

// shareFleet wires what the PostgreSQL state shares into an apply's
// environment (every apply process — plain or worker — calls it before
// engine.Apply): the budget, for the connection slots and the limiters'
// rates, and the hooks to run with it (recording the archives'
// observations). With a state directory it changes nothing.
func shareFleet(env *engine.Env, w *world) []engine.Hook {
	if w.Budget != nil {
		env.Budget = w.Budget
		engine.ShareLimiters(env.Limiters, w.Budget)
	}
	if w.Record != nil {
		return []engine.Hook{w.Record}
	}
	return nil
}

// budgetLimits are the plan's limits per backend.
func budgetLimits(m *plan.Migration) map[string]pgstate.BudgetLimits {
	out := make(map[string]pgstate.BudgetLimits, len(m.Backends))
	for _, b := range m.Backends {
		n := b.Limits.Connections
		if n <= 0 {
			n = engine.DefaultConnections
		}
		out[b.Name] = pgstate.BudgetLimits{Connections: n, MessagesPerSecond: b.Limits.MessagesPerSecond, BytesPerSecond: b.Limits.BytesPerSecond}
	}
	return out
}

// observationRecorder records, after each change that ran, what plan
// needs of the account's archive (executor.Observation) for machines that
// do not hold it. A failure is logged: the next pass records again.
type observationRecorder struct {
	engine.NopHook
	m     *plan.Migration
	x     *executor.Executor
	store engine.ObservationStore
	by    engine.RecordedBy
	log   *slog.Logger
}

func (r *observationRecorder) PostAction(c *engine.Change, res *engine.Result) {
	if res == nil || res.Outcome == engine.OutcomeSkipped {
		return
	}
	acct := r.m.Account(c.Account)
	if acct == nil {
		return
	}
	ctx := context.Background()
	o, err := r.x.Observation(ctx, acct)
	if err == nil && o != nil {
		o.By = r.by
		err = r.store.RecordObservation(ctx, c.Account, o)
	}
	if err != nil {
		r.log.Warn("record the archive's observation for other machines", "user", c.Account, "err", err)
	}
}

// recordedArchive fills state show's archive from the observation
// recorded by the machine holding it, when this one has none and the
// state is in PostgreSQL.
func recordedArchive(ctx context.Context, m *plan.Migration, pa *plan.Account, a *views.StateAccount) {
	if m.State.Postgres == nil {
		return
	}
	b, err := openState(ctx, m, false)
	if err != nil {
		a.ArchiveError = err.Error()
		return
	}
	defer b.Close()
	ref, ok := b.(state.Remote).Store.(*pgRef)
	if !ok {
		return
	}
	o, err := ref.Observation(ctx, pa.Address)
	switch {
	case err != nil:
		a.ArchiveError = err.Error()
	case o != nil:
		info := o.Archive
		info.Recorded = &o.By
		a.Archive = &info
	}
}
