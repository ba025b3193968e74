package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/internal/peers"
)

// proxyRoutingPlan is a plan whose proxy listens for IMAP, SMTP and LMTP
// in front of the real Dovecot ("legacy") and Cyrus; routing is the extra
// text of the proxy block (default_backend, domains).
func proxyRoutingPlan(s *peers.Set, routing string) string {
	return fmt.Sprintf(`backend "legacy" {
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
  jmap {
    url = %q
  }
}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = ["nobody@example.test"]
  data = ["mail"]
}
proxy {
  listen {
    imap = "127.0.0.1:0"
    smtp = "127.0.0.2:0"
    lmtp = "127.0.0.3:0"
  }
  auth_failure_delay = "0s"
%s
}
`, s.Dovecot.IMAP, s.Dovecot.LMTP, s.Cyrus.JMAPURL(), routing)
}

// TestProxyPlanRouting starts the real `mailmig proxy` on a fresh route
// table: without default_backend it warns (log line at warn level and a
// line on stderr); with the plan's default_backend and domains a login of
// an account the table does not know goes to the default backend, and
// inbound mail for the declared domain is accepted on port 25 and over
// LMTP and delivered to Dovecot.
func TestProxyPlanRouting(t *testing.T) {
	s := needPeers(t)
	a := s.NewAccount(t)

	// An empty table and no default: loud warning.
	dir := t.TempDir()
	planFile := filepath.Join(dir, "migration.hcl")
	if err := os.WriteFile(planFile, []byte(proxyRoutingPlan(s, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxyProcess(t, dir, planFile, 3)
	// Standard error is copied from a pipe: poll (bounded) for the lines.
	var errText string
	for i := 0; i < 100; i++ {
		errText = p.stderr.String()
		if strings.Contains(errText, "Warning: the route table") && strings.Contains(errText, "level=WARN msg=\"route table empty and no default backend") {
			break
		}
		<-time.After(50 * time.Millisecond)
	}
	if !strings.Contains(errText, "Warning: the route table") || !strings.Contains(errText, "level=WARN msg=\"route table empty and no default backend") {
		t.Errorf("proxy on an empty table without default: no warning on stderr and in the log:\n%s", errText)
	}
	p.cmd.Process.Kill()
	p.wait(10 * time.Second)

	// The plan's default backend and domains, in a new directory (a new
	// route table).
	dir = t.TempDir()
	planFile = filepath.Join(dir, "migration.hcl")
	routing := "  default_backend = backend.legacy\n  domains         = [\"example.test\"]\n"
	if err := os.WriteFile(planFile, []byte(proxyRoutingPlan(s, routing)), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startProxyProcess(t, dir, planFile, 3)
	if strings.Contains(p.stderr.String(), "Warning") || strings.Contains(p.stderr.String(), "level=WARN") {
		t.Errorf("proxy with a default backend warned:\n%s", p.stderr)
	}
	out := runCLI(t, dir, exitOK, "-f", planFile, "routes", "list", "-json")
	if !strings.Contains(out, `"default": "legacy"`) || !strings.Contains(out, `"example.test"`) {
		t.Errorf("routes list after start: want default legacy and domain example.test:\n%s", out)
	}

	// A login for an account not in the table reaches Dovecot.
	c, err := imapclient.DialInsecure(p.addr["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatalf("login of %s (not in the route table) through the proxy: %v", a.Email, err)
	}
	c.Logout().Wait()
	c.Close()

	// Inbound mail for the declared domain: port 25 and LMTP.
	mx, err := gosmtp.Dial(p.addr["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if err := mx.SendMail("s@remote.example", []string{a.Email}, strings.NewReader("Message-ID: <pf-smtp@example.test>\r\nSubject: via port 25\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("SMTP delivery for the declared domain: %v", err)
	}
	mx.Quit()
	lc, err := net.Dial("tcp", p.addr["lmtp"])
	if err != nil {
		t.Fatal(err)
	}
	lm := gosmtp.NewClientLMTP(lc)
	if err := lm.SendMail("s@remote.example", []string{a.Email}, strings.NewReader("Message-ID: <pf-lmtp@example.test>\r\nSubject: via lmtp\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("LMTP delivery for the declared domain: %v", err)
	}
	lm.Quit()
	// A domain neither declared nor in the table is still refused.
	mx, err = gosmtp.Dial(p.addr["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if err := mx.SendMail("s@remote.example", []string{"x@elsewhere.example"}, strings.NewReader("Subject: relay\r\n\r\nhi\r\n")); err == nil {
		t.Error("SMTP accepted mail for an undeclared domain")
	}
	mx.Close()

	// Both are in Dovecot.
	if n := dovecotCount(t, s, a); n != 2 {
		t.Errorf("Dovecot INBOX of %s holds %d messages, want the 2 delivered through the proxy", a.Email, n)
	}
}

// dovecotCount is the number of messages in the account's INBOX at the
// real Dovecot.
func dovecotCount(t *testing.T, s *peers.Set, a peers.Account) int {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return int(*st.NumMessages)
}

// runCLI runs mailmig in-process in dir and returns its output.
func runCLI(t *testing.T, dir string, want int, args ...string) string {
	t.Helper()
	var out, errb strings.Builder
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	code := run(t.Context(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != want {
		t.Fatalf("mailmig %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String() + errb.String()
}
