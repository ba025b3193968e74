package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// fleetMig is a migration of fresh accounts from the real Dovecot to the
// real Cyrus whose journal, lock and route table live in one PostgreSQL
// database, for tests that put `mailmig proxy` processes (IMAP and LMTP)
// in front and cut over with `mailmig apply`.
type fleetMig struct {
	t        *testing.T
	s        *peers.Set
	accts    []peers.Account
	dir      string
	planFile string
	dsn      string // with the password, for the test's own reads
	routes   *pgroutes.Store

	// apply runs one `mailmig apply -auto-approve` with extra arguments
	// and returns its exit code and output. It is the one place that
	// runs the apply, so a test can replace it (apply workers).
	apply func(args ...string) (int, string)

	mu   sync.Mutex
	sent map[string]map[string][32]byte // account → Message-ID → SHA-256 of the body
	seq  int
}

// newFleetMig writes the plan for n fresh accounts, each with seed
// messages on Dovecot, and routes the domain to Dovecot.
func newFleetMig(t *testing.T, n, seed int) *fleetMig {
	s := needPeers(t)
	f := &fleetMig{t: t, s: s, dir: t.TempDir(), sent: map[string]map[string][32]byte{}}
	f.dsn = s.Postgres.NewDatabase(t)
	u, err := url.Parse(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	// The password comes from the environment, as a plan should take it;
	// proxy processes inherit it.
	t.Setenv("MAILMIG_TEST_PGPASS", pw)
	var csv strings.Builder
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i := 0; i < n; i++ {
		a := s.NewAccount(t)
		f.accts = append(f.accts, a)
		f.sent[a.Email] = map[string][32]byte{}
		env := fmt.Sprintf("MAILMIG_FLEET_PW_%d", i)
		t.Setenv(env, a.Password)
		fmt.Fprintf(&csv, "%s,,,env:%s\n", a.Email, env)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "accounts.csv"), []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f.planFile = filepath.Join(f.dir, "migration.hcl")
	plan := fmt.Sprintf(`state {
  path         = "state/"
  postgres     = %[1]q
  password_ref = "env:MAILMIG_TEST_PGPASS"
}
routes {
  postgres        = %[1]q
  password_ref    = "env:MAILMIG_TEST_PGPASS"
  lease           = "2s"
  barrier_timeout = "30s"
}
backend "legacy" {
  imap {
    address = %[2]q
    tls     = "none"
  }
  lmtp {
    address = %[3]q
    tls     = "none"
  }
}
backend "cyrus" {
  imap {
    address = %[4]q
    tls     = "none"
  }
  lmtp {
    address = %[5]q
    tls     = "none"
  }
  jmap {
    url = %[6]q
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
    imap = "127.0.0.2:0"
    lmtp = "127.0.0.1:0"
  }
}
`, u.String(), s.Dovecot.IMAP, s.Dovecot.LMTP, s.Cyrus.IMAP, s.Cyrus.LMTP, s.Cyrus.JMAPURL())
	if err := os.WriteFile(f.planFile, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}
	f.apply = func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), append([]string{"-f", f.planFile, "apply", "-auto-approve"}, args...),
			Streams{In: strings.NewReader(""), Out: &out, Err: &out})
		return code, out.String()
	}
	f.cli("routes", "default", "legacy")
	f.cli("routes", "domain", "add", "example.test")
	f.routes, err = pgroutes.Open(context.Background(), f.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.routes.Close() })
	for _, a := range f.accts {
		c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(a.Email, a.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		for range seed {
			msg := f.message(a, "seed")
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
	return f
}

// useWorkers makes f.apply run "mailmig apply -worker NAME" for each name
// as processes of their own, at once, each in a directory of its own (its
// machine: the archives it imports stay there), and wait for all of them.
func (f *fleetMig) useWorkers(names ...string) {
	dirs := map[string]string{}
	for _, n := range names {
		d := filepath.Join(f.dir, "worker-"+n)
		if err := os.MkdirAll(d, 0o700); err != nil {
			f.t.Fatal(err)
		}
		for _, file := range []string{"migration.hcl", "accounts.csv"} {
			b, err := os.ReadFile(filepath.Join(f.dir, file))
			if err != nil {
				f.t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, file), b, 0o600); err != nil {
				f.t.Fatal(err)
			}
		}
		dirs[n] = d
	}
	f.apply = func(args ...string) (int, string) {
		type proc struct {
			cmd *exec.Cmd
			out *bytes.Buffer
		}
		var ps []proc
		for _, n := range names {
			cmd := exec.Command(os.Args[0], append([]string{"apply", "-worker", n, "-auto-approve", "-lease", "2s"}, args...)...)
			cmd.Dir = dirs[n]
			cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=1", "MAILMIG_ACTOR=test@example.test")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				f.t.Fatal(err)
			}
			f.t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					cmd.Wait()
				}
			})
			ps = append(ps, proc{cmd, &out})
		}
		code := exitOK
		var all strings.Builder
		for i, p := range ps {
			if err := p.cmd.Wait(); err != nil {
				code = exitError
			}
			fmt.Fprintf(&all, "--- worker %s:\n%s", names[i], p.out.String())
		}
		return code, all.String()
	}
}

func (f *fleetMig) cli(args ...string) string {
	f.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"-f", f.planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != exitOK {
		f.t.Fatalf("mailmig %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// message returns a new message to a with a distinct Message-ID and
// records the SHA-256 of its body as expected on the target.
func (f *fleetMig) message(a peers.Account, phase string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("fleet-%s-%d@example.test", phase, f.seq)
	body := fmt.Sprintf("body of %s\r\nsecond line %d\r\n", id, f.seq)
	f.sent[a.Email][id] = sha256.Sum256([]byte(body)) // as the IMAP envelope gives it, without <>
	return []byte(fmt.Sprintf("From: sender@example.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\n%s", a.Email, id, id, body))
}

func headerValue(msg []byte, name string) string {
	for _, l := range strings.Split(string(msg), "\r\n") {
		if l == "" {
			break
		}
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// stage applies until the next change of every account is its cut-over
// (bounded: staging, then at most a few catch-ups).
func (f *fleetMig) stage() {
	f.t.Helper()
	for range 4 {
		code, out := f.apply()
		if code != exitOK {
			f.t.Fatalf("staging apply: exit %d\n%s", code, out)
		}
		next := f.cli("plan")
		if strings.Count(next, "cutover") >= len(f.accts) || strings.Contains(next, "cut over") {
			return
		}
	}
	f.t.Fatalf("no cut-over planned after staging:\n%s", f.cli("plan"))
}

// route reads an account's route from the table (the zero Route when it
// has none: the default backend routes it).
func (f *fleetMig) route(a peers.Account) routes.Route {
	f.t.Helper()
	r, err := f.routes.Get(context.Background(), a.Email)
	if err != nil && !errors.Is(err, routes.ErrNotFound) {
		f.t.Fatal(err)
	}
	return r
}

// waitFrozen waits (bounded) until the account's route is frozen, or done
// is closed.
func (f *fleetMig) waitFrozen(a peers.Account, done <-chan struct{}) bool {
	for range 6000 {
		if f.route(a).State == routes.Frozen {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(10 * time.Millisecond): // polling another component's progress
		}
	}
	return false
}

// journalHas reports whether the journal holds a transition of the account
// into phase.
func (f *fleetMig) journalHas(a peers.Account, phase string) bool {
	f.t.Helper()
	var n int
	err := f.routes.Pool().QueryRow(context.Background(), `SELECT count(*) FROM mailmig_journal WHERE line LIKE $1 AND line LIKE $2`,
		`%"phase":"`+phase+`"%`, `%"account":"`+strings.ToLower(a.Email)+`"%`).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	return n > 0
}

// bodyHashes returns, per Message-ID, the SHA-256 of the body (BODY[TEXT])
// of each copy in the account's INBOX on an IMAP server.
func bodyHashes(t *testing.T, addr string, a peers.Account) map[string][][32]byte {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatalf("login to %s: %v", addr, err)
	}
	sd, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][32]byte{}
	if sd.NumMessages == 0 {
		return out
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{Envelope: true, Flags: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		deleted := false
		for _, fl := range m.Flags {
			deleted = deleted || fl == imap.FlagDeleted
		}
		if !deleted {
			out[m.Envelope.MessageID] = append(out[m.Envelope.MessageID], sha256.Sum256(m.FindBodySection(sec)))
		}
	}
	c.Logout().Wait()
	return out
}

// check asserts the end state: every account routed to Cyrus unfrozen;
// every message sent or seeded on Cyrus exactly once with its body's
// hash, nothing else there, nothing left only on Dovecot; the journal
// verifies.
func (f *fleetMig) check() {
	t := f.t
	t.Helper()
	for _, a := range f.accts {
		if r := f.route(a); r.Backend != "cyrus" || r.State != routes.Active {
			t.Fatalf("%s: route %+v after the cut-over", a.Email, r)
		}
		onCyrus := bodyHashes(t, f.s.Cyrus.IMAP, a)
		onDovecot := bodyHashes(t, f.s.Dovecot.IMAP, a)
		f.mu.Lock()
		want := f.sent[a.Email]
		f.mu.Unlock()
		for id, h := range want {
			if got := onCyrus[id]; len(got) != 1 || got[0] != h {
				t.Errorf("%s: %s is on Cyrus %d times (hash equal: %v), want once", a.Email, id, len(got), len(got) == 1 && got[0] == h)
			}
		}
		for id, hs := range onCyrus {
			if _, ok := want[id]; !ok {
				t.Errorf("%s: unexpected %s on Cyrus (%d times)", a.Email, id, len(hs))
			}
		}
		for id := range onDovecot {
			if len(onCyrus[id]) != 1 {
				t.Errorf("%s: %s was left behind on Dovecot", a.Email, id)
			}
		}
		t.Logf("%s: %d messages sent or seeded, %d on Cyrus, %d on Dovecot", a.Email, len(want), len(onCyrus), len(onDovecot))
	}
	out := f.cli("journal", "verify", "-json")
	var res struct{ OK bool }
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.OK {
		t.Fatalf("journal verify: %v\n%s", err, out)
	}
}

// slowLMTP is an LMTP transaction sent by hand, so that its DATA can
// trickle in across a freeze.
type slowLMTP struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// startSlowLMTP opens a transaction to rcpt through addr and sends DATA and
// the first header line.
func startSlowLMTP(t *testing.T, addr, rcpt string, msg []byte) (*slowLMTP, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(90 * time.Second))
	s := &slowLMTP{t: t, conn: conn, br: bufio.NewReader(conn)}
	s.expect("220")
	for _, step := range []struct{ cmd, want string }{
		{"LHLO client.example", "250"}, {"MAIL FROM:<sender@example.test>", "250"},
		{"RCPT TO:<" + rcpt + ">", "250"}, {"DATA", "354"},
	} {
		s.send(step.cmd + "\r\n")
		s.expect(step.want)
	}
	first, rest, _ := bytes.Cut(msg, []byte("\r\n"))
	s.send(string(first) + "\r\n")
	return s, rest
}

func (s *slowLMTP) send(text string) {
	s.t.Helper()
	if _, err := fmt.Fprint(s.conn, text); err != nil {
		s.t.Fatal(err)
	}
}

// reply reads one (multi-line) reply and returns its code line.
func (s *slowLMTP) reply() string {
	s.t.Helper()
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			s.t.Fatalf("LMTP reply: %v", err)
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		return strings.TrimSpace(line)
	}
}

func (s *slowLMTP) expect(prefix string) {
	s.t.Helper()
	if line := s.reply(); !strings.HasPrefix(line, prefix) {
		s.t.Fatalf("got %q, want %q", line, prefix)
	}
}

// trickle sends rest in pieces, one line per piece, calling between after
// each, then the final dot, and returns the reply.
func (s *slowLMTP) trickle(rest []byte, between func()) string {
	s.t.Helper()
	for _, l := range strings.SplitAfter(string(rest), "\r\n") {
		if l == "" {
			continue
		}
		between()
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		s.send(l)
	}
	s.send(".\r\n")
	r := s.reply()
	s.send("QUIT\r\n")
	return r
}

// TestFleetSlowDataAcrossFreeze is TestLMTPSlowDataAcrossFreeze (issue
// 15) with the route table and the state in PostgreSQL and a real
// `mailmig apply` cut-over: an LMTP client has begun DATA through the
// proxy when the cut-over freezes the account, and sends the rest in
// pieces for about 2 s. The barrier is not passed while the delivery is
// in flight — no freeze acknowledgement in the table, no final sync in
// the journal — and is passed once the backend answered the final dot;
// the message is then on Dovecot before the final sync and ends on Cyrus
// exactly once.
func TestFleetSlowDataAcrossFreeze(t *testing.T) {
	f := newFleetMig(t, 1, 5)
	a := f.accts[0]
	m, diags := loadMigration(&globals{PlanPath: f.planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, err := startProxy(context.Background(), m, &proxyRun{ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(c)
	})
	lmtp := ""
	for _, l := range p.Addrs {
		if rest, ok := strings.CutPrefix(l, "lmtp "); ok {
			lmtp = rest
		}
	}
	f.stage()

	msg := f.message(a, "slow")
	slow, rest := startSlowLMTP(t, lmtp, a.Email, msg)
	proxytest.WaitFor(t, 10*time.Second, func() bool { return p.Router.InFlight(a.Email) == 1 })

	type result struct {
		code int
		out  string
	}
	applied := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		code, out := f.apply()
		applied <- result{code, out}
		close(done)
	}()
	if !f.waitFrozen(a, done) {
		r := <-applied
		t.Fatalf("the cut-over never froze the account: exit %d\n%s", r.code, r.out)
	}
	// Over about 2 s, one line every 300 ms: the barrier holds.
	reply := slow.trickle(rest, func() {
		time.Sleep(300 * time.Millisecond)
		select {
		case r := <-applied:
			t.Fatalf("apply ended while the delivery was in flight: exit %d\n%s", r.code, r.out)
		default:
		}
		var n int
		if err := f.routes.Pool().QueryRow(context.Background(), `SELECT count(*) FROM mailmig_freeze_acks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatal("the freeze was acknowledged while the delivery was in flight")
		}
		if f.journalHas(a, "final-sync") {
			t.Fatal("the final sync started while the delivery was in flight")
		}
		if r := f.route(a); r.State != routes.Frozen || r.Backend != "legacy" {
			t.Fatalf("route while the delivery is in flight: %+v", r)
		}
	})
	if !strings.HasPrefix(reply, "250") {
		t.Fatalf("the slow delivery got %q, want 250 (it began before the freeze)", reply)
	}
	var r result
	select {
	case r = <-applied:
	case <-time.After(2 * time.Minute):
		t.Fatal("apply did not end after the delivery")
	}
	if r.code != exitOK {
		t.Fatalf("apply: exit %d\n%s", r.code, r.out)
	}
	if !f.journalHas(a, "final-sync") || !f.journalHas(a, "done") {
		t.Fatalf("the cut-over did not finish:\n%s", r.out)
	}
	id := strings.Trim(headerValue(msg, "Message-ID"), "<>")
	if n := len(bodyHashes(t, f.s.Dovecot.IMAP, a)[id]); n != 1 {
		t.Errorf("the slow message is on Dovecot %d times, want once (delivered before the final sync)", n)
	}
	f.check()
}

// waitLive waits (bounded) until the named proxies are live and caught up.
func (f *fleetMig) waitLive(ids ...string) {
	f.t.Helper()
	for range 400 {
		ps, _, err := f.routes.Proxies(context.Background())
		if err != nil {
			f.t.Fatal(err)
		}
		live := 0
		for _, p := range ps {
			for _, id := range ids {
				if p.ID == id && p.Live && p.Lag == 0 {
					live++
				}
			}
		}
		if live == len(ids) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.t.Fatalf("proxies %v not live and caught up", ids)
}

// TestFleetCutoverExactlyOnce (issue 18): three `mailmig proxy` processes
// follow one route table in PostgreSQL (the state is there too). An IMAP
// client idles through each, an LMTP delivery through each has begun its
// DATA, and 60 messages with distinct Message-IDs are delivered
// round-robin through the three proxies — some before the freeze, some
// refused during it (451, retried by the sender), the rest after the flip —
// while two `mailmig apply -worker` processes (each with a state directory
// of its own, as on two machines) cut it and a second account over from
// Dovecot to Cyrus. The
// three slow deliveries finish across the freeze and the final sync does
// not start before they did. Afterwards every message is on Cyrus exactly
// once (Message-ID and SHA-256 of the body), nothing is left only on
// Dovecot, every IMAP session was ended and the next login through each
// proxy lands on Cyrus.
func TestFleetCutoverExactlyOnce(t *testing.T) {
	f := newFleetMig(t, 2, 5)
	// Two apply workers, each on its own "machine", stage and cut over:
	// one of them claims the account the traffic goes to, the other (or
	// the same) the second account; the proxies' barrier is the same.
	f.useWorkers("w1", "w2")
	a := f.accts[0]
	var px []*proxyProcess
	ids := []string{"p1", "p2", "p3"}
	for _, id := range ids {
		px = append(px, startProxyProcess(t, f.dir, f.planFile, 2, "-id", id))
	}
	f.waitLive(ids...)
	// Each proxy acknowledges freezes (its acker started before its
	// listeners): the barrier waits for their acknowledgements, not only
	// for the change to be applied.
	var acking int
	if err := f.routes.Pool().QueryRow(context.Background(), `SELECT count(*) FROM mailmig_proxies WHERE acks_freezes`).Scan(&acking); err != nil || acking != len(ids) {
		t.Fatalf("%d proxies acknowledge freezes, want %d (%v)", acking, len(ids), err)
	}
	f.stage()

	// An IMAP session through each proxy, idling.
	var sessions []*imapclient.Client
	for i, p := range px {
		c, err := imapclient.DialInsecure(p.addr["imap"], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(a.Email, a.Password).Wait(); err != nil {
			t.Fatalf("login through p%d: %v", i+1, err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Idle(); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, c)
	}
	// A delivery in DATA through each proxy.
	var slows []*slowLMTP
	var rests [][]string
	var slowMsgs [][]byte
	for i, p := range px {
		msg := f.message(a, fmt.Sprintf("slow%d", i+1))
		s, rest := startSlowLMTP(t, p.addr["lmtp"], a.Email, msg)
		slows, slowMsgs = append(slows, s), append(slowMsgs, msg)
		rests = append(rests, strings.SplitAfter(strings.TrimSuffix(string(rest), "\r\n"), "\r\n"))
	}

	type result struct {
		code int
		out  string
	}
	retried := tempFailures.Load()
	applied := make(chan result, 1)
	done := make(chan struct{})
	go func() {
		code, out := f.apply()
		applied <- result{code, out}
		close(done)
	}()
	// 60 messages round-robin through the proxies: three senders, one per
	// proxy, each sending every third message. Messages from the 21st on
	// wait for the freeze, so the cut-over meets deliveries on every
	// proxy whatever the machine's speed.
	frozen := make(chan struct{})
	errs := make(chan error, len(px))
	var wg sync.WaitGroup
	for k, p := range px {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := k; i < 60; i += len(px) {
				if i >= 20 {
					select {
					case <-frozen:
					case <-done:
					}
				}
				if err := lmtpDeliver(p.addr["lmtp"], a.Email, f.message(a, fmt.Sprintf("rr%d", k+1)), 90*time.Second); err != nil {
					errs <- fmt.Errorf("delivery %d through p%d: %w", i, k+1, err)
					return
				}
			}
		}()
	}
	if !f.waitFrozen(a, done) {
		r := <-applied
		t.Fatalf("the cut-over never froze the account: exit %d\n%s", r.code, r.out)
	}
	close(frozen)
	// The slow deliveries go on across the freeze, a line on each proxy
	// every 150 ms; the barrier holds meanwhile.
	for line := range rests[0] {
		time.Sleep(150 * time.Millisecond)
		if f.journalHas(a, "final-sync") {
			t.Fatal("the final sync started while deliveries were in flight")
		}
		for i, s := range slows {
			l := rests[i][line]
			if strings.HasPrefix(l, ".") {
				l = "." + l
			}
			s.send(l)
		}
	}
	for i, s := range slows {
		s.send("\r\n.\r\n")
		if r := s.reply(); !strings.HasPrefix(r, "250") {
			t.Errorf("the slow delivery through p%d got %q, want 250 (it began before the freeze)", i+1, r)
			if err := lmtpDeliver(px[i].addr["lmtp"], a.Email, slowMsgs[i], 90*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		s.send("QUIT\r\n")
	}
	// Every session was ended at the freeze.
	for i, c := range sessions {
		select {
		case <-c.Closed():
		case <-time.After(30 * time.Second):
			t.Fatalf("the IMAP session through p%d was not ended by the cut-over", i+1)
		}
	}
	var r result
	select {
	case r = <-applied:
	case <-time.After(3 * time.Minute):
		t.Fatal("apply did not end")
	}
	if r.code != exitOK {
		t.Fatalf("apply: exit %d\n%s", r.code, r.out)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("temporary failures retried by the senders (frozen): %d", tempFailures.Load()-retried)
	f.check()
	// The workers did the cut-overs: each account's records name one of
	// them.
	for _, acct := range f.accts {
		var by []string
		rows, err := f.routes.Pool().Query(context.Background(), `SELECT DISTINCT substring(line from '"actor":"[^"]*\(worker ([^)]*)\)"') FROM mailmig_journal
			WHERE line LIKE $1 AND line LIKE '%"type":"finish"%'`, `%"account":"`+strings.ToLower(acct.Email)+`"%`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var w *string
			if err := rows.Scan(&w); err != nil {
				t.Fatal(err)
			}
			if w == nil {
				t.Errorf("%s: an action ended by a process that is not an apply worker", acct.Email)
				continue
			}
			by = append(by, *w)
		}
		rows.Close()
		if len(by) == 0 {
			t.Errorf("%s: no action ended by an apply worker", acct.Email)
		}
		t.Logf("%s: actions ended by worker(s) %v", acct.Email, by)
	}

	// The next login through each proxy lands on Cyrus: a message put on
	// Dovecot only now is not seen, Cyrus's messages are.
	mark := f.message(a, "dovecot-only")
	c, err := imapclient.DialInsecure(f.s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	ac := c.Append("INBOX", int64(len(mark)), nil)
	ac.Write(mark)
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	onCyrus := bodyHashes(t, f.s.Cyrus.IMAP, a)
	for i, p := range px {
		got := bodyHashes(t, p.addr["imap"], a)
		if len(got) != len(onCyrus) || len(got[strings.Trim(headerValue(mark, "Message-ID"), "<>")]) != 0 {
			t.Errorf("login through p%d after the cut-over: %d messages (Cyrus has %d), the Dovecot-only one among them: %v",
				i+1, len(got), len(onCyrus), len(got[strings.Trim(headerValue(mark, "Message-ID"), "<>")]) != 0)
		}
	}
}
