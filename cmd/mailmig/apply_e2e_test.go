package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
)

// TestApplyEndToEnd migrates two accounts from the real Dovecot to the
// real Cyrus with "mailmig apply" (vandelay import, JMAP export, verify,
// the SQLite route table) while the proxy runs in front and mail keeps
// arriving over LMTP through it: before staging, during staging, during
// catch-up and during the cut-over itself (frozen: 4xx, the sender
// retries). Afterwards every delivered or seeded message is on Cyrus
// exactly once, nothing is left on Dovecot unmigrated, routes point at
// Cyrus unfrozen and the journal verifies.
func TestApplyEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real servers")
	}
	if os.Getenv(peers.EnvRoot) == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no peer set: export MAILMIG_PEERS_ROOT (just test does)")
		}
		t.Skip("needs a running peer set: `just peers-up` and export MAILMIG_PEERS_ROOT/MAILMIG_PEERS_OFFSET")
	}
	s := peers.Get(t)
	accts := []peers.Account{s.NewAccount(t), s.NewAccount(t)}
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i, a := range accts {
		env := fmt.Sprintf("MAILMIG_E2E_PW_%d", i)
		t.Setenv(env, a.Password)
		fmt.Fprintf(&csv, "%s,,,env:%s\n", a.Email, env)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
  lmtp {
    address = %q
    tls     = "none"
  }
}
backend "cyrus" {
  imap {
    address = %q
    tls     = "none"
  }
  lmtp {
    address = %q
    tls     = "none"
  }
  jmap {
    url = %q
  }
}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = ["mail"]
}
wave "all" {
  accounts          = accounts.staff
  catchup_threshold = 20
}
proxy {
  listen {
    lmtp = "127.0.0.1:0"
  }
}
`, s.Dovecot.IMAP, s.Dovecot.LMTP, s.Cyrus.IMAP, s.Cyrus.LMTP, s.Cyrus.JMAPURL())
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"-f", planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != want {
			t.Fatalf("mailmig %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	cli(exitOK, "routes", "default", "legacy")
	cli(exitOK, "routes", "domain", "add", "example.test")

	m, diags := loadMigration(&globals{PlanPath: planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	p, err := startProxy(ctx, m, &proxyRun{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(c)
	})
	lmtpAddr := ""
	for _, a := range p.Addrs {
		if f := strings.Fields(a); len(f) == 2 && f[0] == "lmtp" {
			lmtpAddr = f[1]
		}
	}
	if lmtpAddr == "" {
		t.Fatalf("no lmtp listener in %v", p.Addrs)
	}

	var mu sync.Mutex
	expected := map[string]map[string]bool{} // account → Message-IDs
	for _, a := range accts {
		expected[a.Email] = map[string]bool{}
	}
	seq := 0
	newID := func(a peers.Account, phase string) string {
		mu.Lock()
		defer mu.Unlock()
		seq++
		id := fmt.Sprintf("e2e-%s-%d@example.test", phase, seq)
		expected[a.Email][id] = true
		return id
	}
	// Seed 25 messages per account straight into Dovecot: the staging pass
	// copies more than catchup_threshold, so a catch-up comes before the
	// cut-over.
	for _, a := range accts {
		c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(a.Email, a.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 25; i++ {
			msg := testMessage(a.Email, newID(a, "seed"))
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			cmd.Write(msg)
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		c.Logout().Wait()
		c.Close()
	}
	var failed sync.Once
	deliverAll := func(phase string) bool {
		for _, a := range accts {
			if err := lmtpDeliver(lmtpAddr, a.Email, testMessage(a.Email, newID(a, phase)), 30*time.Second); err != nil {
				failed.Do(func() { t.Errorf("deliver %s during %s: %v", a.Email, phase, err) })
				return false
			}
		}
		return true
	}
	// during runs apply while a goroutine keeps delivering through the
	// proxy (retrying temporary failures) until apply returns.
	during := func(phase string, args ...string) string {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(150 * time.Millisecond): // a steady trickle of mail
				}
				if !deliverAll(fmt.Sprintf("%s%d", phase, i)) {
					return
				}
			}
		}()
		out := cli(exitOK, args...)
		close(stop)
		wg.Wait()
		return out
	}

	deliverAll("before")
	out := during("staging", "apply", "-auto-approve")
	if !strings.Contains(out, "import: done") || !strings.Contains(out, "export: done") {
		t.Fatalf("staging:\n%s", out)
	}
	out = cli(exitChanges, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "~ catch-up") {
		t.Fatalf("no catch-up planned:\n%s", out)
	}
	out = during("catchup", "apply", "-auto-approve")
	if !strings.Contains(out, "catch-up: done") {
		t.Fatalf("catch-up:\n%s", out)
	}
	out = cli(exitChanges, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "> cutover") {
		t.Fatalf("no cut-over planned:\n%s", out)
	}
	out = during("cutover", "apply", "-auto-approve", "-refresh=false")
	if strings.Count(out, "cutover: done") != len(accts) {
		t.Fatalf("cut-over:\n%s", out)
	}
	deliverAll("after")

	out = cli(exitOK, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes") {
		t.Fatalf("not converged:\n%s", out)
	}
	for _, a := range accts {
		show := cli(exitOK, "state", "show", a.Email)
		if !strings.Contains(show, "phase:") || !regexpLine(show, `^phase: +done$`) || !regexpLine(show, `^route: +cyrus$`) {
			t.Fatalf("%s:\n%s", a.Email, show)
		}
		onCyrus := messageIDs(t, s.Cyrus.IMAP, a)
		onDovecot := messageIDs(t, s.Dovecot.IMAP, a)
		mu.Lock()
		want := expected[a.Email]
		mu.Unlock()
		for id := range want {
			if onCyrus[id] != 1 {
				t.Errorf("%s: %s is on Cyrus %d times, want once", a.Email, id, onCyrus[id])
			}
		}
		for id, n := range onCyrus {
			if !want[id] || n != 1 {
				t.Errorf("%s: unexpected %s on Cyrus (%d times)", a.Email, id, n)
			}
		}
		for id := range onDovecot {
			if onCyrus[id] != 1 {
				t.Errorf("%s: %s was left behind on Dovecot", a.Email, id)
			}
		}
		t.Logf("%s: %d messages on Cyrus, %d on Dovecot", a.Email, len(onCyrus), len(onDovecot))
	}
	res, err := state.Verify(filepath.Join(dir, "state"))
	if err != nil || !res.OK {
		t.Fatalf("journal verify: %+v %v", res, err)
	}
	perPhase := map[string]int{}
	for _, ids := range expected {
		for id := range ids {
			phase := strings.TrimRight(strings.SplitN(strings.TrimPrefix(id, "e2e-"), "-", 2)[0], "0123456789")
			perPhase[phase]++
		}
	}
	t.Logf("messages per phase: %v; temporary failures (frozen) retried: %d", perPhase, tempFailures.Load())
	for _, p := range []string{"seed", "before", "staging", "catchup", "cutover", "after"} {
		if perPhase[p] == 0 {
			t.Errorf("no message arrived during %s", p)
		}
	}
	if tempFailures.Load() == 0 {
		t.Error("no delivery met the frozen account (4xx) during the cut-over")
	}
}

// tempFailures counts 4xx replies lmtpDeliver retried.
var tempFailures atomic.Int64

func regexpLine(text, re string) bool {
	return regexp.MustCompile("(?m)" + re).MatchString(text)
}

func testMessage(to, id string) []byte {
	return []byte(fmt.Sprintf("From: sender@example.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nbody of %s\r\n", to, id, id, id))
}

// lmtpDeliver sends one message over LMTP, retrying temporary (4xx)
// failures until the deadline.
func lmtpDeliver(addr, rcpt string, msg []byte, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		code, err := lmtpOnce(addr, rcpt, msg)
		if err == nil && code/100 == 2 {
			return nil
		}
		if err == nil && code/100 == 5 {
			return fmt.Errorf("permanent failure %d", code)
		}
		if err == nil && code/100 == 4 {
			tempFailures.Add(1)
		}
		last = fmt.Errorf("reply %d: %v", code, err)
		<-time.After(100 * time.Millisecond) // a sender's retry interval
	}
	return fmt.Errorf("not delivered within %v: %v", within, last)
}

func lmtpOnce(addr, rcpt string, msg []byte) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() (int, error) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return 0, err
			}
			if len(line) < 4 {
				return 0, fmt.Errorf("short reply %q", line)
			}
			var code int
			fmt.Sscanf(line[:3], "%d", &code)
			if line[3] != '-' {
				return code, nil
			}
		}
	}
	step := func(cmd string) (int, error) {
		if cmd != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
				return 0, err
			}
		}
		return reply()
	}
	for _, cmd := range []string{"", "LHLO e2e.example.test", "MAIL FROM:<sender@example.test>", "RCPT TO:<" + rcpt + ">", "DATA"} {
		code, err := step(cmd)
		if err != nil {
			return 0, err
		}
		if code/100 != 2 && code != 354 {
			return code, nil
		}
	}
	var b bytes.Buffer
	for _, l := range strings.SplitAfter(string(msg), "\r\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l)
	}
	b.WriteString(".\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		return 0, err
	}
	code, err := reply()
	step("QUIT")
	return code, err
}

// messageIDs counts Message-IDs in the account's INBOX on an IMAP server.
func messageIDs(t *testing.T, addr string, a peers.Account) map[string]int {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	if sel.NumMessages == 0 {
		return out
	}
	var set imap.SeqSet
	set.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(set, &imap.FetchOptions{Envelope: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		deleted := false
		for _, f := range m.Flags {
			deleted = deleted || f == imap.FlagDeleted
		}
		if !deleted {
			out[m.Envelope.MessageID]++
		}
	}
	c.Logout().Wait()
	return out
}
