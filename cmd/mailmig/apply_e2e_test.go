package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/routes"
)

// e2e is a migration of fresh accounts from the real Dovecot to the real
// Cyrus, with the proxy (LMTP) running in front and the plan in dir.
type e2e struct {
	t        *testing.T
	s        *peers.Set
	accts    []peers.Account
	dir      string
	planFile string
	lmtp     string
	pop3     string // the proxy's POP3 listener (e2eOptions.Clients)
	imap     string // the proxy's IMAP listener (127.0.0.2, or 127.0.0.3 with e2eOptions.Clients)
	mu       sync.Mutex
	expected map[string]map[string]bool // account → Message-IDs delivered or seeded
	seq      int
	failed   sync.Once
	// deliverWithin bounds each delivery's retries of temporary failures
	// (451 while the account is frozen). Default: 30 s. Tests whose freeze
	// outlasts a database outage give it longer, as a real MTA (which
	// retries for days) would.
	deliverWithin time.Duration
}

// e2eOptions vary newE2E.
type e2eOptions struct {
	// Clients gives both backends pop3 endpoints and the proxy IMAP and
	// POP3 listeners, for tests of mail clients across the cut-over.
	Clients bool
	// Seed is the number of messages put into each account's INBOX at
	// Dovecot before the test. Default: 25.
	Seed int
	// PollInterval is the proxy's route-table poll. Default: 20ms.
	PollInterval time.Duration
	// Data moves Sieve scripts and contacts too: both backends get
	// managesieve and carddav endpoints (Dovecot and Radicale, Cyrus's
	// own), the accounts data = ["mail", "sieve", "contacts"].
	Data bool
	// RoutesPostgres keeps the route table (and the POP3 UIDL maps) in a
	// fresh PostgreSQL database of the peers instead of SQLite.
	RoutesPostgres bool
	// EditPlan, when set, rewrites the plan's text before it is written
	// (e.g. state and routes in PostgreSQL).
	EditPlan func(string) string
}

func newE2E(t *testing.T, n int) *e2e { return newE2EWith(t, n, e2eOptions{}) }

func newE2EWith(t *testing.T, n int, o e2eOptions) *e2e {
	x := &e2e{t: t, s: needPeers(t), dir: t.TempDir(), expected: map[string]map[string]bool{}}
	var csv strings.Builder
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i := 0; i < n; i++ {
		a := x.s.NewAccount(t)
		x.accts = append(x.accts, a)
		x.expected[a.Email] = map[string]bool{}
		env := fmt.Sprintf("MAILMIG_E2E_PW_%d", i)
		t.Setenv(env, a.Password)
		fmt.Fprintf(&csv, "%s,,,env:%s\n", a.Email, env)
	}
	if err := os.WriteFile(filepath.Join(x.dir, "accounts.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	x.planFile = filepath.Join(x.dir, "migration.hcl")
	s := x.s
	// The proxy's IMAP listener (rollback tests read the copied-back mail
	// through it) takes another loopback address than the backends.
	legacyPOP3, cyrusPOP3, listeners := "", "", "    imap = \"127.0.0.2:0\"\n"
	if o.Clients {
		legacyPOP3 = fmt.Sprintf("  pop3 {\n    address = %q\n    tls     = \"none\"\n  }\n", s.Dovecot.POP3)
		cyrusPOP3 = fmt.Sprintf("  pop3 {\n    address = %q\n    tls     = \"none\"\n  }\n", s.Cyrus.POP3)
		// Port 0 on one address twice is a duplicate to the plan: the
		// clients' listeners take other loopback addresses.
		listeners = "    imap = \"127.0.0.3:0\"\n    pop3 = \"127.0.0.4:0\"\n"
	}
	data := `["mail"]`
	if o.Data {
		legacyPOP3 += fmt.Sprintf("  managesieve {\n    address = %q\n    tls     = \"none\"\n  }\n  carddav {\n    url = %q\n  }\n", s.Dovecot.ManageSieve, s.Radicale.URL)
		cyrusPOP3 += fmt.Sprintf("  managesieve {\n    address = %q\n    tls     = \"none\"\n  }\n  carddav {\n    url = %q\n  }\n", s.Cyrus.ManageSieve, "http://"+s.Cyrus.HTTP+"/")
		data = `["mail", "sieve", "contacts"]`
	}
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
%s}
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
%s}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = %s
}
wave "all" {
  accounts          = accounts.staff
  catchup_threshold = 20
}
proxy {
  listen {
    lmtp = "127.0.0.1:0"
%s  }
}
`, s.Dovecot.IMAP, s.Dovecot.LMTP, legacyPOP3, s.Cyrus.IMAP, s.Cyrus.LMTP, s.Cyrus.JMAPURL(), cyrusPOP3, data, listeners)
	if o.RoutesPostgres {
		planText = pgRoutesBlock(t, s) + planText
	}
	if o.EditPlan != nil {
		planText = o.EditPlan(planText)
	}
	if err := os.WriteFile(x.planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	x.cli(exitOK, "routes", "default", "legacy")
	x.cli(exitOK, "routes", "domain", "add", "example.test")

	m, diags := loadMigration(&globals{PlanPath: x.planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	poll := o.PollInterval
	if poll == 0 {
		poll = 20 * time.Millisecond
	}
	p, err := startProxy(context.Background(), m, &proxyRun{PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(c)
	})
	for _, a := range p.Addrs {
		if f := strings.Fields(a); len(f) == 2 {
			switch f[0] {
			case "lmtp":
				x.lmtp = f[1]
			case "pop3":
				x.pop3 = f[1]
			case "imap":
				x.imap = f[1]
			}
		}
	}
	if x.lmtp == "" {
		t.Fatalf("no lmtp listener in %v", p.Addrs)
	}
	// Seed 25 messages per account straight into Dovecot: the staging pass
	// copies more than catchup_threshold, so a catch-up comes before the
	// cut-over.
	for _, a := range x.accts {
		c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(a.Email, a.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		seed := o.Seed
		if seed == 0 {
			seed = 25
		}
		for i := 0; i < seed; i++ {
			msg := testMessage(a.Email, x.newID(a, "seed"))
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
	return x
}

func (x *e2e) cli(want int, args ...string) string {
	x.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"-f", x.planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != want {
		x.t.Fatalf("mailmig %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

func (x *e2e) newID(a peers.Account, phase string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	id := fmt.Sprintf("e2e-%s-%d@example.test", phase, x.seq)
	x.expected[a.Email][id] = true
	return id
}

// deliverAll sends one message to every account through the proxy.
func (x *e2e) deliverAll(phase string) bool {
	for _, a := range x.accts {
		within := x.deliverWithin
		if within <= 0 {
			within = 30 * time.Second
		}
		if err := lmtpDeliver(x.lmtp, a.Email, testMessage(a.Email, x.newID(a, phase)), within); err != nil {
			x.failed.Do(func() { x.t.Errorf("deliver %s during %s: %v", a.Email, phase, err) })
			return false
		}
	}
	return true
}

// trickle delivers a steady stream of mail until the returned stop is
// called (stop waits for the last delivery). The first delivery starts at
// once, so even a command faster than the interval meets one.
func (x *e2e) trickle(phase string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			if !x.deliverAll(fmt.Sprintf("%s%d", phase, i)) {
				return
			}
			select {
			case <-done:
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// during runs a command while mail trickles in.
func (x *e2e) during(phase string, want int, args ...string) string {
	stop := x.trickle(phase)
	defer stop()
	return x.cli(want, args...)
}

// check asserts the end state: every account done and routed to Cyrus,
// every message on Cyrus exactly once, none left behind on Dovecot, the
// journal intact.
func (x *e2e) check(phases ...string) {
	t := x.t
	t.Helper()
	out := x.cli(exitOK, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "No changes") {
		t.Fatalf("not converged:\n%s", out)
	}
	for _, a := range x.accts {
		show := x.cli(exitOK, "state", "show", a.Email)
		if !regexpLine(show, `^phase: +done$`) || !regexpLine(show, `^route: +cyrus$`) {
			t.Fatalf("%s:\n%s", a.Email, show)
		}
		onCyrus := messageIDs(t, x.s.Cyrus.IMAP, a)
		// state show reads the archive too: everything in it is on the
		// target and the next export has nothing to do (mail delivered
		// after the cut-over went to Cyrus directly, not to the archive).
		var inArchive, exported int
		for _, l := range strings.Split(show, "\n") {
			fmt.Sscanf(l, "archive: %d messages", &inArchive)
			fmt.Sscanf(l, "archive export: %d on the target", &exported)
		}
		if inArchive == 0 || inArchive != exported || inArchive > len(onCyrus) ||
			!regexpLine(show, `^archive export: +\d+ on the target, next export: 0 new, 0 changed, 0 deleted `) {
			t.Errorf("%s: state show should show the archive's messages, all exported (%d on Cyrus):\n%s", a.Email, len(onCyrus), show)
		}
		onDovecot := messageIDs(t, x.s.Dovecot.IMAP, a)
		x.mu.Lock()
		want := x.expected[a.Email]
		x.mu.Unlock()
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
	res, err := state.Verify(filepath.Join(x.dir, "state"))
	if err != nil || !res.OK {
		t.Fatalf("journal verify: %+v %v", res, err)
	}
	perPhase := map[string]int{}
	for _, ids := range x.expected {
		for id := range ids {
			phase := strings.TrimRight(strings.SplitN(strings.TrimPrefix(id, "e2e-"), "-", 2)[0], "0123456789")
			perPhase[phase]++
		}
	}
	t.Logf("messages per phase: %v; temporary failures (frozen) retried so far: %d", perPhase, tempFailures.Load())
	for _, p := range phases {
		if perPhase[p] == 0 {
			t.Errorf("no message arrived during %s", p)
		}
	}
}

// TestApplyEndToEnd migrates two accounts from the real Dovecot to the
// real Cyrus with "mailmig apply" (vandelay import, JMAP export, verify,
// the SQLite route table) while the proxy runs in front and mail keeps
// arriving over LMTP through it: before staging, during staging, during
// catch-up and during the cut-over itself (frozen: 4xx, the sender
// retries). Afterwards every delivered or seeded message is on Cyrus
// exactly once, nothing is left on Dovecot unmigrated, routes point at
// Cyrus unfrozen and the journal verifies.
func TestApplyEndToEnd(t *testing.T) {
	x := newE2E(t, 2)
	x.deliverAll("before")
	out := x.during("staging", exitOK, "apply", "-auto-approve")
	if !strings.Contains(out, "import: done") || !strings.Contains(out, "export: done") {
		t.Fatalf("staging:\n%s", out)
	}
	out = x.cli(exitChanges, "plan", "-detailed-exitcode")
	if !strings.Contains(out, "~ catch-up") {
		t.Fatalf("no catch-up planned:\n%s", out)
	}
	// The refresh probe (LIST-STATUS against the archive's cursors) counted
	// the mail delivered during staging.
	if !regexp.MustCompile(`~ catch-up \S+ \(\d+ new, 1 mailbox changed since `).MatchString(out) {
		t.Errorf("catch-up without the probe's counts:\n%s", out)
	}
	// Mail keeps arriving: on a loaded machine a catch-up may copy more
	// than the threshold and the plan asks for another one before the
	// cut-over (as an operator would see it): catch up until the cut-over
	// is planned, at most 5 times.
	for i := 0; ; i++ {
		out = x.during("catchup", exitOK, "apply", "-auto-approve")
		if !strings.Contains(out, "catch-up: done") {
			t.Fatalf("catch-up:\n%s", out)
		}
		out = x.cli(exitChanges, "plan", "-detailed-exitcode")
		if strings.Count(out, "> cutover") == len(x.accts) {
			break
		}
		if i == 4 || !strings.Contains(out, "~ catch-up") {
			t.Fatalf("no cut-over planned:\n%s", out)
		}
	}
	before := tempFailures.Load()
	out = x.during("cutover", exitOK, "apply", "-auto-approve", "-refresh=false")
	if strings.Count(out, "cutover: done") != len(x.accts) {
		t.Fatalf("cut-over:\n%s", out)
	}
	if tempFailures.Load() == before {
		t.Error("no delivery met the frozen account (4xx) during the cut-over")
	}
	x.deliverAll("after")
	x.check("seed", "before", "staging", "catchup", "cutover", "after")
}

// TestApplyKilledMidCutover kills "mailmig apply" (a child process) with
// SIGKILL while it cuts an account over against the real servers — as
// soon as the route is frozen, or a little later in the final catch-up or
// verify — with mail arriving all the while; then apply runs again. It
// must converge: nobody frozen, every message on Cyrus exactly once,
// nothing left behind, and the journal intact.
func TestApplyKilledMidCutover(t *testing.T) {
	// 0: during the settle delay right after the freeze; 1.7 s: in the
	// final catch-up or verify.
	for _, delay := range []time.Duration{0, 1700 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			x := newE2E(t, 1)
			x.cli(exitOK, "apply", "-auto-approve")
			x.cli(exitOK, "apply", "-auto-approve") // catch-up
			a := x.accts[0]
			stop := x.trickle("crash")
			cmd := exec.Command(os.Args[0], "-f", x.planFile, "apply", "-auto-approve", "-refresh=false")
			cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitFrozen(t, x, a.Email, 60*time.Second) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the cut-over never froze the account:\n%s", out.String())
			}
			<-time.After(delay) // let the cut-over move on to a later step
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Logf("killed %v after the freeze; child output:\n%s", delay, out.String())
			if strings.Contains(out.String(), "cutover: done") {
				t.Log("the cut-over finished before the kill")
			}
			// Rerun until nothing is left (the dead process's lock is taken
			// over).
			for i := 0; i < 4; i++ {
				out := x.cli(exitOK, "apply", "-auto-approve")
				t.Logf("rerun %d:\n%s", i, out)
				if strings.Contains(out, "No changes") {
					break
				}
			}
			stop()
			x.deliverAll("after")
			x.check("seed", "after")
		})
	}
}

// waitFrozen polls the route table until the account's route is frozen.
func waitFrozen(t *testing.T, x *e2e, account string, within time.Duration) bool {
	t.Helper()
	st, err := routes.Open(context.Background(), filepath.Join(x.dir, "state", "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if r, err := st.Get(context.Background(), account); err == nil && r.State == routes.Frozen {
			return true
		}
		<-time.After(10 * time.Millisecond) // polling another process's progress
	}
	return false
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
