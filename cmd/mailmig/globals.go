package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mailmig/mailmig/plan"
)

// globals holds the options that precede the subcommand name.
type globals struct {
	// PlanPath is the plan file, or a directory whose *.hcl files form the
	// plan. Default: migration.hcl.
	PlanPath string
	// NoColor disables colour in human output.
	NoColor bool
	// LogLevel is the slog level for diagnostics on stderr. Default: warn.
	LogLevel slog.Level

	abort *aborter // the second Ctrl-C; nil in tests that call run
	// hideInputs makes the command's streams hide the values the plan
	// read from env() and file() (scrubStreams); nil in tests that call
	// a command directly.
	hideInputs func(*plan.Migration)
}

// Abort returns the context that running actions use: ctx without its
// cancellation (the first Ctrl-C only stops new work), ended by the
// second Ctrl-C when main's signal handling is in place.
func (g *globals) Abort(ctx context.Context) context.Context {
	actx := context.WithoutCancel(ctx)
	if g.abort == nil {
		return actx
	}
	g.abort.used.Store(true)
	actx, cancel := context.WithCancel(actx)
	context.AfterFunc(g.abort.ctx, cancel)
	return actx
}

var errHelp = errors.New("help requested")

const globalHelp = `  -f, --plan FILE   plan file, or a directory of *.hcl files (default migration.hcl)
  -no-color         disable colour in output
  -log-level LEVEL  trace, debug, info, warn or error (default warn)
`

func parseGlobals(args []string, s Streams) (*globals, []string, error) {
	g := &globals{PlanPath: "migration.hcl", LogLevel: slog.LevelWarn}
	fs := flag.NewFlagSet("mailmig", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.PlanPath, "f", g.PlanPath, "")
	fs.StringVar(&g.PlanPath, "plan", g.PlanPath, "")
	fs.BoolVar(&g.NoColor, "no-color", false, "")
	level := fs.String("log-level", "warn", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, errHelp
		}
		return nil, nil, err
	}
	lv, err := parseLevel(*level)
	if err != nil {
		return nil, nil, err
	}
	g.LogLevel = lv
	return g, fs.Args(), nil
}

// LevelTrace logs protocol traces; credentials stay redacted at this level.
const LevelTrace = slog.LevelDebug - 4

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return LevelTrace, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown log level %q (want trace, debug, info, warn or error)", s)
}

// logger returns the process logger writing text records to stderr.
func (g *globals) logger(s Streams) *slog.Logger {
	return slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: g.LogLevel}))
}

// hide starts hiding m's input values in the command's output.
func (g *globals) hide(m *plan.Migration) {
	if g.hideInputs != nil && m != nil {
		g.hideInputs(m)
	}
}
