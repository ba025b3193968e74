package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyOutput collects what a program writes to its terminal and lets a
// test wait for a text.
type ptyOutput struct {
	mu   sync.Mutex
	b    bytes.Buffer
	more chan struct{} // signalled after each read
	done chan struct{} // closed at EOF
}

func (o *ptyOutput) copyFrom(r io.Reader) {
	defer close(o.done)
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			o.mu.Lock()
			o.b.Write(buf[:n])
			o.mu.Unlock()
			select {
			case o.more <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until the output holds s; the bound only keeps a broken
// run from hanging the suite.
func (o *ptyOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(o.String(), s) {
		select {
		case <-o.more:
		case <-o.done:
			if !strings.Contains(o.String(), s) {
				t.Fatalf("the output ended without %q:\n%q", s, o.String())
			}
		case <-deadline:
			t.Fatalf("no %q in the output:\n%q", s, o.String())
		}
	}
}

// TestApplyTerminal runs "mailmig apply" (the real main) under a
// pseudo-terminal while a cut-over waits for a slow verify: it draws a
// progressbar/v3 bar per running account and an overall bar, redrawn in
// place; Ctrl-C typed on the terminal prints what stopping does, a
// second Ctrl-C what aborting does, and apply exits 130 with the account
// routed back.
func TestApplyTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
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
		cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=main", "MAILMIG_TEST_WORLD="+world, "NO_COLOR=1")
		if slow {
			cmd.Env = append(cmd.Env, "MAILMIG_TEST_SLOW=verify")
		}
		return cmd
	}
	if out, err := mailmig(false, "apply", "-auto-approve", "-target", "a@example.test").CombinedOutput(); err != nil {
		t.Fatalf("staging: %v\n%s", err, out)
	}
	cmd := mailmig(true, "apply", "-auto-approve", "-target", "a@example.test", "-refresh=false")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 160})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := &ptyOutput{more: make(chan struct{}, 1), done: make(chan struct{})}
	go out.copyFrom(tty)

	// The frame: the account's bar names its step, the overall bar counts
	// changes; both are progressbar/v3 bars, redrawn in place.
	out.waitFor(t, "fake: verify is slow")
	out.waitFor(t, "a@example.test cutover verify")
	out.waitFor(t, "overall: 1 running")
	out.waitFor(t, "| (0/1)")
	// The next frame moves up over the last one and clears it.
	out.waitFor(t, "\x1b[1A\x1b[2K")
	s := out.String()
	if strings.Contains(s, "T13:") || strings.Contains(s, "Z a@example.test") {
		t.Errorf("timestamped plain lines on a terminal:\n%q", s)
	}

	// Ctrl-C typed on the terminal, twice.
	if _, err := tty.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "stopping (Ctrl-C): 1 running action will finish, nothing new starts; Ctrl-C again to abort")
	if _, err := tty.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "aborting: cancelling 1 running action now")
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitAborted {
		t.Fatalf("apply: %v, want exit %d:\n%q", err, exitAborted, out.String())
	}
	<-out.done
	if s := out.String(); !strings.Contains(s, "a@example.test cutover: interrupted") || !strings.Contains(s, "Apply stopped by Ctrl-C") {
		t.Errorf("no interrupted cut-over or closing line:\n%q", s)
	}
	if route, frozen := routeAndFrozen(t, dir, "a@example.test"); route != "legacy" || frozen {
		t.Fatalf("after two Ctrl-Cs: route %s frozen %v", route, frozen)
	}
}
