package main

// Waiting through a PostgreSQL outage (state { outage_wait }): an apply
// whose database goes away keeps its place instead of stopping. Journal
// records wait in the state store, which takes the apply lock again on a
// new session (pgstate.Store.SetOutageWait); route writes and the fleet's
// barrier retry here. Each wait is bounded by outage_wait.

import (
	"context"
	"log/slog"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// waitThroughOutages makes a writable state in PostgreSQL wait through an
// outage of up to the plan's outage_wait.
func waitThroughOutages(b state.Backend, m *plan.Migration, log *slog.Logger) {
	r, ok := b.(state.Remote)
	if !ok {
		return
	}
	if st, ok := r.Store.(interface {
		SetOutageWait(time.Duration, *slog.Logger)
	}); ok {
		st.SetOutageWait(m.State.OutageWait, log)
	}
}

// outageRouter is the PostgreSQL route table's Router: a freeze, flip,
// unfreeze or rollback that finds the database out of reach is retried
// until it is back, for up to the wait. A route write sets the account's
// backend and state outright, so writing it again after a commit whose
// answer was lost changes nothing.
type outageRouter struct {
	engine.Router
	o   pgroutes.OutageOptions
	log *slog.Logger
}

func (r outageRouter) SetRoute(ctx context.Context, account, backend string, frozen bool) error {
	o := r.o
	o.OnOutage = func(err error) {
		r.log.Warn("the route table's PostgreSQL is out of reach; waiting for it to write the route",
			"user", account, "wait", o.Wait.String(), "err", err)
	}
	return pgroutes.RetryWrite(ctx, o, func(ctx context.Context) error {
		return r.Router.SetRoute(ctx, account, backend, frozen)
	})
}

// pgOutage is what one apply's route writes and barrier share to wait
// through an outage of the route table's database: the wait, the
// logger, the latest outage seen.
func pgOutage(m *plan.Migration, log *slog.Logger) (pgroutes.OutageOptions, *slog.Logger) {
	return pgroutes.OutageOptions{Wait: m.State.OutageWait, Mark: &pgroutes.OutageMark{}}, orDiscard(log)
}

// await is the fleet barrier's wait through an outage: for the account's
// frozen route to be quiet on every proxy, or (quiet false) for its
// latest change to be applied.
func (b fleetBarrier) await(ctx context.Context, account string, quiet bool) error {
	o := b.o
	o.OnOutage = func(err error) {
		b.log.Warn("the route table's PostgreSQL is out of reach; the barrier waits for it", "user", account,
			"wait", o.Wait.String(), "err", err)
	}
	if quiet {
		return b.b.AwaitQuietThrough(ctx, account, o)
	}
	return b.b.AwaitRouteThrough(ctx, account, o)
}

// barrierTimeout is Env.BarrierTimeout: with the routes in PostgreSQL,
// long enough for the fleet's barrier_timeout plus an outage of up to
// outage_wait within it (0: the engine's default).
func barrierTimeout(m *plan.Migration) time.Duration {
	if m.Routes.Postgres == nil {
		return 0
	}
	return max(engine.DefaultBarrierTimeout, m.Routes.BarrierTimeout+m.State.OutageWait+10*time.Second)
}

// orDiscard is log, or a logger that discards when log is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
