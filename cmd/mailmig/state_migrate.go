package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// stateMigrate copies the state between the state directory and the
// plan's PostgreSQL database ("state migrate -to postgres|local"): the
// journal's exact lines (so the chain is the same chain), a fresh
// snapshot of their fold, and with routes { postgres } the route table.
// Both sides are locked; the source is verified first and the target
// after, and a target that already holds a state is refused.
func stateMigrate(ctx context.Context, g *globals, v *views.View, s Streams, to string) int {
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	if to != "postgres" && to != "local" {
		fmtErr(v, "Where to?", errors.New(`state migrate needs -to postgres (copy the state directory into the database) or -to local (copy the database into the state directory)`))
		return exitError
	}
	if m.State.Postgres == nil {
		fmtErr(v, "No PostgreSQL state", errors.New(`the plan's state block names no database; add postgres = "postgres://USER@HOST:PORT/DB" (and password_ref) to the state block, then run "mailmig state migrate -to postgres"`))
		return exitError
	}
	pgb, err := openState(ctx, m, true)
	if err != nil {
		fmtErr(v, "Cannot open the PostgreSQL state", err)
		return exitError
	}
	defer pgb.Close()
	pg := pgb.(state.Remote).Store.(*pgRef).Store
	dir := state.Dir(statePath(m))
	from, into := state.Backend(dir), pgb
	if to == "local" {
		from, into = pgb, dir
	}
	for _, b := range []state.Backend{from, into} {
		l, _, err := b.Lock(ctx, actor(), "state migrate")
		if err != nil {
			fmtErr(v, "State locked", fmt.Errorf("%s: %w", b.Where(), err))
			return exitError
		}
		defer func() {
			if err := l.Unlock(); err != nil {
				fmtErr(v, "Cannot unlock the state", err)
			}
		}()
	}
	src, err := from.Verify(ctx)
	if err != nil {
		fmtErr(v, "Cannot verify the journal", err)
		return exitError
	}
	if !src.OK {
		fmtErr(v, "Journal broken", fmt.Errorf("the journal in %s is broken at record %d (%s); nothing was copied: run \"mailmig journal verify\" and repair it first", from.Where(), src.BrokenSeq, src.Problem))
		return exitError
	}
	var n uint64
	if to == "postgres" {
		n, err = pg.Import(ctx, state.DirLines(string(dir)))
		if errors.Is(err, pgstate.ErrNotEmpty) {
			err = fmt.Errorf("%s already holds a journal; nothing was copied (copy into an empty database)", pg.Where())
		}
	} else {
		var empty bool
		if empty, err = state.DirEmpty(string(dir)); err == nil && !empty {
			err = fmt.Errorf("%s already holds a journal; nothing was copied (move it away, or name another path in the state block)", dir)
		}
		if err == nil {
			n, err = state.WriteDirJournal(string(dir), pg.AllLines(ctx))
		}
	}
	if err != nil {
		fmtErr(v, "Cannot copy the journal", err)
		return exitError
	}
	// A fresh snapshot of the target (a snapshot names its place in the
	// journal, which differs between a file and a table).
	j, err := into.OpenJournal(ctx, &state.Options{Logger: g.logger(s)})
	if err == nil {
		err = j.WriteSnapshot()
		j.Close()
	}
	if err != nil {
		fmtErr(v, "Cannot write the snapshot", err)
		return exitError
	}
	res, err := into.Verify(ctx)
	if err == nil && (!res.OK || res.Records != src.Records || res.Head != src.Head) {
		err = fmt.Errorf("the copy in %s does not match: %d records, head %s, problem %q (the source has %d, head %s)", into.Where(), res.Records, res.Head, res.Problem, src.Records, src.Head)
	}
	if err != nil {
		fmtErr(v, "The copy does not verify", err)
		return exitError
	}
	fmt.Fprintf(s.Out, "Copied the journal from %s to %s: %d records, lineage %s, head %s; the chain verifies.\n", from.Where(), into.Where(), n, orNone(res.Lineage), shortHead(res.Head))
	if code := migrateRoutes(ctx, v, s, m, to); code != exitOK {
		return code
	}
	if to == "postgres" {
		fmt.Fprintf(s.Out, "The plan's state block names the database, so commands use it from now on; %s is left as it was (keep it as a backup or remove it).\n", dir)
	} else {
		fmt.Fprintf(s.Out, "Remove postgres and password_ref from the plan's state block to use %s; the database is left as it was.\n", dir)
	}
	return exitOK
}

func shortHead(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return orNone(h)
}

// migrateRoutes copies the route table between the SQLite file and the
// plan's PostgreSQL route table when routes { postgres } is set: every
// route with its backend and frozen state, the aliases, the domains and
// the default. Generations start again in the target (a proxy ends a
// session whose generation changed, so none survive the move anyway).
func migrateRoutes(ctx context.Context, v *views.View, s Streams, m *plan.Migration, to string) int {
	pg := m.Routes.Postgres
	if pg == nil {
		fmt.Fprintf(s.Out, "The route table stays in %s (the plan's routes block names no database).\n", m.Routes.SQLite)
		return exitOK
	}
	if to == "postgres" {
		if _, err := os.Stat(m.Routes.SQLite); err != nil {
			fmt.Fprintf(s.Out, "No route table at %s to copy.\n", m.Routes.SQLite)
			return exitOK
		}
	}
	lite, err := routes.Open(ctx, m.Routes.SQLite)
	if err != nil {
		fmtErr(v, "Cannot open the route table", err)
		return exitError
	}
	defer lite.Close()
	pgr, err := pgroutes.Open(ctx, pg.DSN, &pgroutes.Options{Password: pg.Password.Reveal(), Create: true})
	if err != nil {
		fmtErr(v, "Cannot open the route table", err)
		return exitError
	}
	defer pgr.Close()
	var from, into routes.DB = lite, pgr
	if to == "local" {
		from, into = pgr, lite
	}
	n, maps, err := copyRoutes(ctx, from, into)
	if err != nil {
		fmtErr(v, "Cannot copy the route table", err)
		return exitError
	}
	fmt.Fprintf(s.Out, "Copied the route table from %s to %s: %d routes, %d POP3 UIDL maps.\n", from.Where(), into.Where(), n, maps)
	return exitOK
}

func copyRoutes(ctx context.Context, from, into routes.DB) (n, maps int, err error) {
	t, err := into.Snapshot(ctx)
	if err != nil {
		return 0, 0, err
	}
	if t.Len() > 0 || len(t.Aliases()) > 0 || len(t.Domains()) > 0 || t.Default != "" {
		return 0, 0, fmt.Errorf("%s already holds routes; nothing was copied (copy into an empty table)", into.Where())
	}
	if t, err = from.Snapshot(ctx); err != nil {
		return 0, 0, err
	}
	rs := t.Routes()
	if err := loadRoutes(ctx, into, rs, t.Aliases()); err != nil {
		return 0, 0, err
	}
	if ds := t.Domains(); len(ds) > 0 {
		if err := into.AddDomains(ctx, ds...); err != nil {
			return 0, 0, fmt.Errorf("copy domains: %w", err)
		}
	}
	if t.Default != "" {
		if err := into.SetDefault(ctx, t.Default); err != nil {
			return 0, 0, fmt.Errorf("copy the default backend: %w", err)
		}
	}
	if maps, err = copyUIDLMaps(ctx, from, into); err != nil {
		return 0, 0, err
	}
	return len(rs), maps, nil
}
