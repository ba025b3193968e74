package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/executor"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

const planHelp = `Usage: mailmig [global options] plan [options]

  Compares the plan with the observed state (the journal, the route table,
  the accounts' archives and, with -refresh, the sources) and shows what
  apply would do now: imports, exports, catch-ups, cut-overs, rollbacks
  and adoptions, grouped by wave, each with its reason. Cut-overs are planned only inside a wave's
  cutover_window, after not_before, once the waves in after are done and
  when the account's last pass was small. Nothing is changed.

Options:
  -out FILE            Save the changes (with the journal's lineage and
                       serial and what was observed) for "mailmig apply FILE".
  -json                Print the changes as JSON (format_version 1.x;
                       see docs/engine.md).
  -markdown            Print a pull-request comment (under 65,000
                       characters however many accounts).
  -target ACCOUNT      Plan only this account; may be repeated or
                       comma-separated.
  -refresh=false       Do not ask the sources what changed; plan from the
                       journal, route table and archives only. (Refresh
                       logs in once per imported account that is not done:
                       IMAP LIST-STATUS or STATUS, POP3 STAT, Maildir
                       counts; nothing is fetched.)
  -detailed-exitcode   Exit 0 when there is nothing to do, 2 when there are
                       changes, 3 when something needs an operator (a wave
                       halted, a done account's route drifted off its
                       target, a backend's circuit breaker is open), 1 on
                       errors.
  -wave NAME           Plan only this wave's accounts; may be repeated or
                       comma-separated ("(no wave)" for accounts in none).
  -check               Pre-flight instead of planning: log in at the source
                       and the target of every account in scope (-target;
                       accounts already done are skipped), with the plan's
                       limits, and report per account a refused login (with
                       the login and the secret's reference, never the
                       secret), a target account that does not exist, a
                       target quota below the source's size, a protocol a
                       data kind needs. Nothing is imported or written.
                       Exit 1 when any account fails. Works with -json and
                       -markdown.
  -parallelism N       -check: accounts checked at once. Default: 8.
  -var NAME=VALUE      Set a plan variable; may be repeated.
  -no-color            Disable colour.

Exit status: 0 (or 2 or 3 with -detailed-exitcode, see above), 1 on
errors. docs/engine.md has every command's codes in one table.
`

func runPlan(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("plan", planHelp, s)
	out := fs.String("out", "", "")
	jsonOut := fs.Bool("json", false, "")
	mdOut := fs.Bool("markdown", false, "")
	refresh := fs.Bool("refresh", true, "")
	detailed := fs.Bool("detailed-exitcode", false, "")
	check := fs.Bool("check", false, "")
	parallelism := fs.Int("parallelism", 8, "")
	noColor := fs.Bool("no-color", false, "")
	var targets, waves multiFlag
	fs.Var(&targets, "target", "")
	fs.Var(&waves, "wave", "")
	vars := varFlags{}
	fs.Var(vars, "var", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.Err, "Error: plan takes no arguments (the plan file is given with -f).\n\nRun \"mailmig plan -h\" for its options.\n")
		return exitError
	}
	if *jsonOut && *mdOut {
		fmt.Fprintf(s.Err, "Error: -json and -markdown exclude each other.\n")
		return exitError
	}
	if *check && *out != "" {
		fmt.Fprintf(s.Err, "Error: -check saves no changes; drop -out.\n")
		return exitError
	}
	g.NoColor = g.NoColor || *noColor
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	machineOutput(v, *jsonOut, *mdOut)
	log := g.logger(s)
	var opts []plan.Option
	if !*refresh && !*check {
		// Planning from the archives and the journal logs in nowhere.
		opts = append(opts, plan.WithSecretsDeferred())
	}
	m, ok := loadPlan(g, v, vars, opts...)
	if !ok || !checkWaves(v, m, waves) {
		return exitError
	}
	j, err := openJournal(m, true, log)
	if err != nil {
		fmtErr(v, "Cannot read the state", err)
		return exitError
	}
	defer j.Close()
	if *check {
		return runPreflight(ctx, v, m, j.State(), targets, *parallelism, *jsonOut, *mdOut, log)
	}
	w, err := openWorld(ctx, m, false, log)
	if err != nil {
		fmtErr(v, "Cannot observe the migration", err)
		return exitError
	}
	defer w.Close()
	ch, diags := observeAndDiff(ctx, m, j.State(), w, *refresh, targets, waves, g.PlanPath)
	reportDiags(v, m, diags)
	if diags.HasErrors() {
		return exitError
	}
	if r := j.Repaired(); r != "" {
		v.Diagnostics(warnDiag("Incomplete journal record", "The journal ends with an incomplete record: "+r+"."), nil)
	}
	if run := runningApply(m); run != nil {
		ch.MarkRunning(run)
	}
	switch {
	case *jsonOut:
		err = v.ChangesJSON(ch)
	case *mdOut:
		err = v.ChangesMarkdown(ch)
	default:
		v.Changes(ch, nil)
	}
	if err != nil {
		fmtErr(v, "Cannot write the changes", err)
		return exitError
	}
	if *out != "" {
		var b bytes.Buffer
		if err := ch.WriteJSON(&b); err != nil {
			fmtErr(v, "Cannot save the changes", err)
			return exitError
		}
		// The file is reviewed and kept like the output (CI artifacts):
		// it hides the plan's env() and file() values too.
		saved := []byte(newScrubber(m).Replace(b.String()))
		if err := state.WriteFileAtomic(*out, saved, 0o640); err != nil {
			fmtErr(v, "Cannot save the changes", err)
			return exitError
		}
		if !*jsonOut && !*mdOut {
			fmt.Fprintf(s.Out, "\nSaved the changes to %s. Apply exactly these with \"mailmig apply %s\".\n", *out, *out)
		}
	}
	if *detailed {
		return detailedExit(ch, j.State())
	}
	return exitOK
}

// detailedExit is plan -detailed-exitcode's status: 3 when something
// needs an operator whatever the changes (a halted wave, a done
// account's route drifted off its target, a backend's open circuit
// breaker), else 2 with changes and 0 without.
func detailedExit(ch *engine.Changes, st *state.State) int {
	switch {
	case ch.Summary.Halted > 0 || ch.Summary.Drifted > 0 || len(st.Breakers) > 0:
		return exitAttention
	case !ch.Empty():
		return exitChanges
	}
	return exitOK
}

// staleReason says why saved changes no longer match the journal (lineage,
// serial) or the plan files, or returns "".
func staleReason(saved *engine.Changes, lineage string, serial uint64, planHash string, m *plan.Migration) string {
	switch {
	case saved.Lineage != "" && saved.Lineage != lineage:
		return fmt.Sprintf("they belong to another migration (lineage %s, the state has %s)", saved.Lineage, orNone(lineage))
	case saved.Serial != serial:
		return fmt.Sprintf("the state moved on since they were planned (serial %d then, %d now)", saved.Serial, serial)
	case saved.PlanHash != planHash:
		if files := changedPlanFiles(saved.PlanFiles, m); files != "" {
			return "the plan files changed since they were planned (" + files + ")"
		}
		return "the plan files changed since they were planned"
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// runPreflight runs "plan -check": engine.Preflight with the real
// executor as the checker, rendered through the views. Error texts are
// redacted of the plan's secrets before they are shown.
func runPreflight(ctx context.Context, v *views.View, m *plan.Migration, st *state.State, targets []string, parallelism int, jsonOut, mdOut bool, log *slog.Logger) int {
	opts := &engine.PreflightOptions{State: st, Parallelism: parallelism}
	if len(targets) > 0 {
		opts.Accounts = map[string]bool{}
		for _, t := range targets {
			if m.Account(t) == nil {
				fmtErr(v, "Unknown account", fmt.Errorf("-target %s: the plan has no such account", t))
				return exitError
			}
			opts.Accounts[engine.Key(t)] = true
		}
	}
	r := engine.Preflight(ctx, m, newChecker(m, log), opts)
	if redact := redactor(m); redact != nil {
		for _, a := range r.Accounts {
			for i := range a.Findings {
				a.Findings[i].Error = redact(a.Findings[i].Error)
			}
		}
	}
	var err error
	switch {
	case jsonOut:
		err = v.CheckJSON(r)
	case mdOut:
		err = v.CheckMarkdown(r)
	default:
		v.CheckHuman(r)
	}
	if err != nil {
		fmtErr(v, "Cannot write the report", err)
		return exitError
	}
	if r.Failed > 0 || ctx.Err() != nil {
		return exitError
	}
	return exitOK
}

// newChecker builds the pre-flight's checker; the test binary may
// replace it.
var newChecker = func(m *plan.Migration, log *slog.Logger) engine.Checker {
	return executor.New(m, archiveDir(m), log)
}
