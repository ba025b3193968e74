package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

const rollbackHelp = `Usage: mailmig [global options] rollback [options] ACCOUNT

  Routes ACCOUNT back to its source backend, unfrozen: for an account that
  was cut over (done) or that an interrupted cut-over left frozen. Mail that
  arrived on the target after the cut-over is first copied back to the
  source (IMAP APPEND with flags and internal date; folders made on the
  target are created), so that the user loses nothing; the prompt says how
  many messages. Nothing is deleted on either side, and changes to mail that
  was migrated (flags, moves, deletions on the target) are not copied back.
  If the copy-back fails the route stays on the target; run the rollback
  again, it copies only what is missing. The account is then held: no plan
  cuts it over again until "mailmig state release ACCOUNT". Journaled like
  every action.

Options:
  -auto-approve   Do not ask for confirmation.
  -no-color       Disable colour.
`

func runRollback(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("rollback", rollbackHelp, s)
	auto := fs.Bool("auto-approve", false, "")
	noColor := fs.Bool("no-color", false, "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(s.Err, "Error: rollback takes one account.\n\nRun \"mailmig rollback -h\" for help.\n")
		return exitError
	}
	g.NoColor = g.NoColor || *noColor
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	log := g.logger(s)
	m, ok := loadPlanOrReport(g, v, nil)
	if !ok {
		return exitError
	}
	pa := m.Account(fs.Arg(0))
	if pa == nil {
		fmtErr(v, "Unknown account", fmt.Errorf("%s is not in the plan; rollback needs its source backend from the plan", fs.Arg(0)))
		return exitError
	}
	j, done, ok := openLockedJournal(v, m, "rollback", log)
	if !ok {
		return exitError
	}
	defer done()
	w, err := openWorld(ctx, m, true, log)
	if err != nil {
		fmtErr(v, "Cannot open the route table", err)
		return exitError
	}
	defer w.Close()
	k := engine.Key(pa.Address)
	routes := map[string]engine.Route{}
	if w.Routes != nil {
		if routes, err = w.Routes.Routes(ctx); err != nil {
			fmtErr(v, "Cannot read the route table", err)
			return exitError
		}
	}
	r, hasRoute := routes[k]
	sa := j.Account(k)
	phase := state.PhasePending
	if sa != nil {
		phase = sa.Phase
	}
	if (!hasRoute || (r.Backend == pa.From && !r.Frozen)) && !phase.InCutover() && phase != state.PhaseDone {
		fmt.Fprintf(s.Out, "%s is already served by %s and not frozen; nothing to roll back.\n", pa.Address, pa.From)
		return exitOK
	}
	c := &engine.Change{ID: "rollback:" + k, Account: pa.Address, Action: engine.Rollback, Phase: phase, Wave: orNoWave(pa.Wave),
		Source: pa.From, Target: pa.To, Destructive: true, Fingerprint: engine.Fingerprint(sa, r, hasRoute),
		Reason: engine.Reason{Code: engine.ReasonRequested, Backend: pa.From}}
	ch := &engine.Changes{FormatVersion: engine.FormatVersion, Lineage: j.Lineage(), Serial: j.Serial(), PlanHash: m.Hash, Created: clock.Now().UTC(),
		Waves:   []*engine.WaveChanges{{Name: c.Wave, Status: engine.WaveOpen, Accounts: 1, Phases: map[state.Phase]int{phase: 1}, Changes: []*engine.Change{c}}},
		Summary: engine.Summary{Rollback: 1, Changes: 1, Accounts: 1}}
	question := "Do you want to roll " + pa.Address + " back to " + pa.From + "?"
	if c.NeedsCopyBack() && w.CopyBack != nil {
		engine.CountCopyBacks(ctx, ch, m, w.CopyBack)
		question = views.CopyBackQuestion(c)
	}
	v.Changes(ch, nil)
	if !*auto && !confirmApply(s, question) {
		fmt.Fprintln(s.Out, "\nRollback cancelled.")
		return exitError
	}
	if w.Router == nil {
		fmtErr(v, "Cannot roll back", errors.New("no route table"))
		return exitError
	}
	fmt.Fprintln(s.Out)
	return runChanges(ctx, g.Abort(ctx), v, s, m, j, w, ch, 1, true, log)
}

func orNoWave(w string) string {
	if w == "" {
		return engine.NoWave
	}
	return w
}
