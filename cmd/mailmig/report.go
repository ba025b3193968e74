package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/report"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

const reportHelp = `Usage: mailmig [global options] report [options]

  Writes the migration's report from the journal, the plan and the route
  table, to attach to a change ticket: per account and per wave the state,
  messages and bytes moved, duplicates collapsed and keywords merged on
  the target, time frozen, when it cut over, errors, rolled-back
  cut-overs and verify mismatches; totals; and in Markdown a Mermaid
  timeline per wave (staged, frozen, cut over). Reads only: no login, no
  secret needed.

Options:
  -format FORMAT   markdown (default), csv or json. With -out FILE ending
                   in .csv or .json that format is the default.
  -out FILE        Write the report to FILE (atomically) instead of
                   standard output.
  -wave NAME       Report only this wave; may be repeated or
                   comma-separated.
`

func runReport(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("report", reportHelp, s)
	format := fs.String("format", "", "")
	out := fs.String("out", "", "")
	var waves multiFlag
	fs.Var(&waves, "wave", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.Err, "Error: report takes no arguments.\n\nRun \"mailmig report -h\" for its options.\n")
		return exitError
	}
	if *format == "" {
		switch strings.ToLower(filepath.Ext(*out)) {
		case ".csv":
			*format = "csv"
		case ".json":
			*format = "json"
		default:
			*format = "markdown"
		}
	}
	if *format != "markdown" && *format != "csv" && *format != "json" {
		fmt.Fprintf(s.Err, "Error: -format must be markdown, csv or json, not %q.\n", *format)
		return exitError
	}
	// The document is the only thing on standard output; warnings go to
	// standard error (a CSV or Markdown file cannot carry them).
	v := views.New(s.Out, s.Err, false)
	machineOutput(v, false, true)
	m, ok := loadPlanReadOnly(g, v)
	if !ok {
		return exitError
	}
	if !checkWaves(v, m, waves) {
		return exitError
	}
	rep, ok := buildReport(ctx, g, v, s, m, waves)
	if !ok {
		return exitError
	}
	var buf bytes.Buffer
	dv := views.New(&buf, s.Err, false)
	var err error
	switch *format {
	case "csv":
		err = dv.ReportCSV(rep)
	case "json":
		err = dv.JSON(rep)
	default:
		err = dv.ReportMarkdown(rep)
	}
	if err != nil {
		fmtErr(v, "Cannot write the report", err)
		return exitError
	}
	if *out == "" {
		if _, err := s.Out.Write(buf.Bytes()); err != nil {
			return exitError
		}
		return exitOK
	}
	if err := state.WriteFileAtomic(*out, buf.Bytes(), 0o640); err != nil {
		fmtErr(v, "Cannot write the report", err)
		return exitError
	}
	fmt.Fprintf(s.Err, "Wrote the report (%s, %d accounts) to %s.\n", *format, len(rep.Accounts), *out)
	return exitOK
}

// checkWaves refuses -wave names the plan does not have.
func checkWaves(v *views.View, m *plan.Migration, waves []string) bool {
	for _, w := range waves {
		if m.Wave(w) == nil && w != engine.NoWave {
			var names []string
			for _, pw := range m.Waves {
				names = append(names, pw.Name)
			}
			fmtErr(v, "Unknown wave", fmt.Errorf("-wave %s: the plan has no such wave (it has %s)", w, orNone(strings.Join(names, ", "))))
			return false
		}
	}
	return true
}

// buildReport folds the journal's records into the report and adds the
// plan's accounts and the route table.
func buildReport(ctx context.Context, g *globals, v *views.View, s Streams, m *plan.Migration, waves []string) (*report.Report, bool) {
	b := report.NewBuilder()
	sb, err := openState(ctx, m, false)
	if err != nil {
		fmtErr(v, "Cannot read the journal", err)
		return nil, false
	}
	err = sb.ReadRecords(ctx, func(r *state.Record) bool { b.Add(r); return true })
	sb.Close()
	if err != nil {
		fmtErr(v, "Cannot read the journal", err)
		return nil, false
	}
	opts := &report.Options{Plan: m, Now: clock.Now(), Waves: waves}
	w, err := openWorld(ctx, m, false, g.logger(s))
	if err != nil {
		fmtErr(v, "Cannot read the route table", err)
		return nil, false
	}
	defer w.Close()
	if w.Routes != nil {
		if opts.Routes, err = w.Routes.Routes(ctx); err != nil {
			fmtErr(v, "Cannot read the route table", err)
			return nil, false
		}
	}
	return b.Report(opts), true
}
