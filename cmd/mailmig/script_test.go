package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

var updateScripts = flag.Bool("update", false, "rewrite the expected output in testdata/script/*.txtar (just update-golden)")

// TestMain lets testscript run this test binary as the "mailmig" command,
// so the scripts exercise the real main with real flag parsing and exit
// codes.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"mailmig": func() {
			os.Exit(run(context.Background(), os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
		},
	})
}

// TestScripts runs the CLI golden tests in testdata/script. Each script
// holds its plan files and the exact expected output; `just update-golden`
// (or go test -update) rewrites the expectations after an intended change.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       *updateScripts || os.Getenv("MAILMIG_UPDATE_GOLDEN") != "",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The scripts set what they need; nothing leaks in from the
			// developer's environment.
			env.Setenv("NO_COLOR", "")
			// EXAMPLES lets scripts check the shipped example plans.
			examples, err := filepath.Abs("../../examples")
			if err != nil {
				return err
			}
			env.Setenv("EXAMPLES", examples)
			return nil
		},
	})
}
