package smtp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/routes"
)

// TestMain stops a peer set started for these tests and fails the run when
// the proxy recovered a panic.
func TestMain(m *testing.M) { proxytest.Main(m) }

// env is a proxy with its three mail-transfer fronts in front of the real
// peers, over a route table of its own.
type env struct {
	t       testing.TB
	set     *peers.Set
	store   *routes.Store
	w       *routes.Watcher
	router  *proxy.TableRouter
	metrics *proxy.Metrics

	smtp, lmtp, submission string // listener addresses
}

func backends(s *peers.Set) []*proxy.Backend {
	dovecot := func(name string, d *peers.Dovecot) *proxy.Backend {
		return &proxy.Backend{
			Name: name,
			Endpoints: map[proxy.Protocol]proxy.Endpoint{
				proxy.LMTP:       {Address: d.LMTP, XCLIENT: true},
				proxy.Submission: {Address: d.Submission, AllowPlaintext: true, XCLIENT: true},
			},
			MasterUser:     d.MasterUser,
			MasterPassword: d.MasterPassword,
		}
	}
	master := dovecot("dovecot-master", s.Dovecot)
	master.Login = proxy.LoginMaster
	master.Endpoints[proxy.LMTP] = proxy.Endpoint{Address: s.Dovecot.LMTP} // no XCLIENT
	return []*proxy.Backend{
		dovecot("dovecot", s.Dovecot),
		dovecot("dovecot2", s.Dovecot2),
		master,
		{Name: "cyrus", Endpoints: map[proxy.Protocol]proxy.Endpoint{proxy.LMTP: {Address: s.Cyrus.LMTP}}},
		{Name: "down", Endpoints: map[proxy.Protocol]proxy.Endpoint{
			proxy.LMTP:       {Address: closedPort(nil)},
			proxy.Submission: {Address: closedPort(nil), AllowPlaintext: true},
		}},
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func newEnv(t *testing.T) *env { return newBenchEnv(t) }

// newBenchEnv is newEnv for tests and benchmarks.
func newBenchEnv(t testing.TB) *env {
	t.Helper()
	s := peers.Get(t)
	ctx := context.Background()
	store, err := routes.Open(ctx, filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.AddDomains(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := routes.NewWatcher(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	router := proxy.NewRouter(w, backends(s), &proxy.RouterOptions{FrozenHold: 300 * time.Millisecond})
	t.Cleanup(router.Close)
	e := &env{t: t, set: s, store: store, w: w, router: router, metrics: proxy.NewMetrics()}
	e.smtp = e.serve(ModeSMTP)
	e.lmtp = e.serve(ModeLMTP)
	e.submission = e.serve(ModeSubmission)
	return e
}

func (e *env) serve(mode Mode) string {
	e.t.Helper()
	srv, err := NewServer(&Options{Mode: mode, Router: e.router, Hostname: "proxy.example.test", AllowInsecureAuth: true, BackendTimeout: 10 * time.Second, Metrics: e.metrics})
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go srv.Serve(ln)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if n := srv.Panics(); n != 0 {
			e.t.Errorf("%s server recovered %d panics", mode, n)
		}
	})
	return ln.Addr().String()
}

// route sets an account's backend and makes the watcher see it now.
func (e *env) route(acct, backend string) {
	e.t.Helper()
	if _, err := e.store.Set(context.Background(), acct, backend); err != nil {
		e.t.Fatal(err)
	}
	e.refresh()
}

func (e *env) freeze(acct string, on bool) {
	e.t.Helper()
	var err error
	if on {
		_, err = e.store.Freeze(context.Background(), acct)
	} else {
		_, err = e.store.Unfreeze(context.Background(), acct)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.refresh()
}

func (e *env) refresh() {
	e.t.Helper()
	if err := e.w.Refresh(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func marker() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "m" + hex.EncodeToString(b)
}

// maildirCount counts messages containing mark in a Maildir's INBOX.
func maildirCount(t *testing.T, dir, mark string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, ent.Name()))
			if err == nil && strings.Contains(string(b), mark) {
				n++
			}
		}
	}
	return n
}

// maildirMessage returns the first message containing mark, or "".
func maildirMessage(dir, mark string) string {
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, sub, ent.Name()))
			if err == nil && strings.Contains(string(b), mark) {
				return string(b)
			}
		}
	}
	return ""
}

func swaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("swaks"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("swaks is not installed")
		}
		t.Skip("swaks is not installed (testdata/peers/install.sh installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "swaks", append([]string{"--hide-informational", "--timeout", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

func message(from, to, mark string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: test " + mark + "\r\nMessage-ID: <" + mark + "@example.test>\r\n\r\nbody " + mark + "\r\n"
}

// TestSMTPTwoBackends sends one message with swaks to recipients on two
// backends through the port-25 front: the first backend's recipient is
// accepted, the other gets 452 4.5.3 and arrives when sent alone.
func TestSMTPTwoBackends(t *testing.T) {
	e := newEnv(t)
	a, b := e.set.NewAccount(t), e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	e.route(b.Email, "dovecot2")
	mark := marker()

	out, err := swaks(t, "--server", e.smtp, "--from", "sender@remote.example", "--to", a.Email+","+b.Email,
		"--header", "Subject: two "+mark, "--local-interface", "127.0.0.2")
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(out, "452 4.5.3") {
		t.Errorf("second backend's recipient not deferred with 452 4.5.3:\n%s", out)
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(a.Email), mark); n != 1 {
		t.Errorf("first recipient: %d copies on dovecot, want 1\n%s", n, out)
	}
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(b.Email), mark); n != 0 {
		t.Errorf("deferred recipient already has %d copies", n)
	}
	// The client's address reached the backend through XCLIENT.
	if msg := maildirMessage(e.set.Dovecot.MaildirPath(a.Email), mark); !strings.Contains(msg, "127.0.0.2") {
		t.Errorf("backend did not see the client address 127.0.0.2:\n%s", msg)
	}

	out, err = swaks(t, "--server", e.smtp, "--from", "sender@remote.example", "--to", b.Email, "--header", "Subject: two "+mark)
	if err != nil {
		t.Fatalf("swaks retry: %v\n%s", err, out)
	}
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(b.Email), mark); n != 1 {
		t.Errorf("retried recipient: %d copies on dovecot2, want 1\n%s", n, out)
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(b.Email), mark); n != 0 {
		t.Errorf("retried recipient landed on the wrong backend")
	}
}

// TestSMTPRefusals covers the answers the port-25 front gives itself: no
// open relay, unknown users, a backend that is down, and the backend's own
// refusal of an unknown mailbox.
func TestSMTPRefusals(t *testing.T) {
	e := newEnv(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "down")
	e.route("ghost@example.test", "dovecot") // routed, but Dovecot has no such user

	tests := map[string]struct {
		to   string
		want string
	}{
		"open relay":     {"victim@elsewhere.example", "550 5.7.1"},
		"unknown user":   {"nobody-" + marker() + "@example.test", "550 5.1.1"},
		"backend down":   {a.Email, "451 4.4.1"},
		"backend refuse": {"ghost@example.test", "550 5.1.1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := swaks(t, "--server", e.smtp, "--from", "sender@remote.example", "--to", tc.to)
			if err == nil {
				t.Fatalf("swaks succeeded, want %s:\n%s", tc.want, out)
			}
			if !strings.Contains(out, "<** "+tc.want) {
				t.Errorf("want %s:\n%s", tc.want, out)
			}
		})
	}
}

// lmtpSend delivers one message over LMTP and returns the RCPT errors and
// the per-recipient DATA replies (nil = delivered).
func lmtpSend(t *testing.T, addr string, rcpts []string, msg string) (rcptErr map[string]error, dataErr map[string]error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	rcptErr = map[string]error{}
	accepted := 0
	for _, r := range rcpts {
		rcptErr[r] = c.Rcpt(r, nil)
		if rcptErr[r] == nil {
			accepted++
		}
	}
	dataErr = map[string]error{}
	if accepted == 0 {
		return rcptErr, dataErr
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithLMTPResponse()
	if lerr, ok := err.(gosmtp.LMTPDataError); ok {
		for r, se := range lerr {
			dataErr[r] = se
		}
	} else if err != nil {
		t.Fatal(err)
	}
	for r := range resp {
		dataErr[r] = nil
	}
	c.Quit()
	return rcptErr, dataErr
}

func code(err error) int {
	if se := smtpErr(err); se != nil {
		return se.Code
	}
	if err != nil {
		return -1
	}
	return 250
}

func cyrusCount(t *testing.T, addr string, a peers.Account, mark string) int {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	data, err := c.UIDSearch(searchText(mark), nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return len(data.AllUIDs())
}

// TestLMTPFanout delivers one LMTP transaction to recipients on three
// backends (two Dovecots and Cyrus) plus refused ones, and checks one reply
// per accepted recipient and where each copy landed.
func TestLMTPFanout(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.set.NewAccount(t), e.set.NewAccount(t), e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	e.route(b.Email, "dovecot2")
	e.route(c.Email, "cyrus")
	mark := marker()
	unknown := "nobody-" + mark + "@example.test"
	rcptErr, dataErr := lmtpSend(t, e.lmtp, []string{a.Email, "relay@elsewhere.example", b.Email, unknown, c.Email}, message("sender@remote.example", a.Email, mark))

	wantRcpt := map[string]int{a.Email: 250, "relay@elsewhere.example": 550, b.Email: 250, unknown: 550, c.Email: 250}
	for r, want := range wantRcpt {
		if got := code(rcptErr[r]); got != want {
			t.Errorf("RCPT %s: %d (%v), want %d", r, got, rcptErr[r], want)
		}
	}
	if len(dataErr) != 3 {
		t.Errorf("got %d per-recipient DATA replies, want 3: %v", len(dataErr), dataErr)
	}
	for _, r := range []string{a.Email, b.Email, c.Email} {
		if err, ok := dataErr[r]; !ok || err != nil {
			t.Errorf("DATA for %s: present=%v err=%v", r, ok, err)
		}
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(a.Email), mark); n != 1 {
		t.Errorf("dovecot copy for a: %d", n)
	}
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(b.Email), mark); n != 1 {
		t.Errorf("dovecot2 copy for b: %d", n)
	}
	if n := cyrusCount(t, e.set.Cyrus.IMAP, c, mark); n != 1 {
		t.Errorf("cyrus copy for c: %d", n)
	}
}

// TestLMTPFreeze: during a freeze the account's deliveries get 4xx; after
// the flip to the other backend and the unfreeze they land there; a freeze
// between RCPT and DATA fails that transaction temporarily. Nothing is lost
// and nothing lands on the old backend after the freeze.
func TestLMTPFreeze(t *testing.T) {
	e := newEnv(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	mark := marker()
	msg := message("sender@remote.example", a.Email, mark)

	e.freeze(a.Email, true)
	rcptErr, _ := lmtpSend(t, e.lmtp, []string{a.Email}, msg)
	if se := smtpErr(rcptErr[a.Email]); se == nil || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 2, 0}) {
		t.Fatalf("RCPT during freeze: %v, want 451 4.2.0", rcptErr[a.Email])
	}

	// Flip while frozen, then unfreeze: the sender's retry lands on dovecot2.
	e.route(a.Email, "dovecot2")
	e.freeze(a.Email, false)
	rcptErr, dataErr := lmtpSend(t, e.lmtp, []string{a.Email}, msg)
	if rcptErr[a.Email] != nil || dataErr[a.Email] != nil {
		t.Fatalf("after unfreeze: rcpt %v data %v", rcptErr[a.Email], dataErr[a.Email])
	}
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(a.Email), mark); n != 1 {
		t.Errorf("new backend has %d copies, want 1", n)
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(a.Email), mark); n != 0 {
		t.Errorf("old backend has %d copies, want 0", n)
	}

	// Freeze between RCPT and DATA.
	conn, err := net.Dial("tcp", e.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	mark2 := marker()
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(a.Email, nil); err != nil {
		t.Fatal(err)
	}
	e.freeze(a.Email, true)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, message("sender@remote.example", a.Email, mark2))
	_, err = w.CloseWithLMTPResponse()
	lerr, ok := err.(gosmtp.LMTPDataError)
	if !ok || lerr[a.Email] == nil || lerr[a.Email].Code != 451 {
		t.Fatalf("DATA after a freeze mid-transaction: %v, want 451", err)
	}
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(a.Email), mark2); n != 0 {
		t.Errorf("message delivered during freeze")
	}
}

// TestLMTPBackendDown: a recipient on an unreachable backend gets 451
// while the others of the same transaction are delivered.
func TestLMTPBackendDown(t *testing.T) {
	e := newEnv(t)
	a, b := e.set.NewAccount(t), e.set.NewAccount(t)
	e.route(a.Email, "down")
	e.route(b.Email, "dovecot")
	mark := marker()
	rcptErr, dataErr := lmtpSend(t, e.lmtp, []string{a.Email, b.Email}, message("s@remote.example", b.Email, mark))
	if se := smtpErr(rcptErr[a.Email]); se == nil || se.Code != 451 {
		t.Errorf("down backend: %v, want 451", rcptErr[a.Email])
	}
	if rcptErr[b.Email] != nil || dataErr[b.Email] != nil {
		t.Errorf("healthy backend: rcpt %v data %v", rcptErr[b.Email], dataErr[b.Email])
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(b.Email), mark); n != 1 {
		t.Errorf("healthy recipient got %d copies", n)
	}
}

// sinkMessage waits for the SMTP sink behind Dovecot's submission to store
// a message containing mark and returns it.
func sinkMessage(t *testing.T, dir, mark string) string {
	t.Helper()
	found := ""
	waitFor(t, 10*time.Second, func() bool {
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
			if err == nil && strings.Contains(string(b), mark) {
				found = string(b)
				return true
			}
		}
		return false
	})
	return found
}

// sinkHas reports whether the SMTP sink holds a message containing mark
// now.
func sinkHas(dir, mark string) bool {
	ents, _ := os.ReadDir(dir)
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err == nil && strings.Contains(string(b), mark) {
			return true
		}
	}
	return false
}

// TestSubmission drives swaks with AUTH through the submission front to
// Dovecot's submission service, which relays to the SMTP sink.
func TestSubmission(t *testing.T) {
	e := newEnv(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	m := e.set.NewAccount(t)
	e.route(m.Email, "dovecot-master")
	down := e.set.NewAccount(t)
	e.route(down.Email, "down")
	cy := e.set.NewAccount(t)
	e.route(cy.Email, "cyrus") // no submission endpoint
	frozen := e.set.NewAccount(t)
	e.route(frozen.Email, "dovecot")
	e.freeze(frozen.Email, true)

	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			mark := marker()
			out, err := swaks(t, "--server", e.submission, "--from", a.Email, "--to", "friend@remote.example",
				"--auth", mech, "--auth-user", a.Email, "--auth-password", a.Password,
				"--header", "Subject: sub "+mark, "--local-interface", "127.0.0.3")
			if err != nil {
				t.Fatalf("swaks: %v\n%s", err, out)
			}
			msg := sinkMessage(t, e.set.Dovecot.SinkDir, mark)
			if msg == "" {
				t.Fatalf("message not relayed to the sink:\n%s", out)
			}
			if !strings.Contains(msg, "friend@remote.example") {
				t.Errorf("sink envelope lacks the recipient:\n%s", msg)
			}
			// Dovecot got the client's address by XCLIENT and passed it on.
			if !strings.Contains(msg, "ADDR=127.0.0.3") {
				t.Errorf("client address did not reach the backend:\n%s", msg)
			}
		})
	}
	t.Run("master", func(t *testing.T) {
		// The proxy logs in with Dovecot's master user, but only after
		// Dovecot accepted the client's own password (issue 10, finding
		// 1): a wrong one gets 535 and nothing is relayed.
		bad := marker()
		out, err := swaks(t, "--server", e.submission, "--from", m.Email, "--to", "friend@remote.example",
			"--auth", "PLAIN", "--auth-user", m.Email, "--auth-password", "not-"+m.Password, "--header", "Subject: master wrong "+bad)
		if err == nil || !strings.Contains(out, "535 5.7.8") {
			t.Errorf("master backend, wrong password: want 535 5.7.8 (err %v):\n%s", err, out)
		}
		for _, mech := range []string{"PLAIN", "LOGIN"} {
			mark := marker()
			out, err = swaks(t, "--server", e.submission, "--from", m.Email, "--to", "friend@remote.example",
				"--auth", mech, "--auth-user", m.Email, "--auth-password", m.Password, "--header", "Subject: master "+mark)
			if err != nil {
				t.Fatalf("swaks %s: %v\n%s", mech, err, out)
			}
			if sinkMessage(t, e.set.Dovecot.SinkDir, mark) == "" {
				t.Fatalf("message not relayed:\n%s", out)
			}
		}
		// The right password's messages arrived, so the wrong one's
		// would have by now.
		if sinkHas(e.set.Dovecot.SinkDir, bad) {
			t.Error("the message sent with a wrong password was relayed")
		}
	})
	refusals := map[string]struct {
		user, pass, want string
	}{
		"wrong password": {a.Email, "wrong", "535 5.7.8"},
		"unknown user":   {"nobody-" + marker() + "@elsewhere.example", "x", "535 5.7.8"},
		"backend down":   {down.Email, down.Password, "535 5.7.8"},
		"no endpoint":    {cy.Email, cy.Password, "535 5.7.8"},
		"frozen":         {frozen.Email, frozen.Password, "454 4.7.0"},
		// Held (and then 454) only after Dovecot accepted the password.
		"frozen, wrong password": {frozen.Email, "wrong", "535 5.7.8"},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			out, err := swaks(t, "--server", e.submission, "--from", a.Email, "--to", "friend@remote.example",
				"--auth", "PLAIN", "--auth-user", tc.user, "--auth-password", tc.pass)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("want %s (err %v):\n%s", tc.want, err, out)
			}
		})
	}
	t.Run("no auth", func(t *testing.T) {
		out, err := swaks(t, "--server", e.submission, "--from", a.Email, "--to", "friend@remote.example")
		if err == nil || !strings.Contains(out, "502 5.7.0") {
			t.Errorf("MAIL without AUTH: want 502 5.7.0 (err %v):\n%s", err, out)
		}
	})
}

// TestSubmissionFlip: a flip of the account ends its open submission
// session with 421.
func TestSubmissionFlip(t *testing.T) {
	e := newEnv(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	conn, err := net.Dial("tcp", e.submission)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(saslPlain(a.Email, a.Password)); err != nil {
		t.Fatal(err)
	}
	e.route(a.Email, "dovecot2")
	// The session ends: the next command gets 421 (or the connection is
	// already closed).
	var last error
	if !waitFor(t, 5*time.Second, func() bool { last = c.Noop(); return last != nil }) {
		t.Fatal("session still open 5 s after the flip")
	}
	if se := smtpErr(last); se != nil && se.Code != 421 {
		t.Fatalf("after flip: %v, want 421", last)
	}
}

func searchText(s string) *imap.SearchCriteria {
	return &imap.SearchCriteria{Text: []string{s}}
}

func saslPlain(user, pass string) sasl.Client { return sasl.NewPlainClient("", user, pass) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, cond func() bool) bool {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			return cond()
		}
	}
	return true
}

// TestPooledSessionXCLIENT: a second delivery reuses the pooled backend
// session, and XCLIENT gives the backend the second client's address.
func TestPooledSessionXCLIENT(t *testing.T) {
	e := newEnv(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	marks := []string{marker(), marker()}
	for i, from := range []string{"127.0.0.4", "127.0.0.5"} {
		out, err := swaks(t, "--server", e.smtp, "--from", "s@remote.example", "--to", a.Email,
			"--header", "Subject: pooled "+marks[i], "--local-interface", from)
		if err != nil {
			t.Fatalf("swaks from %s: %v\n%s", from, err, out)
		}
	}
	dir := e.set.Dovecot.MaildirPath(a.Email)
	for i, from := range []string{"127.0.0.4", "127.0.0.5"} {
		if msg := maildirMessage(dir, marks[i]); !strings.Contains(msg, "["+from+"]") {
			t.Errorf("delivery %d: backend did not see client %s:\n%s", i+1, from, msg)
		}
	}
	if n := e.metrics.Get(proxy.MetricSessions, "proto", "smtp", "backend", "dovecot"); n != 1 {
		t.Errorf("backend sessions opened: %d, want 1 (the second delivery reuses the first)", n)
	}
}
