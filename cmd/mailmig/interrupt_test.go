package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// TestCtrlC sends SIGINT to "mailmig apply" (the real main, with its
// two-phase signal handling) while a cut-over waits for a slow verify.
// Once: the cut-over finishes its step, rolls the account back to its
// source unfrozen, journals "interrupted" and apply exits 1. Twice: the
// context the verify runs under is cancelled, so it ends at once; the
// cut-over still rolls back and is journaled, the deferred clean-up
// releases the lock, and apply exits 130. Either way the next apply runs
// and converges.
func TestCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, twice := range []bool{false, true} {
		t.Run(map[bool]string{false: "once", true: "twice"}[twice], func(t *testing.T) {
			dir := t.TempDir()
			plan := strings.Replace(crashPlan, `canary            = 1`, `canary            = 0`, 1)
			if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(plan), 0o644); err != nil {
				t.Fatal(err)
			}
			world := filepath.Join(dir, "world.json")
			writeWorld(t, world, &fakeData{Source: map[string]int64{"a@example.test": 3, "b@example.test": 3, "c@example.test": 3, "d@example.test": 3}})
			mailmig := func(slow bool, args ...string) *exec.Cmd {
				cmd := exec.Command(os.Args[0], args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=main", "MAILMIG_TEST_WORLD="+world)
				if slow {
					cmd.Env = append(cmd.Env, "MAILMIG_TEST_SLOW=verify")
				}
				return cmd
			}
			if out, err := mailmig(false, "apply", "-auto-approve", "-target", "a@example.test").CombinedOutput(); err != nil {
				t.Fatalf("staging: %v\n%s", err, out)
			}
			cmd := mailmig(true, "apply", "-auto-approve", "-target", "a@example.test", "-refresh=false")
			var out bytes.Buffer
			cmd.Stdout = &out
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until verify runs (the account is frozen by then).
			sc := bufio.NewScanner(stderr)
			for sc.Scan() && !strings.Contains(sc.Text(), "fake: verify is slow") {
			}
			var errOut bytes.Buffer
			copied := make(chan struct{})
			go func() { io.Copy(&errOut, stderr); close(copied) }()
			cmd.Process.Signal(syscall.SIGINT)
			if twice {
				<-time.After(100 * time.Millisecond) // a second, separate keypress
				cmd.Process.Signal(syscall.SIGINT)
			}
			<-copied
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("apply: %v\n%s", err, out.String())
			}
			route, frozen := routeAndFrozen(t, dir, "a@example.test")
			j, jerr := state.Open(filepath.Join(dir, "state"), &state.Options{ReadOnly: true})
			if jerr != nil {
				t.Fatal(jerr)
			}
			acct := j.Account("a@example.test")
			j.Close()
			if !twice {
				if ee.ExitCode() != 1 || !strings.Contains(out.String(), "a@example.test cutover: interrupted") || !strings.Contains(out.String(), "Apply stopped by Ctrl-C") || !strings.Contains(out.String(), "stopping (Ctrl-C): 1 running action will finish, nothing new starts; Ctrl-C again to abort") {
					t.Fatalf("exit %d:\n%s", ee.ExitCode(), out.String())
				}
				if route != "legacy" || frozen || acct.Phase != state.PhaseCatchingUp || acct.InFlight != "" || acct.LastError != "interrupted" {
					t.Fatalf("after one Ctrl-C: route %s frozen %v state %+v", route, frozen, acct)
				}
			} else {
				if ee.ExitCode() != 130 {
					t.Fatalf("exit %d, want 130:\n%s\n%s", ee.ExitCode(), out.String(), errOut.String())
				}
				if !strings.Contains(errOut.String(), "fake: verify cancelled") {
					t.Fatalf("the second Ctrl-C did not cancel the running verify:\n%s", errOut.String())
				}
				if route != "legacy" || frozen || acct.InFlight != "" || acct.LastError != "interrupted" {
					t.Fatalf("after two Ctrl-Cs: route %s frozen %v state %+v", route, frozen, acct)
				}
				if _, err := os.Stat(filepath.Join(dir, "state", "lock.json")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("the lock was not released after two Ctrl-Cs: %v", err)
				}
			}
			// The next apply converges (the abort's lock is taken over).
			if out, err := mailmig(false, "apply", "-auto-approve", "-target", "a@example.test").CombinedOutput(); err != nil {
				t.Fatalf("rerun: %v\n%s", err, out)
			}
			if route, frozen := routeAndFrozen(t, dir, "a@example.test"); route != "target" || frozen {
				t.Fatalf("after the rerun: route %s frozen %v", route, frozen)
			}
		})
	}
}
