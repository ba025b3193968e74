package imap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// TestMain stops a peer set started for these tests and fails the run when
// the proxy recovered a panic.
func TestMain(m *testing.M) { proxytest.Main(m) }

// transcript is a raw client for protocol-level assertions.
type transcript struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *transcript {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &transcript{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (tc *transcript) send(s string) {
	tc.t.Helper()
	if _, err := tc.nc.Write([]byte(s)); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *transcript) line() string {
	tc.t.Helper()
	l, err := tc.br.ReadString('\n')
	if err != nil {
		tc.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// expect reads lines until one starts with prefix and returns it.
func (tc *transcript) expect(prefix string) string {
	tc.t.Helper()
	for {
		l := tc.line()
		if strings.HasPrefix(l, prefix) {
			return l
		}
		if !strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "+") {
			tc.t.Fatalf("got %q, want a line starting with %q", l, prefix)
		}
	}
}

func login(t *testing.T, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func appendMsg(t *testing.T, c *imapclient.Client, subject string) {
	t.Helper()
	msg := fmt.Sprintf("From: a@example.test\r\nTo: b@example.test\r\nSubject: %s\r\nMessage-ID: <%d@example.test>\r\n\r\nbody %s\r\n", subject, time.Now().UnixNano(), subject)
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write([]byte(msg))
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestGoIMAPThroughProxy(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	c := login(t, p.IMAP, a.Email, a.Password)
	// The backend's capabilities reach the client in the tagged OK.
	if caps := c.Caps(); !caps.Has(imap.CapCondStore) || !caps.Has(imap.CapQResync) {
		t.Errorf("capabilities after login lack CONDSTORE/QRESYNC: %v", caps)
	}
	appendMsg(t, c, "through the proxy")
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", sel.NumMessages)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Envelope.Subject != "through the proxy" {
		t.Fatalf("fetched %+v", msgs)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	// The message is really on the first Dovecot.
	d := login(t, s.Dovecot.IMAP, a.Email, a.Password)
	if sel, err := d.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("direct: %v %v", sel, err)
	}
	m := p.Server.Metrics()
	if m.Get(proxy.MetricSessions, "proto", "imap", "backend", "dovecot") < 1 {
		t.Error("session not counted")
	}
}

func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("curl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestCurlLogins(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	tests := map[string][]string{
		"AUTH=PLAIN":       {"--login-options", "AUTH=PLAIN", "--user", a.Email + ":" + a.Password},
		"AUTH=LOGIN":       {"--login-options", "AUTH=LOGIN", "--user", a.Email + ":" + a.Password},
		"default":          {"--user", a.Email + ":" + a.Password},
		"master authzid":   {"--login-options", "AUTH=PLAIN", "--sasl-authzid", a.Email, "--user", s.Dovecot.MasterUser + ":" + s.Dovecot.MasterPassword},
		"master separator": {"--login-options", "AUTH=PLAIN", "--user", a.Email + "*" + s.Dovecot.MasterUser + ":" + s.Dovecot.MasterPassword},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := curl(t, append(args, "imap://"+p.IMAP+"/")...)
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.Contains(out, "INBOX") || !strings.Contains(out, "Sent") {
				t.Errorf("LIST output lacks INBOX/Sent:\n%s", out)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		out, err := curl(t, "--user", a.Email+":wrong", "imap://"+p.IMAP+"/")
		if err == nil || !strings.Contains(out, "Login denied") {
			t.Errorf("curl with a wrong password: err=%v\n%s", err, out)
		}
	})
}

func TestErrors(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	down := s.NewAccount(t)
	p.Route(t, down.Email, "down")
	tests := map[string]struct {
		send string
		want string
	}{
		"wrong password": {fmt.Sprintf("a1 LOGIN %s wrong\r\n", a.Email), "a1 NO [AUTHENTICATIONFAILED]"},
		"unknown user":   {"a1 LOGIN nobody@example.test pw\r\n", "a1 NO [AUTHENTICATIONFAILED]"},
		// Before a backend checked the credentials, nothing about the
		// account is revealed: a backend that is down gets the answer of
		// a wrong password (issue 10, finding 3).
		"backend down":    {fmt.Sprintf("a1 LOGIN %s %s\r\n", down.Email, down.Password), "a1 NO [AUTHENTICATIONFAILED] Authentication failed."},
		"bad sasl":        {"a1 AUTHENTICATE PLAIN Zm9v\r\n", "a1 NO [AUTHENTICATIONFAILED]"},
		"bad base64":      {"a1 AUTHENTICATE PLAIN !!!\r\n", "a1 BAD"},
		"cancel":          {"a1 AUTHENTICATE PLAIN\r\n*\r\n", "a1 BAD"},
		"unknown mech":    {"a1 AUTHENTICATE CRAM-MD5\r\n", "a1 NO [CANNOT]"},
		"select pre-auth": {"a1 SELECT INBOX\r\n", "a1 BAD"},
		"no tag":          {"\r\n", "* BAD"},
		"login args":      {"a1 LOGIN onlyuser\r\n", "a1 BAD"},
		"huge sync lit":   {"a1 LOGIN {999999999}\r\n", "a1 BAD [TOOBIG]"},
		"huge literal+":   {"a1 LOGIN {999999999+}\r\n", "* BYE [TOOBIG]"},
		"long line":       {"a1 " + strings.Repeat("x", 70*1024) + "\r\n", "* BYE [TOOBIG]"}, // past wire.MaxIMAPLine
		"nul":             {"a1 NOOP\x00\r\n", "* BAD"},
		"starttls no tls": {"a1 STARTTLS\r\n", "a1 BAD"},
		"logout":          {"a1 LOGOUT\r\n", "* BYE"},
		"id":              {"a1 ID (\"name\" \"test\" \"version\" NIL)\r\n", "* ID"},
		"literal login":   {fmt.Sprintf("a1 LOGIN {%d+}\r\n%s {5}\r\n", len(a.Email), a.Email), "+ Ready"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.IMAP)
			r.expect("* OK [CAPABILITY IMAP4rev1")
			r.send(tc.send)
			if got := r.expect(tc.want[:2]); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want prefix %q", got, tc.want)
			}
		})
	}
	// A literal password completes the login.
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a1 LOGIN {%d+}\r\n%s {%d}\r\n", len(a.Email), a.Email, len(a.Password)))
	r.expect("+ ")
	r.send(a.Password + "\r\n")
	if l := r.expect("a1 "); !strings.HasPrefix(l, "a1 OK [CAPABILITY ") {
		t.Errorf("literal login: %q", l)
	}
	// SASL-IR PLAIN and XOAUTH2 reach the backend (Dovecot checks tokens
	// with its oauth2 passdb and refuses this made-up one; the answer is
	// the backend's NO). Good tokens: oauth_test.go.
	r = dialRaw(t, p.IMAP)
	r.expect("* OK")
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + a.Email + "\x00" + a.Password))
	r.send("a2 AUTHENTICATE PLAIN " + ir + "\r\n")
	if l := r.expect("a2 "); !strings.HasPrefix(l, "a2 OK") {
		t.Errorf("SASL-IR: %q", l)
	}
	r = dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send("a3 AUTHENTICATE XOAUTH2\r\n")
	r.expect("+")
	r.send(base64.StdEncoding.EncodeToString([]byte("user="+a.Email+"\x01auth=Bearer tok\x01\x01")) + "\r\n")
	if l := r.expect("a3 "); !strings.HasPrefix(l, "a3 NO") {
		t.Errorf("XOAUTH2 with a wrong token: %q", l)
	}
}

func TestAuthRateLimit(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{AuthFailures: 3})
	a := s.NewAccount(t)
	for i := range 3 {
		r := dialRaw(t, p.IMAP)
		r.expect("* OK")
		r.send(fmt.Sprintf("a%d LOGIN %s wrong\r\n", i, a.Email))
		r.expect(fmt.Sprintf("a%d NO [AUTHENTICATIONFAILED]", i))
	}
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("b LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("b NO [UNAVAILABLE]")
}

// TestFlip: an IDLE client on Dovecot gets BYE when the route flips, and
// its reconnect lands on the second Dovecot.
func TestFlip(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	// A marker message only on the second Dovecot.
	d2 := login(t, s.Dovecot2.IMAP, a.Email, a.Password)
	appendMsg(t, d2, "on dovecot2")
	d2.Logout().Wait()

	c := login(t, p.IMAP, a.Email, a.Password)
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("before flip: %+v %v", sel, err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p.Route(t, a.Email, "dovecot2")
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("IDLE client not disconnected within 5s of the flip")
	}
	t.Logf("client disconnected %v after the flip", time.Since(start))
	idle.Close()

	c2 := login(t, p.IMAP, a.Email, a.Password)
	sel, err := c2.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("after flip INBOX has %d messages, want the 1 on dovecot2", sel.NumMessages)
	}
	if n := p.Server.Metrics().Get(proxy.MetricSessionsEnded, "proto", "imap"); n != 1 {
		t.Errorf("sessions ended by route = %d, want 1", n)
	}
}

func TestFlipSendsBYE(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a OK")
	r.send("b SELECT INBOX\r\n")
	r.expect("b OK")
	r.send("c IDLE\r\n")
	r.expect("+ ")
	p.Freeze(t, a.Email)
	if l := r.expect("* BYE"); !strings.Contains(l, "frozen") {
		t.Errorf("BYE = %q", l)
	}
}

func TestFreezeHold(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{FrozenHold: 400 * time.Millisecond})
	a := s.NewAccount(t)
	p.Freeze(t, a.Email)
	// Still frozen after the hold: a temporary failure.
	start := time.Now()
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a NO [UNAVAILABLE]")
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("refused after %v, before the hold time", d)
	}
	// A wrong password is not held: the backend that holds the account
	// checks the credentials first, so the hold and its temporary answer
	// tell nothing about an account to someone without its password
	// (issue 10, finding 3).
	p2 := proxytest.Start(t, s, &proxytest.Options{FrozenHold: 10 * time.Second})
	c := s.NewAccount(t)
	p2.Freeze(t, c.Email)
	r = dialRaw(t, p2.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s wrong\r\n", c.Email))
	if got := r.expect("a "); got != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("frozen account, wrong password: %q", got)
	}
	// Unfrozen (and flipped) during the hold: the login follows the route.
	b := s.NewAccount(t)
	p2.Freeze(t, b.Email)
	done := make(chan error, 1)
	go func() {
		c, err := imapclient.DialInsecure(p2.IMAP, nil)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.Login(b.Email, b.Password).Wait()
	}()
	proxytest.WaitFor(t, 5*time.Second, func() bool {
		return p2.Server.Metrics().Get(proxy.MetricConnectionsOpen, "proto", "imap") == 1
	})
	p2.Route(t, b.Email, "dovecot2")
	p2.Unfreeze(t, b.Email)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("held login: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("held login not released after unfreeze")
	}
}

func TestHAProxyProtocol(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{ClientAddress: "proxy"})
	a := s.NewAccount(t)
	c := login(t, p.IMAP, a.Email, a.Password)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{TLS: true})
	a := s.NewAccount(t)
	// Before STARTTLS: LOGINDISABLED, no AUTH=, LOGIN refused.
	r := dialRaw(t, p.IMAP)
	g := r.expect("* OK")
	if !strings.Contains(g, "LOGINDISABLED") || !strings.Contains(g, "STARTTLS") || strings.Contains(g, "AUTH=") {
		t.Errorf("greeting before TLS: %q", g)
	}
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a NO [PRIVACYREQUIRED]")

	c, err := imapclient.DialStartTLS(p.IMAP, &imapclient.Options{TLSConfig: p.ClientTLS()})
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
	ci, err := imapclient.DialTLS(p.IMAPS, &imapclient.Options{TLSConfig: p.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	defer ci.Close()
	if err := ci.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	out, err := curl(t, "--ssl-reqd", "--cacert", p.CertFile, "--user", a.Email+":"+a.Password, "imap://"+p.IMAP+"/")
	if err != nil || !strings.Contains(out, "INBOX") {
		t.Errorf("curl STARTTLS: %v\n%s", err, out)
	}
	// A new certificate on disk is served after ReloadTLS (SIGHUP).
	oldSerial := serial(t, p.IMAPS)
	cert, key, _ := proxytest.SelfSigned(t, t.TempDir())
	for src, dst := range map[string]string{cert: p.CertFile, key: p.KeyFile} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if serial(t, p.IMAPS) != oldSerial {
		t.Fatal("certificate changed before the reload")
	}
	if err := p.Server.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if serial(t, p.IMAPS) == oldSerial {
		t.Error("old certificate still served after ReloadTLS")
	}
	// A broken file keeps the current certificate.
	os.WriteFile(p.CertFile, []byte("garbage"), 0o600)
	if err := p.Server.ReloadTLS(); err == nil {
		t.Error("ReloadTLS accepted a broken certificate")
	}
	if serial(t, p.IMAPS) == oldSerial {
		t.Error("failed reload changed the certificate")
	}
}

func serial(t *testing.T, addr string) string {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestShutdownSendsBYE(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a OK")
	pre := dialRaw(t, p.IMAP)
	pre.expect("* OK")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Server.Shutdown(ctx) }()
	r.expect("* BYE")
	pre.expect("* BYE")
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.IMAP, time.Second); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
}

// TestClientAddress: Dovecot logs the client's address, not the proxy's,
// both with IMAP ID forwarding and with a PROXY v2 header.
func TestClientAddress(t *testing.T) {
	s := peers.Get(t)
	for _, mode := range []string{"id", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			p := proxytest.Start(t, s, &proxytest.Options{ClientAddress: mode})
			a := s.NewAccount(t)
			c := imapclient.New(proxytest.DialFrom(t, "127.0.0.2", p.IMAP), nil)
			defer c.Close()
			if err := c.Login(a.Email, a.Password).Wait(); err != nil {
				t.Fatal(err)
			}
			proxytest.WaitLogin(t, s.Dovecot, "imap", a.Email, "127.0.0.2")
		})
	}
}

// TestMasterLogin: with login = master the client's password is checked
// first, then the session logs in with the backend's master credentials
// (Dovecot "user*admin", Cyrus PLAIN authzid).
func TestMasterLogin(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{Login: proxy.LoginMaster})
	for _, backend := range []string{"dovecot", "cyrus"} {
		t.Run(backend, func(t *testing.T) {
			a := s.NewAccount(t)
			p.Route(t, a.Email, backend)
			c := login(t, p.IMAP, a.Email, a.Password)
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			c.Logout().Wait()
			r := dialRaw(t, p.IMAP)
			r.expect("* OK")
			r.send(fmt.Sprintf("a LOGIN %s wrong\r\n", a.Email))
			r.expect("a NO")
		})
	}
}

// TestRouteToCyrus: an account routed to Cyrus logs in there through the
// same front (passthrough).
func TestRouteToCyrus(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "cyrus")
	c := login(t, p.IMAP, a.Email, a.Password)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretsInLogs logs at trace level through logins of every kind and
// checks that no password or SASL message appears.
func TestNoSecretsInLogs(t *testing.T) {
	s := peers.Get(t)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: proxy.LevelTrace}))
	p := proxytest.Start(t, s, &proxytest.Options{Logger: log})
	a := s.NewAccount(t)
	c := login(t, p.IMAP, a.Email, a.Password)
	c.Logout().Wait()
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + a.Email + "\x00" + a.Password))
	r.send("a AUTHENTICATE PLAIN " + ir + "\r\n")
	r.expect("a OK")
	r2 := dialRaw(t, p.IMAP)
	r2.expect("* OK")
	r2.send(fmt.Sprintf("b LOGIN %s secret-wrong-pw\r\n", a.Email))
	r2.expect("b NO")
	out := buf.String()
	if !strings.Contains(out, "cmd=LOGIN") || !strings.Contains(out, a.Email) {
		t.Fatalf("expected trace and login records, got:\n%s", out)
	}
	for _, secret := range []string{a.Password, ir, "secret-wrong-pw"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret %q:\n%s", secret, out)
		}
	}
}

// TestBackendTLS chains two proxies: the front logs in at a backend that
// speaks implicit TLS or STARTTLS (a second proxy with a certificate, in
// front of Dovecot), and refuses to send credentials over plain text when
// the endpoint does not allow it.
func TestBackendTLS(t *testing.T) {
	s := peers.Get(t)
	back := proxytest.Start(t, s, &proxytest.Options{TLS: true})
	tc := back.ClientTLS()
	ep := func(addr string, mode proxy.TLSMode, plain bool) map[proxy.Protocol]proxy.Endpoint {
		return map[proxy.Protocol]proxy.Endpoint{proxy.IMAP: {Address: addr, TLS: mode, TLSConfig: tc, AllowPlaintext: plain}}
	}
	front := proxytest.Start(t, s, &proxytest.Options{ExtraBackends: []*proxy.Backend{
		{Name: "implicit", Endpoints: ep(back.IMAPS, proxy.TLSImplicit, false)},
		{Name: "starttls", Endpoints: ep(back.IMAP, proxy.TLSStartTLS, false)},
		{Name: "plain", Endpoints: ep(s.Dovecot.IMAP, proxy.TLSNone, false)},
		{Name: "badcert", Endpoints: map[proxy.Protocol]proxy.Endpoint{proxy.IMAP: {Address: back.IMAPS, TLS: proxy.TLSImplicit}}},
	}})
	// A backend the proxy refuses to send credentials to is a problem
	// before the credentials were checked: the answer is a wrong
	// password's (the reason is in the log).
	tests := map[string]string{"implicit": "a OK", "starttls": "a OK", "plain": "a NO [AUTHENTICATIONFAILED]", "badcert": "a NO [AUTHENTICATIONFAILED]"}
	for backend, want := range tests {
		t.Run(backend, func(t *testing.T) {
			a := s.NewAccount(t)
			front.Route(t, a.Email, backend)
			r := dialRaw(t, front.IMAP)
			r.expect("* OK")
			r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
			if got := r.expect("a "); !strings.HasPrefix(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// TestClientMasterLogin: on a master-login backend a client cannot name
// the master user itself ("user*admin" with the master password): the
// proxy refuses it with the one failure answer instead of sending
// "user*admin*admin" on (issue 10, finding 6). On a passthrough backend
// the identifier goes on untouched and Dovecot checks its master user.
func TestClientMasterLogin(t *testing.T) {
	s := peers.Get(t)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	master := proxytest.Start(t, s, &proxytest.Options{Login: proxy.LoginMaster, Logger: log})
	pass := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	id := a.Email + "*" + s.Dovecot.MasterUser

	r := dialRaw(t, master.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %q %s\r\n", id, s.Dovecot.MasterPassword))
	if got := r.expect("a "); got != "a NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Errorf("master backend, client-chosen master user: %q", got)
	}
	if out := buf.String(); !strings.Contains(out, "master user named by the client") {
		t.Errorf("no log record of the refused master login:\n%s", out)
	}

	r = dialRaw(t, pass.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %q %s\r\n", id, s.Dovecot.MasterPassword))
	if got := r.expect("a "); !strings.HasPrefix(got, "a OK") {
		t.Errorf("passthrough backend, Dovecot master login: %q", got)
	}
}

// TestLongUserNameLogged: a 60 KB user name is logged cut to
// proxy.MaxLoggedUser bytes (issue 10, finding 6).
func TestLongUserNameLogged(t *testing.T) {
	s := peers.Get(t)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := proxytest.Start(t, s, &proxytest.Options{Logger: log})
	long := strings.Repeat("x", 60<<10) + "@example.test" // within wire.MaxLiteral
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN {%d+}\r\n%s pw\r\n", len(long), long))
	r.expect("a NO")
	out := buf.String()
	if !strings.Contains(out, strings.Repeat("x", 200)) {
		t.Fatalf("no log record of the login:\n%.2000s", out)
	}
	if strings.Contains(out, strings.Repeat("x", proxy.MaxLoggedUser+1)) {
		t.Errorf("the log holds more than %d bytes of the user name (%d bytes of log)", proxy.MaxLoggedUser, len(out))
	}
}
