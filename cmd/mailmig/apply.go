package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

const applyHelp = `Usage: mailmig [global options] apply [options] [CHANGES_FILE]

  Carries out the changes: computes them like "mailmig plan" (or reads
  CHANGES_FILE saved by "plan -out"), shows them, asks for confirmation and
  runs them in waves with bounded parallelism and shared rate limits. Each
  action is journaled before and after it runs.

  A saved CHANGES_FILE is refused when it is stale: when the journal moved
  on (lineage or serial), the plan files changed, or an account's journal
  position or route differs from what was planned.

  Ctrl-C once: running actions finish (a cut-over that has frozen an
  account but not flipped it routes it back to its source, unfrozen),
  nothing new starts, the journal is written. Ctrl-C twice: abort at once;
  the next apply resumes or rolls back what was in flight.

Options:
  -auto-approve      Do not ask for confirmation (a saved CHANGES_FILE
                     is never confirmed again: it was reviewed).
  -parallelism N     Run at most N actions at once (default 10). Each wave's
                     max_parallel and each backend's limits.connections
                     also apply.
  -target ACCOUNT    Apply only this account's changes; may be repeated.
  -wave NAME         Apply only this wave's changes; may be repeated.
  -worker NAME       Run as the apply worker NAME, one of several (on this
                     machine or others) sharing the plan's accounts through
                     PostgreSQL (state { postgres } and routes { postgres }):
                     claim a batch of accounts, run their changes, release
                     them, until nothing is left; a dead worker's accounts
                     are taken over after its lease. Needs -auto-approve.
                     See docs/fleet.md.
  -lease DURATION    How long a worker's claims outlive its last heartbeat
                     (it heartbeats three times per lease; default 30s).
  -take-over-stopped A worker leaves the accounts whose archive is on a
                     worker that exited cleanly to that worker; with this
                     it takes them over too (that machine is gone).
  -prune-on-takeover A worker that took an account over imports it again
                     into a new archive; with this, the account's exports
                     until its cut-over destroy the target emails and
                     non-role mailboxes that archive does not hold (what
                     the dead worker exported and the source deleted
                     since). DESTRUCTIVE: mail the target account held
                     before the migration goes too. Default off: such a
                     cut-over rolls back, its verify naming the extra
                     emails.
  -refresh=false     Do not probe the sources (one login and one LIST-STATUS or
                     STATUS per mailbox, no fetch) for what changed since the
                     last import; use the journal and the archives only.
  -var NAME=VALUE    Set a plan variable; may be repeated.
  -no-color          Disable colour.

Exit status: 0 when every change succeeded (or there was nothing to do),
1 when a change failed, rolled back or was interrupted, the run stopped
before every change ran, a backend's circuit breaker opened, or apply
could not start; 130 after a second Ctrl-C. The closing line says which
("Apply complete!", "Apply finished with errors", "Apply stopped by
Ctrl-C", "Apply halted"). The journal's apply-start record names the plan
file, its hash, a saved changes file and its hash, and the approver
(MAILMIG_APPROVER, else who ran it and how).
`

func runApply(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("apply", applyHelp, s)
	auto := fs.Bool("auto-approve", false, "")
	par := fs.Int("parallelism", engine.DefaultParallelism, "")
	refresh := fs.Bool("refresh", true, "")
	noColor := fs.Bool("no-color", false, "")
	worker := fs.String("worker", "", "")
	lease := fs.Duration("lease", DefaultWorkerLease, "")
	takeStopped := fs.Bool("take-over-stopped", false, "")
	pruneTakeover := fs.Bool("prune-on-takeover", false, "")
	var targets, waves multiFlag
	fs.Var(&targets, "target", "")
	fs.Var(&waves, "wave", "")
	vars := varFlags{}
	fs.Var(vars, "var", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() > 1 || *par < 1 {
		fmt.Fprintf(s.Err, "Error: apply takes at most one saved changes file and -parallelism of at least 1.\n\nRun \"mailmig apply -h\" for its options.\n")
		return exitError
	}
	g.NoColor = g.NoColor || *noColor
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	log := g.logger(s)
	m, ok := loadPlanOrReport(g, v, vars)
	if !ok || !checkWaves(v, m, waves) {
		return exitError
	}
	if *worker != "" {
		switch {
		case fs.NArg() > 0:
			fmt.Fprintf(s.Err, "Error: apply -worker plans each round itself; it takes no saved changes file.\n")
			return exitError
		case !*auto:
			fmt.Fprintf(s.Err, "Error: apply -worker runs without asking; pass -auto-approve to say so.\n")
			return exitError
		case *lease < time.Second:
			fmt.Fprintf(s.Err, "Error: apply -lease must be at least 1s.\n")
			return exitError
		}
		return runApplyWorker(ctx, g, v, s, m, workerOpts{name: *worker, lease: *lease, par: *par, refresh: *refresh,
			targets: targets, waves: waves, planPath: g.PlanPath, takeStopped: *takeStopped,
			pruneOnTakeover: *pruneTakeover}, log)
	}
	j, done, ok := openLockedJournal(v, m, "apply", log)
	if !ok {
		return exitError
	}
	defer done()
	w, err := openWorld(ctx, m, true, log)
	if err != nil {
		fmtErr(v, "Cannot open the migration's backends", err)
		return exitError
	}
	defer w.Close()

	var ch *engine.Changes
	if fs.NArg() == 1 {
		file := fs.Arg(0)
		ch, err = readSavedChanges(ctx, file, m, j, w)
		var re readError
		if errors.As(err, &re) {
			fmtErr(v, "Cannot read saved changes", re.err)
			return exitError
		}
		if err != nil {
			v.Diagnostics(errDiag("Saved changes are stale", fmt.Errorf("the changes in %s cannot be applied: %w. Run \"mailmig plan -out %s\" again and review the new changes", file, err, file)), nil)
			return exitError
		}
		if len(targets) > 0 || len(waves) > 0 {
			fmt.Fprintf(s.Err, "Error: -target and -wave cannot narrow a saved changes file; plan again with them.\n")
			return exitError
		}
		v.Changes(ch, &views.ChangesOptions{Verb: "mailmig will perform the saved actions"})
	} else {
		var diags = observeAndDiffReport(ctx, v, m, j, w, *refresh, targets, waves, g.PlanPath, &ch)
		if diags {
			return exitError
		}
		v.Changes(ch, nil)
	}
	if ch.Empty() {
		return exitOK
	}
	// Saved changes were reviewed when they were planned: like Terraform,
	// applying them asks nothing.
	if !*auto && fs.NArg() == 0 && !confirmApply(s, "Do you want to perform these actions?") {
		fmt.Fprintln(s.Out, "\nApply cancelled: the answer was not 'yes'; nothing was changed.")
		return exitError
	}
	// One record names what started the run, in the same hash chain as
	// the actions: the plan file, its hash (on every record), the saved
	// changes file and its hash, and who approved it.
	start := state.Record{Type: state.TypeApplyStart, PlanFile: g.PlanPath, Approver: approver(*auto, fs.NArg() == 1)}
	if fs.NArg() == 1 {
		start.ChangesFile, start.ChangesHash = fs.Arg(0), fileHash(fs.Arg(0))
	}
	if _, err := j.Append(start); err != nil {
		fmtErr(v, "Cannot write the journal", err)
		return exitError
	}
	fmt.Fprintln(s.Out)
	return runChanges(ctx, g.Abort(ctx), v, s, m, j, w, ch, *par, false, log)
}

// settleDelay is Env.SettleDelay; the test binary shortens it for the
// fake executor, whose routes no proxy follows.
var settleDelay = engine.DefaultSettleDelay

// observeAndDiffReport is observeAndDiff with its diagnostics printed; it
// returns true on errors.
func observeAndDiffReport(ctx context.Context, v *views.View, m *plan.Migration, j *state.Journal, w *world, refresh bool, targets, waves []string, planPath string, out **engine.Changes) bool {
	ch, diags := observeAndDiff(ctx, m, j.State(), w, refresh, targets, waves, planPath)
	reportDiags(v, m, diags)
	*out = ch
	return diags.HasErrors()
}

// runChanges applies ch with progress, snapshots the journal and prints
// the summary.
func runChanges(ctx, abort context.Context, v *views.View, s Streams, m *plan.Migration, j *state.Journal, w *world, ch *engine.Changes, par int, manual bool, log interface{ Warn(string, ...any) }) int {
	_, code := runChangesResult(ctx, abort, v, s, m, j, w, ch, par, manual, log)
	return code
}

// runChangesResult is runChanges that also returns the engine's result
// (nil when the changes could not start), for apply workers.
func runChangesResult(ctx, abort context.Context, v *views.View, s Streams, m *plan.Migration, j *state.Journal, w *world, ch *engine.Changes, par int, manual bool, log interface{ Warn(string, ...any) }) (*engine.ApplyResult, int) {
	if w.Exec == nil || w.Router == nil {
		fmtErr(v, "Cannot apply", errors.New("no executor or route table is available"))
		return nil, exitError
	}
	prog := v.NewApplyProgress(len(ch.All()), views.IsTerminal(s.Out), clock.Now)
	env := &engine.Env{Plan: m, Executor: w.Exec, Router: w.Router, Journal: j, Limiters: engine.NewLimiters(m),
		Parallelism: par, Stop: ctx, Manual: manual, Redact: redactor(m), SettleDelay: settleDelay,
		Barrier: w.Barrier, BarrierTimeout: barrierTimeout(m), OpenBreakers: openBreakers(j.State())}
	wirePending(ctx, env, w, m, log)
	// Every action's steps, end and executor logs also go to the
	// account's own log (state/logs/ACCOUNT.log); standard error gets the
	// executor's logs only from -log-level info down, as before.
	alog := newAccountLogs(filepath.Join(statePath(m), "logs"), redactor(m), time.Now)
	handlers := fanout{alog.handler(slog.LevelInfo)}
	if l, ok := log.(*slog.Logger); ok && l.Enabled(ctx, slog.LevelInfo) {
		handlers = append(handlers, l.Handler())
	}
	env.Logger = slog.New(handlers)
	defer func() {
		if err := alog.Close(); err != nil {
			log.Warn("write account logs", "err", err)
		}
	}()
	// The first Ctrl-C cancels ctx (Env.Stop): nothing new starts. The
	// actions run under abort, which only the second Ctrl-C ends; the
	// engine then rolls a frozen cut-over back and journals it before
	// apply returns and the lock is released.
	// Say at once what each Ctrl-C does, above the progress.
	stopMsg := context.AfterFunc(ctx, func() { prog.Stopping(stopName()) })
	defer stopMsg()
	abortMsg := context.AfterFunc(abort, func() { prog.Aborting() })
	defer abortMsg()
	hs := append([]engine.Hook{prog, alog}, shareFleet(env, w)...)
	res, err := engine.Apply(abort, ch, env, hs...)
	stopMsg()
	abortMsg()
	prog.Finish()
	if err != nil {
		fmtErr(v, "Cannot apply the changes", err)
		return nil, exitError
	}
	if err := j.WriteSnapshot(); err != nil {
		log.Warn("write journal snapshot", "err", err)
	}
	stopBy := ""
	if res.Stopped {
		stopBy = stopName()
	}
	v.ApplySummary(res, stopBy)
	if views.ApplyFailed(res) {
		return res, exitError
	}
	return res, exitOK
}

// approver names who approved an apply, for its apply-start record:
// MAILMIG_APPROVER when set (a CI job passes the reviewer of the pull
// request that merged the plan), else how it was approved and by whom.
func approver(auto, saved bool) string {
	if a := strings.TrimSpace(os.Getenv("MAILMIG_APPROVER")); a != "" {
		return a
	}
	switch {
	case saved:
		return actor() + " (saved changes, reviewed when planned)"
	case auto:
		return actor() + " (-auto-approve)"
	}
	return actor() + " (answered yes)"
}

// fileHash is the hex SHA-256 of a file, "" when it cannot be read.
func fileHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// openBreakers are the backends whose circuit breaker the journal says is
// open: the engine probes them before dispatching to them.
func openBreakers(st *state.State) map[string]string {
	if st == nil || len(st.Breakers) == 0 {
		return nil
	}
	out := make(map[string]string, len(st.Breakers))
	for name, b := range st.Breakers {
		out[name] = b.Error
	}
	return out
}

// readSavedChanges reads a "plan -out" file and refuses it when stale.
func readSavedChanges(ctx context.Context, file string, m *plan.Migration, j *state.Journal, w *world) (*engine.Changes, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, readError{err}
	}
	defer f.Close()
	ch, err := engine.ReadChanges(f)
	if err != nil {
		return nil, readError{err}
	}
	if why := staleReason(ch, j.Lineage(), j.Serial(), m.Hash, m); why != "" {
		return nil, errors.New(why)
	}
	rs := map[string]engine.Route{}
	if w.Routes != nil {
		if rs, err = w.Routes.Routes(ctx); err != nil {
			return nil, err
		}
	}
	st := j.State()
	now := clock.Now()
	for _, c := range ch.All() {
		if c.Action == engine.Cutover && !c.Resume {
			if w := m.Wave(c.Wave); w != nil && (!engine.InWindow(w.CutoverWindow, now) || now.Before(w.NotBefore)) {
				return nil, fmt.Errorf("they cut %s over, but wave %s may not cut over now (window %s)", c.Account, w.Name, w.CutoverWindow.Text)
			}
		}
		if strings.Contains(c.Account, plan.Redacted) {
			// plan -out hides values from env() and file(); such an
			// address cannot be applied from the file.
			return nil, readError{fmt.Errorf("they name an account whose address was hidden when they were saved (%s holds a value from env() or file()); run \"mailmig apply\" without a saved changes file", c.Account)}
		}
		k := engine.Key(c.Account)
		r, ok := rs[k]
		if fp := engine.Fingerprint(st.Account(k), r, ok); fp != c.Fingerprint {
			return nil, fmt.Errorf("%s changed since it was planned (its route or journal entry differs)", c.Account)
		}
	}
	return ch, nil
}

// readError marks a saved changes file that cannot be read at all.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// confirmApply asks a yes/no question on the streams; only "yes" approves.
func confirmApply(s Streams, question string) bool {
	fmt.Fprintf(s.Out, "\n%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", question)
	// The scrubbing stream may hold back the prompt's end (scrubWriter).
	if f, ok := s.Out.(interface{ Flush() error }); ok {
		f.Flush()
	}
	line, _ := bufio.NewReader(s.In).ReadString('\n')
	return strings.TrimSpace(line) == "yes"
}
