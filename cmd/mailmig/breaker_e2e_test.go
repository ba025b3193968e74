package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
)

// silentListener accepts TCP connections on 127.0.0.1 and never sends a
// byte: a hung target. It returns its address; it closes with the test.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// front is a TCP front on 127.0.0.1 for a real server: while hung it
// accepts connections and never answers, else it forwards them to the
// server. The archive records the source's address, so a source that
// comes back must come back at the same one.
type front struct {
	addr string
	hung atomic.Bool
}

func newFront(t *testing.T, upstream string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{addr: ln.Addr().String()}
	f.hung.Store(true)
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			track(c)
			if f.hung.Load() {
				continue
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			track(u)
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return f
}

// closedPort returns an address on 127.0.0.1 where nothing listens: a
// target that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// breakerRun drives `mailmig apply` in-process on plans that differ only
// in the target's addresses and the state directory.
type breakerRun struct {
	t     *testing.T
	s     *peers.Set
	dir   string
	accts []peers.Account
}

func (b *breakerRun) writePlan(stateDir, jmapURL, imapAddr string) string {
	return b.writePlanFrom(stateDir, b.s.Dovecot.IMAP, jmapURL, imapAddr)
}

// writePlanFrom is writePlan with the source's IMAP address too.
func (b *breakerRun) writePlanFrom(stateDir, sourceIMAP, jmapURL, imapAddr string) string {
	b.t.Helper()
	file := filepath.Join(b.dir, stateDir+".hcl")
	text := fmt.Sprintf(`state {
  path = %q
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
  limits {
    connections      = 1
    breaker_failures = 2
  }
  timeouts {
    connect         = "1s"
    response_header = "1s"
  }
}
backend "cyrus" {
  imap {
    address = %q
    tls     = "none"
  }
  jmap {
    url = %q
  }
  limits {
    # One export at a time: the count of exports the dead target gets is
    # then exactly the threshold.
    connections      = 1
    breaker_failures = 2
  }
  timeouts {
    connect         = "1s"
    tls_handshake   = "1s"
    response_header = "1s"
    idle            = "2s"
  }
}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = ["mail"]
}
wave "all" {
  accounts = accounts.staff
}
`, stateDir+"/", sourceIMAP, imapAddr, jmapURL)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		b.t.Fatal(err)
	}
	return file
}

// apply runs `mailmig -f planFile apply -auto-approve` and returns its
// exit code, output and duration.
// TestBreakerE2ESource: a source that accepts connections and never
// greets opens its breaker after two imports; the next apply, with the
// real Dovecot back, probes it through the registry's IMAP probe and
// completes.
func TestBreakerE2ESource(t *testing.T) {
	b := newBreakerRun(t, 3)
	src := newFront(t, b.s.Dovecot.IMAP)
	plan := b.writePlanFrom("state", src.addr, b.s.Cyrus.JMAPURL(), b.s.Cyrus.IMAP)
	code, out, took := b.apply(plan)
	rs := b.records("state", 0)
	imports := 0
	var brk []state.Record
	for _, r := range rs {
		switch {
		case r.Type == state.TypeStart && r.Action == "import":
			imports++
		case r.Type == state.TypeBreakerOpen || r.Type == state.TypeBreakerClosed:
			brk = append(brk, r)
		}
	}
	if code != exitError || took > 60*time.Second || imports != 2 {
		t.Fatalf("hung source: exit %d after %v, %d imports (want %d, < 60s, 2)\n%s", code, took, imports, exitError, out)
	}
	if len(brk) != 1 || brk[0].Type != state.TypeBreakerOpen || brk[0].Backend != "legacy" || !strings.Contains(brk[0].Error, "timeout") {
		t.Fatalf("hung source: breaker records %+v", brk)
	}
	t.Logf("hung source: halted in %v after %d imports: %s", took.Round(time.Millisecond), imports, brk[0].Error)
	seq := lastSeq(rs, 0)

	src.hung.Store(false)
	code, out, _ = b.apply(plan)
	if code != exitOK {
		t.Fatalf("source back: exit %d\n%s", code, out)
	}
	_, brk = exportsAndBreakers(b.records("state", seq))
	if len(brk) != 1 || brk[0].Type != state.TypeBreakerClosed || brk[0].Backend != "legacy" {
		t.Fatalf("source back: breaker records %+v", brk)
	}
	for _, a := range b.accts {
		if n := cyrusInboxCount(t, b.s, a); n != 3 {
			t.Fatalf("%s has %d messages in Cyrus, want 3", a.Email, n)
		}
	}
}

func (b *breakerRun) apply(planFile string) (int, string, time.Duration) {
	var out bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"-f", planFile, "apply", "-auto-approve"}, Streams{In: strings.NewReader(""), Out: &out, Err: &out})
	return code, out.String(), time.Since(start)
}

// records returns the journal records of stateDir after seq.
func (b *breakerRun) records(stateDir string, after uint64) []state.Record {
	b.t.Helper()
	var out []state.Record
	if err := state.ReadRecords(filepath.Join(b.dir, stateDir), func(r *state.Record) bool {
		if r.Seq > after {
			out = append(out, *r)
		}
		return true
	}); err != nil {
		b.t.Fatal(err)
	}
	return out
}

func lastSeq(rs []state.Record, prev uint64) uint64 {
	if len(rs) == 0 {
		return prev
	}
	return rs[len(rs)-1].Seq
}

// exportsAndBreakers counts export starts and returns the breaker records.
func exportsAndBreakers(rs []state.Record) (exports int, breakers []state.Record) {
	for _, r := range rs {
		switch {
		case r.Type == state.TypeStart && r.Action == "export":
			exports++
		case r.Type == state.TypeBreakerOpen || r.Type == state.TypeBreakerClosed:
			breakers = append(breakers, r)
		}
	}
	return exports, breakers
}

func newBreakerRun(t *testing.T, n int) *breakerRun {
	b := &breakerRun{t: t, s: needPeers(t), dir: t.TempDir()}
	var csv strings.Builder
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i := 0; i < n; i++ {
		a := b.s.NewAccount(t)
		b.accts = append(b.accts, a)
		env := fmt.Sprintf("MAILMIG_BREAKER_PW_%d", i)
		t.Setenv(env, a.Password)
		fmt.Fprintf(&csv, "%s,,,env:%s\n", a.Email, env)
		seedDovecot(t, b.s, a, 3)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "accounts.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBreakerE2E: the staging exports meet a target that accepts
// connections and never answers, then one that refuses them. Each time
// the breaker opens after breaker_failures exports, the run ends within a
// bounded time and the journal names the backend and the last error; the
// next apply probes the target once and, once it is the real Cyrus again,
// resumes and completes.
func TestBreakerE2E(t *testing.T) {
	b := newBreakerRun(t, 4)
	// Generous: with 1 s timeouts each failed export takes a few seconds
	// (one retry, the IMAP warm-up); without the breaker and the timeouts
	// it took minutes per account.
	const bound = 60 * time.Second

	check := func(stateDir, what string, code int, out string, took time.Duration, after uint64, wantExports int, wantErr string) uint64 {
		t.Helper()
		rs := b.records(stateDir, after)
		exports, brk := exportsAndBreakers(rs)
		if code != exitError {
			t.Fatalf("%s: exit %d, want %d\n%s", what, code, exitError, out)
		}
		if took > bound {
			t.Fatalf("%s: the wave halted after %v (bound %v)", what, took, bound)
		}
		if exports != wantExports {
			t.Fatalf("%s: %d exports started, want %d\n%s", what, exports, wantExports, out)
		}
		if len(brk) != 1 || brk[0].Type != state.TypeBreakerOpen || brk[0].Backend != "cyrus" || !strings.Contains(brk[0].Error, wantErr) {
			t.Fatalf("%s: breaker records %+v, want one breaker-open of cyrus with %q", what, brk, wantErr)
		}
		if !strings.Contains(out, "backend cyrus is unreachable") {
			t.Fatalf("%s: the summary does not name the backend:\n%s", what, out)
		}
		t.Logf("%s: halted in %v after %d exports: %s", what, took.Round(time.Millisecond), exports, brk[0].Error)
		return lastSeq(rs, after)
	}

	hung := silentListener(t)
	hungPlan := b.writePlan("state", "http://"+hung+"/.well-known/jmap", hung)
	code, out, took := b.apply(hungPlan)
	seq := check("state", "hung target", code, out, took, 0, 2, "timeout")

	refused := closedPort(t)
	refusedPlan := b.writePlan("state", "http://"+refused+"/.well-known/jmap", refused)
	code, out, took = b.apply(refusedPlan)
	// The breaker is open: the probe fails and nothing is dispatched.
	seq = check("state", "probe of the refusing target", code, out, took, seq, 0, "refused")
	if !strings.Contains(out, "Backend unreachable") {
		t.Fatalf("the plan before the second apply does not warn about the open breaker:\n%s", out)
	}

	// state list and state show name the open breaker, since when and
	// its last error.
	for _, args := range [][]string{{"state", "list"}, {"state", "show", b.accts[0].Email}} {
		var sout bytes.Buffer
		if code := run(context.Background(), append([]string{"-f", refusedPlan}, args...), Streams{In: strings.NewReader(""), Out: &sout, Err: &sout}); code != exitOK {
			t.Fatalf("%v: exit %d\n%s", args, code, sout.String())
		}
		if !regexp.MustCompile(`(?m)^  cyrus: open since \S.*; last error: .*refused`).MatchString(sout.String()) {
			t.Errorf("%v does not list the open breaker of cyrus:\n%s", args, sout.String())
		}
	}
	var jout bytes.Buffer
	run(context.Background(), []string{"-f", refusedPlan, "state", "show", "-json", b.accts[0].Email}, Streams{In: strings.NewReader(""), Out: &jout, Err: &jout})
	if !strings.Contains(jout.String(), `"open_breakers": [`) || !strings.Contains(jout.String(), `"backend": "cyrus"`) {
		t.Errorf("state show -json without the open breaker:\n%s", jout.String())
	}

	// A fresh state: refusals open the breaker as timeouts did.
	freshPlan := b.writePlan("state2", "http://"+refused+"/.well-known/jmap", refused)
	code, out, took = b.apply(freshPlan)
	check("state2", "refusing target", code, out, took, 0, 2, "refused")

	// The target is back: the probe closes the breaker and staging
	// completes.
	backPlan := b.writePlan("state", b.s.Cyrus.JMAPURL(), b.s.Cyrus.IMAP)
	// A healthy target gets the timeouts a real plan gives it: the 1 s
	// ones that make the hung target fail fast also failed the real Cyrus
	// once on a loaded CI machine ("timeout awaiting response headers"),
	// reopening the breaker this phase expects closed.
	generous(t, backPlan)
	code, out, _ = b.apply(backPlan)
	if code != exitOK {
		t.Fatalf("target back: exit %d\n%s", code, out)
	}
	rs := b.records("state", seq)
	exports, brk := exportsAndBreakers(rs)
	if len(brk) != 1 || brk[0].Type != state.TypeBreakerClosed || brk[0].Backend != "cyrus" {
		t.Fatalf("target back: breaker records %+v, want one breaker-closed of cyrus", brk)
	}
	if exports != len(b.accts) {
		t.Fatalf("target back: %d exports, want %d", exports, len(b.accts))
	}
	for _, a := range b.accts {
		if n := cyrusInboxCount(t, b.s, a); n != 3 {
			t.Fatalf("%s has %d messages in Cyrus, want 3", a.Email, n)
		}
	}
}

// TestTimeoutsClassified: the real dialers' and transport's failures
// against a hung and a refusing target are what the breaker counts, and
// a hung target fails within the configured timeouts.
func TestTimeoutsClassified(t *testing.T) {
	to := vandelay.Timeouts{Connect: time.Second, TLSHandshake: time.Second, ResponseHeader: time.Second, Idle: time.Second}
	for _, tc := range []struct{ name, addr string }{{"hung", silentListener(t)}, {"refused", closedPort(t)}} {
		start := time.Now()
		_, err := vandelay.OpenTarget(context.Background(), &vandelay.TargetOptions{URL: "http://" + tc.addr + "/.well-known/jmap",
			Auth: vandelay.BasicAuth{User: "u", Password: "p"}, Timeouts: to})
		took := time.Since(start)
		if err == nil || !engine.Unreachable(err) {
			t.Fatalf("%s: OpenTarget: %v (unreachable %v)", tc.name, err, engine.Unreachable(err))
		}
		if took > 30*time.Second {
			t.Fatalf("%s: OpenTarget took %v with 1 s timeouts", tc.name, took)
		}
		t.Logf("%s: jmap failed in %v: %v", tc.name, took.Round(time.Millisecond), err)
	}
}

// seedDovecot appends n messages to the account's INBOX at Dovecot.
func seedDovecot(t *testing.T, s *peers.Set, a peers.Account, n int) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		msg := testMessage(a.Email, fmt.Sprintf("breaker-%d-%s", i, a.Email))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
}

// cyrusInboxCount is the number of messages in the account's Cyrus INBOX.
func cyrusInboxCount(t *testing.T, s *peers.Set, a peers.Account) uint32 {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return d.NumMessages
}

// generous gives every backend of the plan file at path 30 s timeouts in
// place of the test's 1–2 s ones.
func generous(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := regexp.MustCompile(`(?m)^(\s*(?:connect|tls_handshake|response_header|idle)\s*=\s*)"\d+s"`).ReplaceAll(b, []byte(`${1}"30s"`))
	if err := os.WriteFile(path, p, 0o600); err != nil {
		t.Fatal(err)
	}
}
