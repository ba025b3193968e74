package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
)

// needPeers returns the running peer set, skipping the test under -short
// or without one. This package's TestMain belongs to testscript, so it
// cannot start a set itself; `just test` exports MAILMIG_PEERS_ROOT, and
// under CI=true a missing set fails the test.
func needPeers(t *testing.T) *peers.Set {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the real servers")
	}
	if os.Getenv(peers.EnvRoot) == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no peer set: export MAILMIG_PEERS_ROOT (just test does)")
		}
		t.Skip("needs a running peer set: `just peers-up` and export MAILMIG_PEERS_ROOT/MAILMIG_PEERS_OFFSET")
	}
	return peers.Get(t)
}

// proxyProcess is a real `mailmig proxy` child process of a test.
type proxyProcess struct {
	cmd *exec.Cmd
	// addr maps each listener ("imap", "admin", ...) to its address, from
	// the process's "listening:" lines.
	addr map[string]string
	// lines has the rest of its standard output, closed at its end.
	lines  chan string
	stderr *lockedBuffer
	// exited receives the process's end once; wait puts it back.
	exited chan error
}

// startProxyProcess runs `mailmig -f planFile proxy args...` in dir and
// waits until it printed listeners "listening:" lines. The process is
// killed when the test ends.
func startProxyProcess(t *testing.T, dir, planFile string, listeners int, args ...string) *proxyProcess {
	t.Helper()
	return startProxyProcessGlobals(t, dir, []string{"-f", planFile}, listeners, args...)
}

// startProxyProcessGlobals is startProxyProcess with the global flags
// (-f, -log-level …) given whole.
func startProxyProcessGlobals(t *testing.T, dir string, globals []string, listeners int, args ...string) *proxyProcess {
	t.Helper()
	p := &proxyProcess{addr: map[string]string{}, lines: make(chan string, 64), stderr: &lockedBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], append(append(globals[:len(globals):len(globals)], "proxy"), args...)...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=main")
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.exited <- <-p.exited
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	deadline := time.After(20 * time.Second)
	for len(p.addr) < listeners {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("mailmig proxy ended before listening:\n%s", p.stderr)
			}
			if rest, ok := strings.CutPrefix(l, "listening: "); ok {
				proto, ad, _ := strings.Cut(rest, " ")
				p.addr[proto] = ad
			}
		case <-deadline:
			t.Fatalf("mailmig proxy not listening within 20s; got %v\n%s", p.addr, p.stderr)
		}
	}
	return p
}

// wait waits up to d for the process to exit and returns how it ended;
// ok is false when it still runs.
func (p *proxyProcess) wait(d time.Duration) (err error, ok bool) {
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// lockedBuffer is a bytes.Buffer that a process writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
