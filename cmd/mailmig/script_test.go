package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"jsondoc":  cmdJSONDoc,
			"exitcode": cmdExitCode,
			"livelock": cmdLiveLock,
		},
	})
}

// cmdLiveLock is the script command "livelock DIR": it writes a state
// lock in DIR held by a live process on this host (the test process
// itself, which runs as long as the script), as a running apply would.
func cmdLiveLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: livelock DIR")
	}
	host, _ := os.Hostname()
	info := map[string]any{"id": "22222222-3333-4444-8555-666666666666", "owner": "ci-bot@example.test", "operation": "apply",
		"created": "2026-11-28T13:00:00Z", "host": host, "pid": os.Getpid()}
	b, _ := json.Marshal(info)
	ts.Check(os.WriteFile(filepath.Join(ts.MkAbs(args[0]), "lock.json"), b, 0o640))
}

// cmdExitCode is the script command "exitcode N PROGRAM [ARGS...]": it
// runs PROGRAM like exec (stdout and stderr are kept for the next
// commands) and requires its exit status to be exactly N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exitcode: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// cmdJSONDoc is the script command "jsondoc [-lines] FILE": FILE (such as
// stdout) holds exactly one JSON value and nothing else, or with -lines
// one JSON value per line, the way a JSON parser (json.load, jq) reads
// machine output.
func cmdJSONDoc(ts *testscript.TestScript, neg bool, args []string) {
	lines := len(args) == 2 && args[0] == "-lines"
	if lines {
		args = args[1:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: jsondoc [-lines] FILE")
	}
	data := []byte(ts.ReadFile(args[0]))
	err := parseJSONDoc(data, lines)
	switch {
	case neg && err == nil:
		ts.Fatalf("%s parses as JSON", args[0])
	case !neg && err != nil:
		ts.Fatalf("%s: %v", args[0], err)
	}
}

func parseJSONDoc(data []byte, lines bool) error {
	if lines {
		for i, l := range bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n")) {
			if err := parseJSONDoc(l, false); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := dec.Decode(&v); !errors.Is(err, io.EOF) {
		return fmt.Errorf("more than one JSON value (or trailing text)")
	}
	return nil
}
