package pop3_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// TestMain stops a peer set started for these tests and fails the run when
// the proxy recovered a panic.
func TestMain(m *testing.M) { proxytest.Main(m) }

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

func (tc *transcript) cmd(s, wantPrefix string) string {
	tc.t.Helper()
	if s != "" {
		if _, err := tc.nc.Write([]byte(s + "\r\n")); err != nil {
			tc.t.Fatal(err)
		}
	}
	l, err := tc.br.ReadString('\n')
	if err != nil {
		tc.t.Fatalf("%q: read: %v", s, err)
	}
	l = strings.TrimRight(l, "\r\n")
	if !strings.HasPrefix(l, wantPrefix) {
		tc.t.Fatalf("%q: got %q, want prefix %q", s, l, wantPrefix)
	}
	return l
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

func TestCurlPOP3(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	// One message, appended directly at the backend with curl.
	f := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(f, []byte("Subject: pop through proxy\r\n\r\nhello\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := curl(t, "--user", a.Email+":"+a.Password, "-T", f, "imap://"+s.Dovecot.IMAP+"/INBOX"); err != nil {
		t.Fatalf("append: %v %s", err, out)
	}
	tests := map[string][]string{
		"AUTH=PLAIN": {"--login-options", "AUTH=PLAIN"},
		"AUTH=LOGIN": {"--login-options", "AUTH=LOGIN"},
		"default":    {},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			out, err := curl(t, append(args, "--user", a.Email+":"+a.Password, "pop3://"+p.POP3+"/1")...)
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.Contains(out, "pop through proxy") {
				t.Errorf("RETR 1 = %q", out)
			}
		})
	}
	out, err := curl(t, "--user", a.Email+":wrong", "pop3://"+p.POP3+"/")
	if err == nil {
		t.Errorf("wrong password accepted: %s", out)
	}
}

func TestPOP3Transcripts(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	down := s.NewAccount(t)
	p.Route(t, down.Email, "down")

	r := dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("CAPA", "+OK")
	for {
		l := r.cmd("", "")
		if l == "." {
			break
		}
	}
	r.cmd("STLS", "-ERR")
	r.cmd("STAT", "-ERR")
	r.cmd("PASS x", "-ERR")
	r.cmd("USER "+a.Email, "+OK")
	r.cmd("PASS wrong", "-ERR [AUTH]")
	r.cmd("USER nobody@example.test", "+OK")
	r.cmd("PASS pw", "-ERR [AUTH]")
	r.cmd("USER "+down.Email, "+OK")
	// A backend that is down: the answer of a wrong password (nothing is
	// revealed before a backend checked the credentials).
	r.cmd("PASS "+down.Password, "-ERR [AUTH] Authentication failed.")
	r.cmd("AUTH CRAM-MD5", "-ERR")
	r.cmd("AUTH PLAIN", "+ ")
	r.cmd("*", "-ERR")
	r.cmd("AUTH PLAIN !!!", "-ERR")
	r.cmd("AUTH LOGIN", "+ ")
	r.cmd(base64.StdEncoding.EncodeToString([]byte(a.Email)), "+ ")
	r.cmd(base64.StdEncoding.EncodeToString([]byte(a.Password)), "+OK")
	r.cmd("STAT", "+OK 0 0")
	r.cmd("QUIT", "+OK")

	// USER/PASS with a successful login.
	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("USER "+a.Email, "+OK")
	r.cmd("PASS "+a.Password, "+OK")
	r.cmd("STAT", "+OK 0 0")
	r.cmd("QUIT", "+OK")

	// Long line.
	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd(strings.Repeat("A", 2000), "-ERR")

	// A flip closes the session; the reconnect lands on the new backend.
	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+a.Email+"\x00"+a.Password)), "+OK")
	p.Route(t, a.Email, "down")
	r.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if l, err := r.br.ReadString('\n'); err == nil {
		t.Errorf("session still open after flip: %q", l)
	}
	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd(fmt.Sprintf("USER %s", a.Email), "+OK")
	r.cmd("PASS "+a.Password, "-ERR [AUTH] Authentication failed.")
}

func TestPOP3HAProxy(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{ClientAddress: "proxy"})
	a := s.NewAccount(t)
	out, err := curl(t, "--user", a.Email+":"+a.Password, "pop3://"+p.POP3+"/")
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
}

// TestClientAddress: Dovecot logs the client's address, with XCLIENT and
// with a PROXY v2 header.
func TestClientAddress(t *testing.T) {
	s := peers.Get(t)
	for _, mode := range []string{"id", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			p := proxytest.Start(t, s, &proxytest.Options{ClientAddress: mode})
			a := s.NewAccount(t)
			nc := proxytest.DialFrom(t, "127.0.0.2", p.POP3)
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			r := &transcript{t: t, nc: nc, br: bufio.NewReader(nc)}
			r.cmd("", "+OK")
			r.cmd("USER "+a.Email, "+OK")
			r.cmd("PASS "+a.Password, "+OK")
			proxytest.WaitLogin(t, s.Dovecot, "pop3", a.Email, "127.0.0.2")
			r.cmd("QUIT", "+OK")
		})
	}
}

// TestFlipCountsEndedSession: a bridged POP3 session that a route flip
// ends is counted in mailmig_proxy_sessions_ended_by_route_total (POP3 has
// no goodbye line, so this used to be missed), a session ended by QUIT is
// not, and the reconnect lands on the new backend.
func TestFlipCountsEndedSession(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	// A marker message only on the second Dovecot.
	f := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(f, []byte("Subject: on dovecot2\r\n\r\nx\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := curl(t, "--user", a.Email+":"+a.Password, "-T", f, "imap://"+s.Dovecot2.IMAP+"/INBOX"); err != nil {
		t.Fatalf("append: %v %s", err, out)
	}
	ended := func() int64 { return p.Server.Metrics().Get(proxy.MetricSessionsEnded, "proto", "pop3") }

	r := dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("USER "+a.Email, "+OK")
	r.cmd("PASS "+a.Password, "+OK")
	r.cmd("STAT", "+OK 0 0")
	r.cmd("QUIT", "+OK")
	if n := ended(); n != 0 {
		t.Errorf("after QUIT: sessions ended by route = %d, want 0", n)
	}

	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("USER "+a.Email, "+OK")
	r.cmd("PASS "+a.Password, "+OK")
	r.cmd("STAT", "+OK 0 0")
	p.Route(t, a.Email, "dovecot2")
	r.nc.SetDeadline(time.Now().Add(5 * time.Second))
	if l, err := r.br.ReadString('\n'); err == nil {
		t.Fatalf("session still open after the flip: %q", l)
	}
	if n := ended(); n != 1 {
		t.Errorf("after the flip: sessions ended by route = %d, want 1", n)
	}

	r = dialRaw(t, p.POP3)
	r.cmd("", "+OK")
	r.cmd("USER "+a.Email, "+OK")
	r.cmd("PASS "+a.Password, "+OK")
	r.cmd("STAT", "+OK 1 ")
	r.cmd("QUIT", "+OK")
	if n := ended(); n != 1 {
		t.Errorf("after the reconnect: sessions ended by route = %d, want 1", n)
	}
}
