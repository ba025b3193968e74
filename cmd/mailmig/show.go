package main

import (
	"context"
	"fmt"
	"os"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
)

const showHelp = `Usage: mailmig [global options] show [options] [CHANGES_FILE]

  With CHANGES_FILE (saved by "mailmig plan -out"), shows the saved changes
  as plan would. Without it, shows the state: every account the journal or
  the plan knows, its phase and route (like "mailmig state list"); with
  -markdown, the migration's report (like "mailmig report").

Options:
  -json       Print JSON (the saved changes' own form, or the state list).
  -markdown   Print the saved changes as a pull-request comment; without
              CHANGES_FILE the report in Markdown ("mailmig report").
  -no-color   Disable colour.
`

func runShow(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("show", showHelp, s)
	jsonOut := fs.Bool("json", false, "")
	mdOut := fs.Bool("markdown", false, "")
	noColor := fs.Bool("no-color", false, "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	g.NoColor = g.NoColor || *noColor
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	machineOutput(v, *jsonOut, *mdOut)
	switch fs.NArg() {
	case 0:
		if *mdOut {
			// The state has no text table in Markdown: its Markdown form
			// is the report.
			return runReport(ctx, g, nil, s)
		}
		return stateList(ctx, g, v, s, *jsonOut)
	case 1:
	default:
		fmt.Fprintf(s.Err, "Error: show takes at most one saved changes file.\n\nRun \"mailmig show -h\" for its options.\n")
		return exitError
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmtErr(v, "Cannot read saved changes", err)
		return exitError
	}
	defer f.Close()
	ch, err := engine.ReadChanges(f)
	if err != nil {
		fmtErr(v, "Cannot read saved changes", err)
		return exitError
	}
	switch {
	case *jsonOut:
		err = v.ChangesJSON(ch)
	case *mdOut:
		err = v.ChangesMarkdown(ch)
	default:
		v.Changes(ch, &views.ChangesOptions{Verb: "Saved changes (apply them with \"mailmig apply " + fs.Arg(0) + "\")"})
	}
	if err != nil {
		fmtErr(v, "Cannot write the changes", err)
		return exitError
	}
	return exitOK
}
