package sieve_test

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

func (tc *transcript) send(s string) {
	tc.t.Helper()
	if _, err := tc.nc.Write([]byte(s)); err != nil {
		tc.t.Fatal(err)
	}
}

// until reads lines up to one starting with OK, NO or BYE and returns it.
func (tc *transcript) until() string {
	tc.t.Helper()
	for {
		l, err := tc.br.ReadString('\n')
		if err != nil {
			tc.t.Fatalf("read: %v", err)
		}
		l = strings.TrimRight(l, "\r\n")
		for _, p := range []string{"OK", "NO", "BYE"} {
			if strings.HasPrefix(l, p) {
				return l
			}
		}
	}
}

func sieveConnect(t *testing.T, addr, user, pass string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("sieve-connect"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sieve-connect is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("sieve-connect not installed")
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "sieve-connect", append([]string{"--server", host, "--port", port, "--user", user, "--clearchan", "--passwordfd", "3", "--notlsverify"}, args...)...)
	cmd.ExtraFiles = []*os.File{f}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSieveConnect(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	script := filepath.Join(t.TempDir(), "filter.sieve")
	if err := os.WriteFile(script, []byte("require \"fileinto\";\nif header :contains \"subject\" \"list\" { fileinto \"Lists\"; }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := sieveConnect(t, p.ManageSieve, a.Email, a.Password, "--upload", "--localsieve", script, "--remotesieve", "proxied"); err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	out, err := sieveConnect(t, p.ManageSieve, a.Email, a.Password, "--list")
	if err != nil || !strings.Contains(out, "proxied") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// The script landed on the first Dovecot.
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.Dovecot.MaildirPath(a.Email)), "sieve", "proxied.sieve")); err != nil {
		t.Errorf("script not on the backend: %v", err)
	}
	if out, err := sieveConnect(t, p.ManageSieve, a.Email, "wrong", "--list"); err == nil {
		t.Errorf("wrong password accepted:\n%s", out)
	}
}

func TestSieveTranscripts(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	down := s.NewAccount(t)
	p.Route(t, down.Email, "down")
	plain := func(user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	}
	tests := map[string]struct {
		send string
		want string
	}{
		"capability":   {"CAPABILITY\r\n", "OK"},
		"noop tag":     {"NOOP \"x1\"\r\n", "OK (TAG \"x1\")"},
		"unknown":      {"LISTSCRIPTS\r\n", "NO"},
		"starttls":     {"STARTTLS\r\n", "NO"},
		"wrong pw":     {fmt.Sprintf("AUTHENTICATE \"PLAIN\" \"%s\"\r\n", plain(a.Email, "wrong")), "NO"},
		"unknown user": {fmt.Sprintf("AUTHENTICATE \"PLAIN\" \"%s\"\r\n", plain("nobody@example.test", "x")), "NO"},
		"backend down": {fmt.Sprintf("AUTHENTICATE \"PLAIN\" \"%s\"\r\n", plain(down.Email, down.Password)), `NO "Authentication failed."`},
		"bad mech":     {"AUTHENTICATE \"CRAM-MD5\"\r\n", "NO"},
		"bad syntax":   {"AUTHENTICATE PLAIN\r\n", "NO"},
		"big literal":  {"AUTHENTICATE \"PLAIN\" {999999+}\r\n", "BYE"},
		"logout":       {"LOGOUT\r\n", "OK"},
		"literal ok":   {fmt.Sprintf("AUTHENTICATE \"PLAIN\" {%d+}\r\n%s\r\n", len(plain(a.Email, a.Password)), plain(a.Email, a.Password)), "OK"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.ManageSieve)
			r.until()
			r.send(tc.send)
			if got := r.until(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %q, want prefix %q", got, tc.want)
			}
		})
	}
	// Continuation with a quoted response; then a flip ends the session
	// with BYE.
	r := dialRaw(t, p.ManageSieve)
	r.until()
	r.send("AUTHENTICATE \"PLAIN\"\r\n")
	l, _ := r.br.ReadString('\n')
	if strings.TrimSpace(l) != `""` {
		t.Fatalf("challenge = %q", l)
	}
	r.send(`"` + plain(a.Email, a.Password) + "\"\r\n")
	if got := r.until(); !strings.HasPrefix(got, "OK") {
		t.Fatalf("login: %q", got)
	}
	r.send("LISTSCRIPTS\r\n")
	r.until()
	p.Route(t, a.Email, "dovecot2")
	if got := r.until(); !strings.HasPrefix(got, "BYE (TRYLATER)") {
		t.Errorf("after flip: %q", got)
	}
}

// TestClientAddress: Dovecot logs the client's address (XCLIENT).
func TestClientAddress(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	nc := proxytest.DialFrom(t, "127.0.0.2", p.ManageSieve)
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := &transcript{t: t, nc: nc, br: bufio.NewReader(nc)}
	r.until()
	r.send(fmt.Sprintf("AUTHENTICATE \"PLAIN\" \"%s\"\r\n", base64.StdEncoding.EncodeToString([]byte("\x00"+a.Email+"\x00"+a.Password))))
	if got := r.until(); !strings.HasPrefix(got, "OK") {
		t.Fatalf("login: %q", got)
	}
	proxytest.WaitLogin(t, s.Dovecot, "managesieve", a.Email, "127.0.0.2")
}
