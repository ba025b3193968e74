package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/executor"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

const stateHelp = `Usage: mailmig [global options] state <subcommand> [options] [args]

  Inspects and maintains the migration state (the journal's fold).

Subcommands:
  list                 Every account the journal or the plan knows: phase,
                       wave, route, last pass, notes; then the backends
                       whose circuit breaker is open (since, last error).
  show ACCOUNT         Everything known about one account, its archive
                       included (read without disturbing a running import),
                       and the open circuit breakers of its backends.
                       With -mismatches: every mismatch the account's last
                       verify found (the journal names the first 20).
  lock                 Show who holds the apply lock, if anyone.
  workers              The apply workers (apply -worker NAME) registered in
                       the state database: live, dead or stopped, the
                       accounts each holds, how many archives each keeps.
  force-unlock ID      Remove the lock with this id (after a crashed apply
                       on another machine; a dead process's lock on this
                       machine is taken over by itself).
  release ACCOUNT      Clear a hold (after "mailmig rollback") and the
                       failure count that halts a wave, so that the
                       account may be cut over again. Journaled.
  migrate -to WHERE    Copy the state between the state directory and the
                       PostgreSQL database of state { postgres }: -to
                       postgres or -to local. The journal keeps its hash
                       chain (verified before and after); with routes {
                       postgres } the route table is copied too. Refused
                       when the target already holds a state.

Options:
  -json       Print JSON (list, show, lock, workers).
  -to WHERE   migrate: "postgres" or "local".
  -mismatches show: list every mismatch of the last verify.
  -no-color   Disable colour.
`

func runState(ctx context.Context, g *globals, args []string, s Streams) int {
	if len(args) == 0 {
		io.WriteString(s.Err, stateHelp)
		return exitError
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "help" {
		io.WriteString(s.Out, stateHelp)
		return exitOK
	}
	fs := newFlagSet("state "+sub, stateHelp, s)
	jsonOut := fs.Bool("json", false, "")
	noColor := fs.Bool("no-color", false, "")
	note := fs.String("note", "", "")
	to := fs.String("to", "", "")
	mismatches := fs.Bool("mismatches", false, "")
	if code, done := parseFlags(fs, rest, s); done {
		return code
	}
	g.NoColor = g.NoColor || *noColor
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	machineOutput(v, *jsonOut, false)
	want := map[string]int{"list": 0, "show": 1, "lock": 0, "force-unlock": 1, "release": 1, "migrate": 0, "workers": 0}
	n, ok := want[sub]
	if !ok {
		fmt.Fprintf(s.Err, "Error: unknown state subcommand %q.\n\n%s", sub, stateHelp)
		return exitError
	}
	if fs.NArg() != n {
		fmt.Fprintf(s.Err, "Error: state %s takes %d argument(s).\n\nRun \"mailmig state -h\" for help.\n", sub, n)
		return exitError
	}
	switch sub {
	case "list":
		return stateList(ctx, g, v, s, *jsonOut)
	case "show":
		if *mismatches {
			return stateMismatches(g, v, s, fs.Arg(0), *jsonOut)
		}
		return stateShow(ctx, g, v, s, fs.Arg(0), *jsonOut)
	case "lock":
		return stateLock(g, v, s, *jsonOut)
	case "workers":
		return stateWorkers(g, v, s, *jsonOut)
	case "force-unlock":
		return stateForceUnlock(g, v, s, fs.Arg(0))
	case "migrate":
		return stateMigrate(ctx, g, v, s, *to)
	}
	return stateRelease(g, v, s, fs.Arg(0), *note)
}

// stateAccounts joins the journal's fold, the plan and the route table.
func stateAccounts(ctx context.Context, g *globals, v *views.View, s Streams) (*views.StateList, *plan.Migration, bool) {
	log := g.logger(s)
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return nil, nil, false
	}
	j, err := openJournal(m, true, log)
	if err != nil {
		fmtErr(v, "Cannot read the state", err)
		return nil, nil, false
	}
	defer j.Close()
	w, err := openWorld(ctx, m, false, log)
	if err != nil {
		fmtErr(v, "Cannot read the route table", err)
		return nil, nil, false
	}
	defer w.Close()
	routes := map[string]engine.Route{}
	if w.Routes != nil {
		if routes, err = w.Routes.Routes(ctx); err != nil {
			fmtErr(v, "Cannot read the route table", err)
			return nil, nil, false
		}
	}
	st := j.State()
	l := &views.StateList{FormatVersion: "1.0", Lineage: st.Lineage, Serial: st.Serial}
	seen := map[string]*views.StateAccount{}
	for _, a := range m.Accounts {
		k := engine.Key(a.Address)
		sa := st.Account(k)
		if sa == nil {
			sa = &state.Account{Address: k, Phase: state.PhasePending}
		}
		x := &views.StateAccount{Account: sa, InPlan: true, PlanWave: a.Wave}
		seen[k] = x
		l.Accounts = append(l.Accounts, x)
	}
	for _, k := range st.Addresses() {
		if seen[k] == nil {
			x := &views.StateAccount{Account: st.Accounts[k]}
			seen[k] = x
			l.Accounts = append(l.Accounts, x)
		}
	}
	run := runningApply(m)
	if run != nil {
		l.Running = run
	}
	planned := map[string]*plan.Account{}
	for _, a := range m.Accounts {
		planned[engine.Key(a.Address)] = a
	}
	for k, x := range seen {
		if r, ok := routes[k]; ok {
			x.Route, x.Frozen = r.Backend, r.Frozen
		}
		if x.InFlight != "" {
			x.InFlightStatus = inFlightStatus(run)
			x.RunningApply = run
		}
		backends := []string{x.Source, x.Target}
		if pa := planned[k]; pa != nil {
			backends = append(backends, pa.From, pa.To)
		}
		x.Breakers = views.OpenBreakers(st, backends...)
	}
	l.Breakers = views.OpenBreakers(st)
	sort.SliceStable(l.Accounts, func(i, j int) bool { return l.Accounts[i].Address < l.Accounts[j].Address })
	return l, m, true
}

func stateList(ctx context.Context, g *globals, v *views.View, s Streams, jsonOut bool) int {
	l, _, ok := stateAccounts(ctx, g, v, s)
	if !ok {
		return exitError
	}
	if jsonOut {
		if err := v.JSON(l); err != nil {
			return exitError
		}
		return exitOK
	}
	v.StateListHuman(l)
	return exitOK
}

func stateShow(ctx context.Context, g *globals, v *views.View, s Streams, account string, jsonOut bool) int {
	l, m, ok := stateAccounts(ctx, g, v, s)
	if !ok {
		return exitError
	}
	for _, a := range l.Accounts {
		if a.Address == engine.Key(account) {
			readArchive(ctx, m, g.logger(s), a)
			if jsonOut {
				if err := v.JSON(a); err != nil {
					return exitError
				}
				return exitOK
			}
			v.StateShowHuman(a)
			return exitOK
		}
	}
	fmtErr(v, "Unknown account", fmt.Errorf("neither the plan nor the journal knows %s", account))
	return exitError
}

// stateMismatches prints every mismatch the account's last verify found
// (executor.MismatchList, saved beside its archive).
func stateMismatches(g *globals, v *views.View, s Streams, account string, jsonOut bool) int {
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	pa := m.Account(account)
	if pa == nil {
		fmtErr(v, "Unknown account", fmt.Errorf("the plan does not name %s", account))
		return exitError
	}
	l, err := executor.NewArchiveReader(m, archiveDir(m), g.logger(s)).Mismatches(pa)
	if err != nil {
		fmtErr(v, "Cannot read the mismatches", err)
		return exitError
	}
	if jsonOut {
		if l == nil {
			l = &executor.MismatchList{Account: pa.Address, Mismatches: []state.Mismatch{}}
		}
		if err := v.JSON(l); err != nil {
			return exitError
		}
		return exitOK
	}
	if l == nil {
		l = &executor.MismatchList{}
	}
	v.MismatchList(pa.Address, l.Time, l.Total, l.Mismatches)
	return exitOK
}

// readArchive adds what the account's archive says now (shared,
// non-blocking: a running import shows as "in use").
func readArchive(ctx context.Context, m *plan.Migration, log *slog.Logger, a *views.StateAccount) {
	pa := m.Account(a.Address)
	if pa == nil {
		return
	}
	ar := executor.NewArchiveReader(m, archiveDir(m), log)
	if !ar.Has(pa) {
		recordedArchive(ctx, m, pa, a)
		return
	}
	info, err := ar.Archive(ctx, pa)
	if err != nil {
		a.ArchiveError = err.Error()
		return
	}
	a.Archive = &info
}

func stateLock(g *globals, v *views.View, s Streams, jsonOut bool) int {
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	b, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot read the lock", err)
		return exitError
	}
	defer b.Close()
	holders, err := b.ReadLocks(ctx)
	if err != nil {
		fmtErr(v, "Cannot read the lock", err)
		return exitError
	}
	var info *state.LockInfo
	if len(holders) > 0 {
		info = &holders[0]
	}
	if jsonOut {
		// "lock" is the first holder (as before apply workers); "holders"
		// lists every one.
		if err := v.JSON(map[string]any{"locked": info != nil, "lock": info, "holders": holders}); err != nil {
			return exitError
		}
		return exitOK
	}
	if info == nil {
		fmt.Fprintln(s.Out, "The state is not locked.")
		return exitOK
	}
	if len(holders) == 1 && !info.Shared {
		fmt.Fprintf(s.Out, "Locked by %s for %s since %s (host %s, pid %d).\nLock id: %s\n", info.Owner, info.Operation, info.Created.UTC().Format("2006-01-02 15:04:05 UTC"), info.Host, info.PID, info.ID)
		if info.LiveSession != nil {
			if *info.LiveSession {
				fmt.Fprintf(s.Out, "Its database session is alive (%s).\n", b.Where())
			} else {
				fmt.Fprintf(s.Out, "Its database session ended: the lock went with it, and the next command that locks takes it over.\n")
			}
		}
		return exitOK
	}
	// Apply workers share the lock (and dead holders' rows may remain
	// until the next taker cleans them up): one line per holder.
	fmt.Fprintf(s.Out, "Locked by %d holders (%s):\n", len(holders), b.Where())
	for _, h := range holders {
		who := h.Operation
		if h.Shared {
			who = "apply worker " + h.Worker
		}
		status := "live"
		if h.LiveSession != nil && !*h.LiveSession {
			status = "dead (session ended; the next command that locks removes it)"
		}
		fmt.Fprintf(s.Out, "  %s: %s since %s (host %s, pid %d), %s\n    Lock id: %s\n", who, h.Owner, h.Created.UTC().Format("2006-01-02 15:04:05 UTC"), h.Host, h.PID, status, h.ID)
	}
	return exitOK
}

func stateForceUnlock(g *globals, v *views.View, s Streams, id string) int {
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	b, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot force-unlock", err)
		return exitError
	}
	defer b.Close()
	info, err := b.ForceUnlock(ctx, id)
	if errors.Is(err, state.ErrNotLocked) {
		fmt.Fprintln(s.Out, "The state is not locked.")
		return exitOK
	}
	if err != nil {
		fmtErr(v, "Cannot force-unlock", err)
		return exitError
	}
	fmt.Fprintf(s.Out, "Removed the lock %s held by %s (%s since %s).\n", info.ID, info.Owner, info.Operation, info.Created.UTC().Format("2006-01-02 15:04:05 UTC"))
	return exitOK
}

func stateRelease(g *globals, v *views.View, s Streams, account, note string) int {
	log := g.logger(s)
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	j, done, ok := openLockedJournal(v, m, "state release", log)
	if !ok {
		return exitError
	}
	defer done()
	k := engine.Key(account)
	a := j.Account(k)
	if a == nil || (!a.Held && a.FailedCutovers == 0) {
		fmt.Fprintf(s.Out, "%s is neither held nor counted as failed; nothing to release.\n", account)
		return exitOK
	}
	if note == "" {
		note = "released by hand"
	}
	if _, err := j.Append(state.Record{Type: state.TypeRelease, Account: k, Note: note}); err != nil {
		fmtErr(v, "Cannot write the journal", err)
		return exitError
	}
	_ = j.WriteSnapshot()
	fmt.Fprintf(s.Out, "Released %s: it may be cut over again when its wave allows.\n", account)
	return exitOK
}
