package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

const journalHelp = `Usage: mailmig [global options] journal [options] [ACCOUNT]
       mailmig [global options] journal verify [-json]

  Shows the journal: one line per action start and finish, lifecycle
  transition, hold and release, with its sequence number, time, actor (and
  CI run id), account and outcome. With ACCOUNT, only that account's
  history.

  "journal verify" checks the hash chain, sequence numbers and the snapshot,
  and reports the first broken record. Exit status 1 when it is broken.

Options:
  -json      Print the records as JSON lines (verify: one JSON object).
  -n N       Show only the last N records (default all).
`

func runJournal(ctx context.Context, g *globals, args []string, s Streams) int {
	if len(args) > 0 && args[0] == "verify" {
		return runJournalVerify(g, args[1:], s)
	}
	fs := newFlagSet("journal", journalHelp, s)
	jsonOut := fs.Bool("json", false, "")
	last := fs.Int("n", 0, "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(s.Err, "Error: journal takes at most one account.\n\nRun \"mailmig journal -h\" for help.\n")
		return exitError
	}
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	// JSON lines cannot carry warnings: they go to standard error.
	machineOutput(v, false, *jsonOut)
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	acct := ""
	if fs.NArg() == 1 {
		acct = engine.Key(fs.Arg(0))
	}
	b, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot read the journal", err)
		return exitError
	}
	defer b.Close()
	var recs []*state.Record
	err = b.ReadRecords(ctx, func(r *state.Record) bool {
		if acct == "" || engine.Key(r.Account) == acct {
			c := *r
			recs = append(recs, &c)
			if *last > 0 && len(recs) > 2*(*last) {
				recs = append(recs[:0], recs[len(recs)-*last:]...)
			}
		}
		return true
	})
	if err != nil {
		fmtErr(v, "Cannot read the journal", err)
		return exitError
	}
	if *last > 0 && len(recs) > *last {
		recs = recs[len(recs)-*last:]
	}
	if *jsonOut {
		for _, r := range recs {
			if err := v.JSONLines(r); err != nil {
				return exitError
			}
		}
		return exitOK
	}
	if len(recs) == 0 {
		if acct != "" {
			fmt.Fprintf(s.Out, "The journal has no records about %s.\n", fs.Arg(0))
		} else {
			fmt.Fprintln(s.Out, "The journal is empty.")
		}
		return exitOK
	}
	v.JournalRecords(recs)
	return exitOK
}

func runJournalVerify(g *globals, args []string, s Streams) int {
	fs := newFlagSet("journal verify", journalHelp, s)
	jsonOut := fs.Bool("json", false, "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	machineOutput(v, *jsonOut, false)
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	ctx := context.Background()
	b, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot verify the journal", err)
		return exitError
	}
	defer b.Close()
	res, err := b.Verify(ctx)
	if err != nil {
		fmtErr(v, "Cannot verify the journal", err)
		return exitError
	}
	if *jsonOut {
		_ = v.JSON(res)
	} else {
		printVerify(s.Out, s.Err, res)
	}
	if !res.OK {
		return exitError
	}
	return exitOK
}

func printVerify(out, errw io.Writer, res *state.VerifyResult) {
	if res.Warning != "" {
		fmt.Fprintf(out, "Warning: %s.\n", res.Warning)
	}
	if res.OK {
		if res.Records == 0 {
			fmt.Fprintln(out, "The journal is empty.")
			return
		}
		fmt.Fprintf(out, "Journal OK: %d records, lineage %s, head %s.\n", res.Records, res.Lineage, res.Head[:16])
		return
	}
	fmt.Fprintf(errw, "Journal BROKEN at record %d: %s.\nDo not apply until the journal is restored (from a backup or version control).\n", res.BrokenSeq, res.Problem)
}
