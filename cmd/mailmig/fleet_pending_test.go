package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/tcprelay"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// pendingFleet is a real migration (Dovecot → Cyrus, newE2E) whose route
// table is in PostgreSQL, with one `mailmig proxy` process, p1, whose
// connection to the database goes through a relay the test can pause: p1
// alone loses the database, the apply and the CLI keep it.
type pendingFleet struct {
	x     *e2e
	st    *pgroutes.Store
	relay *tcprelay.Relay
	p1    *proxyProcess
	f     *fleet // waitLive and proxies, on the apply's plan
}

// pendingSeed is how many messages each test account starts with on Dovecot.
const pendingSeed = 5

func newPendingFleet(t *testing.T) *pendingFleet {
	// Fewer messages than the catch-up threshold: the staging run is
	// followed directly by the cut-over.
	x := newE2EWith(t, 1, e2eOptions{Seed: pendingSeed})
	dsn := x.s.Postgres.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_PGPASS", pw) // the proxy process inherits it
	relay, err := tcprelay.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	base, err := os.ReadFile(x.planFile)
	if err != nil {
		t.Fatal(err)
	}
	// Frozen logins are answered after half a second, not held for the
	// default 30 s; p1 listens for SMTP too.
	plan := strings.Replace(string(base), "proxy {\n", "proxy {\n  hold_logins = \"500ms\"\n", 1)
	withRoutes := func(host string) string {
		v := *u
		v.Host = host
		return plan + fmt.Sprintf(`
routes {
  postgres        = %q
  password_ref    = "env:MAILMIG_TEST_PGPASS"
  lease           = "2s"
  barrier_timeout = "3s"
}
`, v.String())
	}
	if err := os.WriteFile(x.planFile, []byte(withRoutes(u.Host)), 0o600); err != nil {
		t.Fatal(err)
	}
	proxyPlan := filepath.Join(x.dir, "proxy.hcl")
	pp := strings.Replace(withRoutes(relay.Addr()), "    lmtp = \"127.0.0.1:0\"\n", "    lmtp = \"127.0.0.1:0\"\n    smtp = \"127.0.0.5:0\"\n", 1)
	if err := os.WriteFile(proxyPlan, []byte(pp), 0o600); err != nil {
		t.Fatal(err)
	}
	x.cli(exitOK, "routes", "default", "legacy")
	x.cli(exitOK, "routes", "domain", "add", "example.test")
	st, err := pgroutes.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pf := &pendingFleet{x: x, st: st, relay: relay, f: &fleet{t: t, planFile: x.planFile}}
	pf.p1 = startProxyProcess(t, x.dir, proxyPlan, 3, "-id", "p1")
	pf.f.waitLive("p1")
	return pf
}

// imapLogin logs the account in through p1 and returns how many messages
// its INBOX holds.
func (pf *pendingFleet) imapLogin() (uint32, error) {
	a := pf.x.accts[0]
	c, err := imapclient.DialInsecure(pf.p1.addr["imap"], nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		return 0, err
	}
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		return 0, err
	}
	return d.NumMessages, nil
}

// smtpRcpt returns p1's SMTP reply to RCPT TO the account.
func (pf *pendingFleet) smtpRcpt() (int, error) {
	conn, err := net.DialTimeout("tcp", pf.p1.addr["smtp"], 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(conn)
	var code int
	for _, cmd := range []string{"", "EHLO test.example", "MAIL FROM:<sender@example.test>", "RCPT TO:<" + pf.x.accts[0].Email + ">"} {
		if cmd != "" {
			fmt.Fprintf(conn, "%s\r\n", cmd)
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return 0, err
			}
			if len(line) < 4 {
				return 0, fmt.Errorf("short reply %q", line)
			}
			fmt.Sscanf(line[:3], "%d", &code)
			if line[3] != '-' {
				break
			}
		}
		if code/100 != 2 {
			return code, nil
		}
	}
	return code, nil
}

// refused asserts that p1 refuses the account with temporary errors on
// IMAP, LMTP and SMTP, and never serves it from its source.
func (pf *pendingFleet) refused(when string) {
	t := pf.x.t
	t.Helper()
	if n, err := pf.imapLogin(); err == nil || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("%s: IMAP login through p1: %d messages, %v; want NO [UNAVAILABLE]", when, n, err)
	}
	// A message no phase expects: delivered to the source, the final
	// check would find it left behind on Dovecot.
	if code, err := lmtpOnce(pf.p1.addr["lmtp"], pf.x.accts[0].Email, testMessage(pf.x.accts[0].Email, "e2e-refused-"+when)); err != nil || code/100 != 4 {
		t.Fatalf("%s: LMTP through p1: %d, %v; want a temporary failure", when, code, err)
	}
	if code, err := pf.smtpRcpt(); err != nil || code != 451 {
		t.Fatalf("%s: SMTP RCPT through p1: %d, %v; want 451", when, code, err)
	}
}

// applyAll runs apply until the plan has nothing left, at most n times,
// and returns every run's output; it stops at the first failed run.
func (pf *pendingFleet) applyUntil(n int, stop func(out string, code int) bool) string {
	var all strings.Builder
	for range n {
		var out bytes.Buffer
		code := run(context.Background(), []string{"-f", pf.x.planFile, "apply", "-auto-approve"}, Streams{In: strings.NewReader(""), Out: &out, Err: &out})
		all.WriteString(out.String())
		if stop(out.String(), code) {
			break
		}
	}
	return all.String()
}

func (pf *pendingFleet) route() routes.Route {
	r, err := pf.st.Get(context.Background(), pf.x.accts[0].Email)
	if err != nil && !strings.Contains(err.Error(), "no route") {
		pf.x.t.Fatal(err)
	}
	return r
}

// waitDegraded waits until p1 refuses the account (its lease ran out
// without the database).
func (pf *pendingFleet) waitDegraded() {
	t := pf.x.t
	t.Helper()
	for range 100 {
		if _, err := pf.imapLogin(); err != nil && strings.Contains(err.Error(), "UNAVAILABLE") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("p1 never refused the pending account after losing the database\n%s", pf.p1.stderr)
}

// afterReconnect resumes the relay and checks that p1 catches up and
// routes the account to Cyrus: a delivery through it lands there, and
// nothing is left behind on Dovecot.
func (pf *pendingFleet) afterReconnect() {
	x := pf.x
	pf.relay.Resume()
	pf.f.waitLive("p1")
	a := x.accts[0]
	if err := lmtpDeliver(pf.p1.addr["lmtp"], a.Email, testMessage(a.Email, x.newID(a, "after")), 30*time.Second); err != nil {
		x.t.Fatal(err)
	}
	x.check("seed", "after")
}

// TestFleetPendingCutOff: the account is marked pending by its first apply
// while p1 follows the table; then p1 loses the database. After its lease
// p1 refuses the account (IMAP NO [UNAVAILABLE], LMTP and SMTP 451) — it
// may have been left out of a barrier — and the cut-over goes ahead
// without it: its barrier leaves p1 out because p1 had seen the mark. All
// along p1 never routes the account to its source; back in contact it
// routes it to the target, and every message is on Cyrus exactly once.
func TestFleetPendingCutOff(t *testing.T) {
	pf := newPendingFleet(t)
	x := pf.x
	a := x.accts[0]
	if n, err := pf.imapLogin(); err != nil || n != pendingSeed {
		t.Fatalf("login through p1 before the migration: %d messages, %v", n, err)
	}
	x.cli(exitOK, "apply", "-auto-approve") // import and export: marks the account
	ms, err := pf.st.PendingMarks(context.Background())
	if err != nil || len(ms) != 1 || ms[0].Account != strings.ToLower(a.Email) || ms[0].Target != "cyrus" {
		t.Fatalf("pending marks after staging: %+v, %v", ms, err)
	}
	pf.f.waitLive("p1") // p1 has applied the mark
	if v := pf.f.proxies(); v.Pending != 1 || v.PendingChange != ms[0].Seq {
		t.Fatalf("routes proxies -json: %+v, want 1 pending at change %d", v, ms[0].Seq)
	}
	if out := x.cli(exitOK, "routes", "proxies"); !strings.Contains(out, "1 account(s) pending a cut-over") {
		t.Fatalf("routes proxies:\n%s", out)
	}
	// In contact, pending changes nothing for p1: the account is served
	// from its source.
	if n, err := pf.imapLogin(); err != nil || n != pendingSeed {
		t.Fatalf("login through p1 while pending: %d messages, %v", n, err)
	}

	pf.relay.Pause()
	pf.waitDegraded()
	pf.refused("before the cut-over")
	out := pf.applyUntil(4, func(out string, code int) bool {
		return code != exitOK || pf.route().Backend == "cyrus"
	})
	if r := pf.route(); r.Backend != "cyrus" || r.State != routes.Active {
		t.Fatalf("the cut-over did not go ahead without p1: route %+v\n%s", r, out)
	}
	for _, p := range pf.f.proxies().Proxies {
		if p.ID == "p1" && p.Live {
			t.Fatalf("p1 shown live while cut off: %+v", p)
		}
	}
	if ms, _ := pf.st.PendingMarks(context.Background()); len(ms) != 0 {
		t.Errorf("the mark outlived the cut-over: %+v", ms)
	}
	// The cut-over finished on the target; p1 still knows nothing of it
	// and keeps refusing rather than serving the source.
	pf.refused("after the cut-over")
	pf.afterReconnect()
}

// TestFleetPendingAfterCut: p1 loses the database before the account is
// marked. It cannot know the account is pending and keeps serving it from
// the source, so the cut-over must not go past its barrier: it rolls back
// on barrier_timeout, naming p1 and how to forget it. Forgotten (as an
// operator would a proxy that is gone for good), the cut-over goes ahead;
// p1, back in contact, registers again and follows.
func TestFleetPendingAfterCut(t *testing.T) {
	pf := newPendingFleet(t)
	x := pf.x
	a := x.accts[0]
	pf.relay.Pause()
	// Wait until the fleet sees p1 out of contact.
	for i := 0; ; i++ {
		live := true
		for _, p := range pf.f.proxies().Proxies {
			if p.ID == "p1" {
				live = p.Live
			}
		}
		if !live {
			break
		}
		if i == 100 {
			t.Fatal("p1 still live 10 s after it lost the database")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// What makes the barrier wait: p1 still serves the account from its
	// source (it has never heard of a cut-over).
	if n, err := pf.imapLogin(); err != nil || n != pendingSeed {
		t.Fatalf("login through p1 cut off before the mark: %d messages, %v", n, err)
	}
	out := pf.applyUntil(4, func(out string, code int) bool { return code != exitOK })
	if !strings.Contains(out, "did not acknowledge the freeze") || !strings.Contains(out, "p1 (out of contact since") ||
		!strings.Contains(out, "mailmig routes proxies -forget p1") {
		t.Fatalf("the cut-over did not stop at the barrier naming p1:\n%s", out)
	}
	if r := pf.route(); r.Backend != "legacy" || r.State != routes.Active {
		t.Fatalf("route after the barrier timed out: %+v", r)
	}
	// A live proxy cannot be forgotten; p1 can.
	var o, e bytes.Buffer
	if code := run(context.Background(), []string{"-f", x.planFile, "routes", "proxies", "-forget", "nobody"}, Streams{In: strings.NewReader(""), Out: &o, Err: &e}); code == exitOK {
		t.Fatalf("forgetting an unknown proxy: exit 0\n%s", o.String())
	}
	if out := x.cli(exitOK, "routes", "proxies", "-forget", "p1"); !strings.Contains(out, "Forgot proxy p1") {
		t.Fatalf("routes proxies -forget p1:\n%s", out)
	}
	if out := x.cli(exitOK, "journal"); !strings.Contains(out, "proxies -forget by hand (proxy p1") {
		t.Fatalf("the forget is not journaled:\n%s", out)
	}
	x.cli(exitOK, "state", "release", a.Email)
	out = pf.applyUntil(3, func(out string, code int) bool {
		return code != exitOK || pf.route().Backend == "cyrus"
	})
	if r := pf.route(); r.Backend != "cyrus" || r.State != routes.Active {
		t.Fatalf("the cut-over after forgetting p1: route %+v\n%s", r, out)
	}
	pf.afterReconnect()
}
