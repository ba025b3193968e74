package main

// Shared plumbing of the engine commands (plan, apply, show, state,
// journal, rollback): opening the state, observing, redacting secrets,
// and the seams the test binary replaces (clock, world).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/executor"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// clock judges cut-over windows. The test binary sets a fixed clock from
// MAILMIG_TEST_NOW so golden output is reproducible.
var clock engine.Clock = engine.SystemClock{}

// newLineage names a new journal; nil means random. The test binary fixes
// it from MAILMIG_TEST_LINEAGE.
var newLineage func() string

// world is what the engine commands talk to besides the journal.
type world struct {
	// Exec and Router are nil when the world was opened for reading.
	Exec   engine.Executor
	Router engine.Router
	// Routes reads the route table; nil when it does not exist yet.
	Routes engine.RouteReader
	// Barrier is what a cut-over waits on after the freeze and after the
	// flip: the SQLite table's acknowledgements or the PostgreSQL fleet's
	// barrier; nil without a route table to write (the cut-over then
	// sleeps the settle delay).
	Barrier engine.Barrier
	// Pending marks accounts with a cut-over ahead in a PostgreSQL route
	// table (pending.go); nil otherwise.
	Pending *pendingMarks
	// Detector answers -refresh; nil when no source supports it.
	Detector engine.ChangeDetector
	// Archives reads the accounts' archives; nil means none.
	Archives engine.ArchiveReader
	// CopyBack counts what rollbacks would copy back (with refresh);
	// nil means not counted.
	CopyBack engine.CopyBacker
	// Budget shares the backends' limits with the other apply processes
	// of a PostgreSQL state; nil: limits per process.
	Budget engine.Budget
	// Record records the archives' observations after each change, for
	// plan on machines without them; nil: not recorded.
	Record engine.Hook
	// Close releases everything.
	Close func() error
}

// openWorld builds the world for m. write is false for plan and show,
// which must not create anything. The test binary replaces it with fakes.
var openWorld = openRealWorld

// routeStore adapts the proxy's route table (SQLite or PostgreSQL) to the
// engine's RouteReader and Router.
type routeStore struct{ s routes.DB }

func (r routeStore) Routes(ctx context.Context) (map[string]engine.Route, error) {
	rs, err := r.s.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]engine.Route, len(rs))
	for _, x := range rs {
		out[engine.Key(x.Account)] = engine.Route{Backend: x.Backend, Frozen: x.State == routes.Frozen, Generation: x.Generation}
	}
	return out, nil
}

func (r routeStore) SetRoute(ctx context.Context, account, backend string, frozen bool) error {
	st := routes.Active
	if frozen {
		st = routes.Frozen
	}
	_, err := r.s.Update(ctx, account, func(rt *routes.Route, _ bool) error {
		rt.Backend, rt.State = backend, st
		return nil
	})
	return err
}

// sqliteBarrier is the SQLite route table's barrier: its proxies
// acknowledge each generation of a frozen route once the account is quiet
// on them. After the freeze and after the flip (the route is still frozen
// then, at a new generation) the cut-over waits for every live proxy's
// acknowledgement of the current generation (routes.Store.AwaitFreeze: no
// session and no delivery in flight on the proxy; with no proxy
// registered there is nothing to wait for).
type sqliteBarrier struct{ acks *routes.Store }

func (b sqliteBarrier) AwaitRoute(ctx context.Context, account string, _ engine.RouteEvent) error {
	_, err := b.acks.AwaitFreeze(ctx, account, 0)
	return err
}

// fleetBarrier is the PostgreSQL fleet's barrier (pgroutes.Barrier, with
// the plan's barrier_timeout). After the freeze and after the flip every
// proxy has acknowledged the frozen route's generation: no session and no
// delivery of the account in flight there (Barrier.AwaitQuiet; a proxy
// that does not acknowledge freezes has applied the change). Any other
// event waits for the change to be applied (Barrier.AwaitRoute, as for
// admin API edits). Both wait through a database outage of up to the
// plan's outage_wait (outage.go).
type fleetBarrier struct {
	b   *pgroutes.Barrier
	o   pgroutes.OutageOptions
	log *slog.Logger
}

func (b fleetBarrier) AwaitRoute(ctx context.Context, account string, ev engine.RouteEvent) error {
	return b.await(ctx, account, ev == engine.RouteFrozen || ev == engine.RouteFlipped)
}

var (
	_ engine.Barrier     = sqliteBarrier{}
	_ engine.Barrier     = fleetBarrier{}
	_ engine.Router      = routeStore{}
	_ engine.RouteReader = routeStore{}
)

// openRoutes opens the plan's route table (see openRouteDB).
func openRoutes(ctx context.Context, m *plan.Migration, write bool) (routes.DB, error) {
	return openRouteDB(ctx, m, write)
}

func openRealWorld(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger) (*world, error) {
	w := &world{Close: func() error { return nil }}
	st, err := openRoutes(ctx, m, write)
	if err != nil {
		return nil, err
	}
	if st != nil {
		rs := routeStore{st}
		w.Routes, w.Close = rs, st.Close
		if write {
			w.Router = rs
			switch st := st.(type) {
			case *routes.Store:
				w.Barrier = sqliteBarrier{st}
			case *pgroutes.Store:
				o, olog := pgOutage(m, log)
				w.Barrier = fleetBarrier{&pgroutes.Barrier{Store: st, Timeout: m.Routes.BarrierTimeout}, o, olog}
				w.Router = outageRouter{rs, o, olog}
				w.Pending = &pendingMarks{st}
			}
		}
	}
	if write {
		x := executor.New(m, archiveDir(m), log)
		if us, ok := st.(executor.UIDLStore); ok {
			// Cut-overs write the POP3 UIDL maps next to the routes (the
			// SQLite table, or the PostgreSQL one every proxy reads).
			x.SetUIDLStore(us)
		}
		w.Exec = x
	}
	x := executor.New(m, archiveDir(m), log)
	w.Detector, w.CopyBack = x, x
	w.Archives = executor.NewArchiveReader(m, archiveDir(m), log)
	if err := attachPostgresState(ctx, m, write, log, w); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// actor names who runs the command in the journal and the lock:
// MAILMIG_ACTOR when set (e.g. a CI bot's name), else user@host.
func actor() string {
	if a := strings.TrimSpace(os.Getenv("MAILMIG_ACTOR")); a != "" {
		return a
	}
	return state.DefaultActor()
}

// statePath returns the plan's state directory.
// archiveDir holds the accounts' archives.
func archiveDir(m *plan.Migration) string { return filepath.Join(statePath(m), "archives") }

func statePath(m *plan.Migration) string {
	if m.State.Path != "" {
		return m.State.Path
	}
	return "state"
}

// redactor returns a function that replaces every secret of the plan, and
// every value it read from env() or file() (plan.Migration.InputValues),
// in a string with "(sensitive)", so errors never carry them into the
// journal.
func redactor(m *plan.Migration) func(string) string {
	var secrets []string
	add := func(s plan.Secret) {
		if v := s.Reveal(); s.IsSet() && len(v) >= 3 {
			secrets = append(secrets, v)
		}
	}
	for _, b := range m.Backends {
		if b.Master != nil {
			add(b.Master.Password)
		}
		if b.Exchange != nil {
			add(b.Exchange.ClientSecret)
		}
	}
	for _, a := range m.Accounts {
		add(a.Password)
	}
	for _, pg := range []*plan.Postgres{m.State.Postgres, m.Routes.Postgres} {
		if pg != nil {
			add(pg.Password)
		}
	}
	if m.Proxy != nil {
		add(m.Proxy.AdminToken)
	}
	for _, v := range m.Variables {
		if s, ok := v.Value.(plan.Secret); ok {
			add(s)
		}
	}
	secrets = append(secrets, m.InputValues()...)
	if len(secrets) == 0 {
		return nil
	}
	// Longest first: a value is not half-replaced by a shorter one.
	sort.SliceStable(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, plan.Redacted)
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// openJournal opens the plan's journal. Read-only opens create nothing.
func openJournal(m *plan.Migration, readOnly bool, log *slog.Logger) (*state.Journal, error) {
	ctx := context.Background()
	b, err := openState(ctx, m, !readOnly)
	if err != nil {
		return nil, err
	}
	j, err := b.OpenJournal(ctx, &state.Options{
		ReadOnly: readOnly,
		Actor:    actor(),
		RunID:    state.RunIDFromEnv(os.Getenv),
		PlanHash: m.Hash,
		Redact:   redactor(m),
		Now:      clock.Now,
		Lineage:  newLineage,
		Logger:   log,
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	j.CloseWith(b)
	if !readOnly {
		waitThroughOutages(b, m, log)
	}
	return j, nil
}

// lockState takes the state lock for op, as every command that changes the
// state or the route table must. A lock held by another run is reported as
// "State locked"; a stale lock taken over from a dead process is reported as
// a warning. release unlocks and reports a failure to do so; ok is false when
// the lock could not be had (the diagnostic is already shown).
func lockState(v *views.View, m *plan.Migration, op string) (release func(), ok bool) {
	ctx := context.Background()
	b, err := openState(ctx, m, true)
	if err != nil {
		fmtErr(v, "Cannot lock the state", err)
		return nil, false
	}
	lock, taken, err := b.Lock(ctx, actor(), op)
	if err != nil {
		b.Close()
		var le *state.LockError
		if errors.As(err, &le) {
			v.Diagnostics(errDiag("State locked", err), nil)
		} else {
			fmtErr(v, "Cannot lock the state", err)
		}
		return nil, false
	}
	if taken != nil && taken.LiveSession != nil {
		v.Diagnostics(warnDiag("Took over a lock whose session ended", fmt.Sprintf("The lock %s of %s (%s, pid %d on %s) belonged to a database session that ended (its process died or lost the database); it was taken over.", taken.ID, taken.Owner, taken.Operation, taken.PID, taken.Host)), nil)
	} else if taken != nil {
		v.Diagnostics(warnDiag("Took over a stale lock", fmt.Sprintf("The lock %s of %s (%s, pid %d) was left by a process that no longer runs; it was taken over.", taken.ID, taken.Owner, taken.Operation, taken.PID)), nil)
	}
	return func() {
		if err := lock.Unlock(); err != nil {
			fmtErr(v, "Cannot unlock the state", err)
		}
		b.Close()
	}, true
}

// openLockedJournal takes the state lock for op (lockState) and opens the
// journal for writing; a journal that Open had to repair is reported as a
// warning. done closes the journal, then releases the lock. ok is false
// when either failed (the diagnostic is already shown).
func openLockedJournal(v *views.View, m *plan.Migration, op string, log *slog.Logger) (j *state.Journal, done func(), ok bool) {
	release, ok := lockState(v, m, op)
	if !ok {
		return nil, nil, false
	}
	j, err := openJournal(m, false, log)
	if err != nil {
		release()
		fmtErr(v, "Cannot open the journal", err)
		return nil, nil, false
	}
	if r := j.Repaired(); r != "" {
		v.Diagnostics(warnDiag("Journal repaired", "The journal "+r+"."), nil)
	}
	return j, func() { j.Close(); release() }, true
}
