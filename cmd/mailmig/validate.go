package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/plan"
)

const validateHelp = `Usage: mailmig [global options] validate [options] [PLAN]

  Checks the migration plan: syntax, attribute names and types, references
  between blocks, accounts, waves, time windows and environment variables.
  Every problem is shown with its file:line:col and a source snippet.
  Errors go to standard error and warnings to standard output. Nothing is
  contacted: validate works offline, and needs no secret (an unset
  password variable is a warning; apply needs it).

  PLAN is a plan file or a directory of *.hcl files; it overrides -f
  (default migration.hcl).

Options:
  -json            Print the result as JSON on standard output
                   (format_version, valid, error_count, warning_count,
                   diagnostics with range and snippet).
  -var NAME=VALUE  Set a variable; may be repeated. Overrides
                   MAILMIG_VAR_NAME from the environment and the default.
  -no-color        Disable colour.

Exit status: 0 when the plan is valid (warnings allowed), 1 otherwise.
`

// varFlags collects repeated -var NAME=VALUE flags.
type varFlags map[string]string

func (v varFlags) String() string { return "" }

func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	v[strings.TrimSpace(name)] = value
	return nil
}

// flagSet is a command's flag set with its help text, which -h prints.
type flagSet struct {
	*flag.FlagSet
	help string
}

// newFlagSet returns a flag set whose -h prints help to standard output and
// whose errors print a short hint to standard error (see parseFlags).
func newFlagSet(name, help string, s Streams) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage itself on -h and on errors; parseFlags
	// prints instead, so that help appears once and errors stay short.
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, help: help}
}

// parseFlags parses args; done is true when the command must return code
// at once (help shown, or a flag error reported).
func parseFlags(fs *flagSet, args []string, s Streams) (code int, done bool) {
	err := fs.Parse(args)
	if err == nil {
		return exitOK, false
	}
	if err == flag.ErrHelp {
		io.WriteString(s.Out, fs.help)
		return exitOK, true
	}
	fmt.Fprintf(s.Err, "Error: %v\n\nRun \"mailmig %s -h\" for its options.\n", err, fs.Name())
	return exitError, true
}

// useColor reports whether human output to w may use colour.
func useColor(g *globals, w io.Writer) bool {
	if g.NoColor || os.Getenv("NO_COLOR") != "" {
		return false
	}
	return views.IsTerminal(w)
}

// loadMigration loads the plan named by path (or the global -f) with the
// given variables. Commands that need the plan share it.
func loadMigration(g *globals, path string, vars map[string]string, opts ...plan.Option) (*plan.Migration, hcl.Diagnostics) {
	if path == "" {
		path = g.PlanPath
	}
	m, diags := plan.Load(path, append([]plan.Option{plan.WithVariables(vars)}, opts...)...)
	g.hide(m)
	return m, diags
}

func runValidate(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("validate", validateHelp, s)
	jsonOut := fs.Bool("json", false, "")
	noColor := fs.Bool("no-color", false, "")
	vars := varFlags{}
	fs.Var(vars, "var", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(s.Err, "Error: validate takes at most one plan path, got %d arguments.\n\nRun \"mailmig validate -h\" for its options.\n", fs.NArg())
		return exitError
	}
	g.NoColor = g.NoColor || *noColor
	// validate logs in nowhere: a CI job without production secrets
	// validates the plan, unset secrets are warnings.
	m, diags := loadMigration(g, fs.Arg(0), vars, plan.WithSecretsDeferred())
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	if *jsonOut {
		if err := v.ValidateJSON(diags, m.Sources); err != nil {
			fmt.Fprintf(s.Err, "Error: write JSON: %v\n", err)
			return exitError
		}
		if diags.HasErrors() {
			return exitError
		}
		return exitOK
	}
	v.Diagnostics(diags, m.Sources)
	if diags.HasErrors() {
		return exitError
	}
	if len(diags) > 0 {
		fmt.Fprintln(s.Out)
		v.Success("Success! The plan is valid, but there were some validation warnings as shown above.")
		return exitOK
	}
	v.Success("Success! The plan is valid.")
	return exitOK
}
