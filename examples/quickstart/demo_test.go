// Package quickstart holds the test that runs the quickstart demo
// (demo.sh, `just demo`, docs/demo.md) end to end on real servers.
package quickstart

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
)

func TestMain(m *testing.M) {
	// The demo empties and refills the fixed users alice, bob and carol, so
	// it gets a set of servers of its own instead of the one `just test`
	// shares with every package (peers.Get starts one at a free offset).
	os.Unsetenv(peers.EnvRoot)
	os.Unsetenv(peers.EnvOffset)
	peers.Main(m)
}

// TestDemo runs examples/quickstart/demo.sh against a private set of real
// servers: validate, seed, proxy, plan, apply until done (with mail
// arriving through the proxy's LMTP and SMTP fronts and an IMAP client
// logging in through it), then the independent check and the journal.
// Calendars, contacts and Sieve scripts move with the mail (Radicale and
// Dovecot → Cyrus), and a CalDAV client follows alice's flip.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo on real servers")
	}
	for _, tool := range []string{"bash", "curl", "swaks", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the demo needs %s (testdata/peers/install.sh installs it)", tool)
			}
			t.Skipf("the demo needs %s", tool)
		}
	}
	s := peers.Get(t)
	base := freePorts(t, 10)

	// About a minute on a quiet machine; several on a loaded one.
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "demo.sh")
	cmd.Env = append(os.Environ(),
		peers.EnvRoot+"="+s.Root,
		peers.EnvOffset+"="+strconv.Itoa(s.Offset),
		"DEMO_PROXY_PORT="+strconv.Itoa(base),
		"DEMO_WORK="+t.TempDir(),
		"DEMO_MESSAGES=60",
		"DEMO_KEEP=",
	)
	// The script starts the proxy and background loops: stop them all
	// when the test times out.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo.sh: %v after %v\n%s", err, time.Since(start).Round(time.Second), out)
	}
	t.Logf("demo.sh took %v\n%s", time.Since(start).Round(100*time.Millisecond), out)

	// What the demo promises, in its own output.
	after := out[strings.Index(out, "After the cut-over"):]
	for _, u := range []string{"alice", "bob", "carol"} {
		if !regexp.MustCompile(`(?m)^` + u + `@example.test → Dovecot$`).MatchString(out) {
			t.Errorf("no login for %s landed on Dovecot before the cut-over", u)
		}
		// IMAP lands on Cyrus, POP3 works, and the JMAP session comes
		// through the proxy's HTTP front with its URLs rewritten to it.
		if !regexp.MustCompile(`(?m)^` + u + `@example.test → IMAP: Cyrus IMAPD; POP3: [1-9]\d* messages in INBOX; JMAP: apiUrl http://127.0.0.1:` + strconv.Itoa(base+8) + `/jmap/, [1-9]\d* emails`).MatchString(after) {
			t.Errorf("the clients of %s did not land on Cyrus after the cut-over", u)
		}
		if !regexp.MustCompile(`(?m)^` + u + `@example.test .* ok: every message on the target exactly once, nothing left behind$`).MatchString(out) {
			t.Errorf("the check did not pass for %s", u)
		}
		if !regexp.MustCompile(`(?m)^(\S+ )?` + u + `@example.test cutover: done`).MatchString(out) {
			t.Errorf("%s was not cut over", u)
		}
		// Events, contacts and scripts: seeded, moved, found equal.
		if !regexp.MustCompile(`(?m)^seeded ` + u + `@example.test on legacy: 5 events in .*, 3 contacts in .*, 2 Sieve scripts \("main" active\)$`).MatchString(out) {
			t.Errorf("no events, contacts and scripts were seeded for %s", u)
		}
		for _, row := range []string{
			`calendars +5 events, sha256 (\w{12}) +5 events, sha256 (\w{12}) +ok: same UIDs, equal by SHA-256 after the documented normalisation`,
			`contacts +3 contacts, sha256 (\w{12}) +3 contacts, sha256 (\w{12}) +ok: same UIDs, equal by SHA-256 after the documented normalisation`,
			`sieve +2 scripts, "main" active, sha256 (\w{12}) +2 scripts, "main" active, sha256 (\w{12}) +ok: byte-equal, same active script`,
		} {
			m := regexp.MustCompile(`(?m)^` + u + `@example.test +` + row + `$`).FindStringSubmatch(out)
			if m == nil || m[1] != m[2] {
				t.Errorf("the check of %s has no row matching %s (or its digests differ)", u, row)
			}
		}
	}
	// The CalDAV client: Radicale's principal before, Cyrus's after, the
	// same five events (the meeting with attendees among them).
	const uids = `5 events and tasks: allday-alice@example.test floating-alice@example.test meeting-alice@example.test todo-alice@example.test weekly-alice@example.test$`
	if !regexp.MustCompile(`(?m)^before: alice@example.test → principal /alice%40example.test/, calendar home /alice%40example.test/: ` + uids).MatchString(after) {
		t.Errorf("the CalDAV client did not find alice's events on Radicale before the cut-over")
	}
	if !regexp.MustCompile(`(?m)^after:  alice@example.test → principal /dav/principals/user/alice@example.test/, calendar home /dav/calendars/user/alice@example.test/: ` + uids).MatchString(after) {
		t.Errorf("the CalDAV client did not find alice's events on Cyrus after the cut-over")
	}
	for _, want := range []string{
		"Success! The plan is valid.",
		"import: done",
		"catch-up: done",
		"No changes. The migration is where the plan wants it right now.",
		"Journal OK:",
		"demo complete in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`deliveries through the proxy \(swaks, LMTP and SMTP\): (\d+) accepted`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no delivery through the proxy was accepted")
	}
}

// freePorts returns the first of n consecutive free ports on 127.0.0.1.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 30000 + 10*rand.IntN(270) // above the peer sets, below the ephemeral ports
		var lns []net.Listener
		ok := true
		for p := base; p < base+n; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no 10 consecutive free ports found")
	return 0
}
