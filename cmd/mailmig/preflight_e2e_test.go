package main

import (
	"encoding/json"
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

	// "routes" still changes what the running proxy does: without the
	// default, the unknown account's login is refused (within a bounded
	// number of tries while the proxy follows the table).
	runCLI(t, dir, exitOK, "-f", planFile, "routes", "default", "-")
	refused := false
	for i := 0; i < 50 && !refused; i++ {
		c, err := imapclient.DialInsecure(p.addr["imap"], nil)
		if err != nil {
			t.Fatal(err)
		}
		refused = c.Login(a.Email, a.Password).Wait() != nil
		c.Close()
		if !refused {
			<-time.After(100 * time.Millisecond)
		}
	}
	if !refused {
		t.Error("after \"routes default -\" the proxy still routes the unknown account")
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

// TestPreflightCheck runs "plan -check" against the real Dovecot (source)
// and Cyrus (JMAP target) on three accounts: one with a wrong password,
// one that does not exist on Cyrus and a good one. Exactly the first two
// are reported, each naming its login and password_ref, no secret value
// appears in any output (human, -json, -markdown, debug log), and nothing
// is written: the plan's directory is byte for byte the same (no archive,
// no journal). Then a Cyrus quota below the good account's size is
// reported as quota_too_small.
func TestPreflightCheck(t *testing.T) {
	s := needPeers(t)
	good := s.NewAccount(t)
	wrong := s.NewAccount(t)
	missing := s.NewSourceAccount(t)
	wrongSecret := "not-" + wrong.Password
	t.Setenv("PF_GOOD_PW", good.Password)
	t.Setenv("PF_WRONG_PW", wrongSecret)
	t.Setenv("PF_MISSING_PW", missing.Password)
	secrets := []string{good.Password, wrong.Password, wrongSecret, missing.Password}

	// Some mail at the source, so that the good account has a size.
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(good.Email, good.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		msg := testMessage(good.Email, fmt.Sprintf("pf-%d@example.test", i))
		msg = append(msg, []byte(strings.Repeat("filler line of the pre-flight test\r\n", 10))...)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
	c.Close()

	dir := t.TempDir()
	csv := fmt.Sprintf("address,source_login,target_login,password_ref\n%s,,,env:PF_GOOD_PW\n%s,,,env:PF_WRONG_PW\n%s,,,env:PF_MISSING_PW\n",
		good.Email, wrong.Email, missing.Email)
	if err := os.WriteFile(filepath.Join(dir, "accounts.csv"), []byte(csv), 0o600); err != nil {
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
  limits {
    connections = 2
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
`, s.Dovecot.IMAP, s.Cyrus.IMAP, s.Cyrus.JMAPURL())
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	before := treeSnapshot(t, dir)

	human := runCLI(t, dir, exitError, "-f", planFile, "-log-level", "debug", "plan", "-check", "-no-color")
	t.Logf("plan -check:\n%s", human)
	for _, want := range []string{
		"✓ " + good.Email,
		"✗ " + wrong.Email,
		fmt.Sprintf(`source legacy refused login %q with password_ref = "env:PF_WRONG_PW"`, wrong.Email),
		"✗ " + missing.Email,
		fmt.Sprintf(`target cyrus: account probably missing: it refused login %q with password_ref = "env:PF_MISSING_PW"`, missing.Email),
		"Pre-flight: 3 accounts checked, 2 failed",
	} {
		if !strings.Contains(human, want) {
			t.Errorf("plan -check output lacks %q:\n%s", want, human)
		}
	}

	jsonOut := runCLI(t, dir, exitError, "-f", planFile, "plan", "-check", "-json")
	var rep struct {
		Checked, Failed int
		Accounts        []struct {
			Account  string
			Source   struct{ Size int64 }
			Findings []struct {
				Problem, Side, Backend, Login string
				SecretRef                     string `json:"secret_ref"`
				Inferred                      bool
			}
		}
	}
	if err := jsonUnmarshal(jsonOut, &rep); err != nil {
		t.Fatalf("plan -check -json: %v\n%s", err, jsonOut)
	}
	if rep.Checked != 3 || rep.Failed != 2 {
		t.Errorf("plan -check -json: checked %d, failed %d; want 3 and 2", rep.Checked, rep.Failed)
	}
	got := map[string]string{}
	for _, a := range rep.Accounts {
		var fs []string
		for _, f := range a.Findings {
			fs = append(fs, fmt.Sprintf("%s %s %s %s %s inferred=%v", f.Side, f.Backend, f.Problem, f.Login, f.SecretRef, f.Inferred))
		}
		got[a.Account] = strings.Join(fs, "; ")
		if a.Account == good.Email && a.Source.Size <= 0 {
			t.Errorf("good account: source size %d, want the STATUS SIZE total", a.Source.Size)
		}
	}
	want := map[string]string{
		good.Email: "",
		wrong.Email: fmt.Sprintf("source legacy login_refused %s env:PF_WRONG_PW inferred=false; target cyrus login_refused %s env:PF_WRONG_PW inferred=false",
			wrong.Email, wrong.Email),
		missing.Email: fmt.Sprintf("target cyrus account_missing %s env:PF_MISSING_PW inferred=true", missing.Email),
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("findings of %s:\n got %q\nwant %q", k, got[k], w)
		}
	}

	md := runCLI(t, dir, exitError, "-f", planFile, "plan", "-check", "-markdown")
	if !strings.Contains(md, "| "+wrong.Email+" | source | legacy |") || !strings.Contains(md, "| "+missing.Email+" | target | cyrus |") || strings.Contains(md, "| "+good.Email+" |") {
		t.Errorf("plan -check -markdown:\n%s", md)
	}

	for _, out := range []string{human, jsonOut, md} {
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("a password appears in the output:\n%s", out)
			}
		}
	}
	if after := treeSnapshot(t, dir); after != before {
		t.Errorf("plan -check wrote to the plan's directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("plan -check created the state directory (archives, journal): %v", err)
	}

	// A target quota below the source's size: 1 KiB at Cyrus.
	setCyrusQuota(t, s, good.Email, 1)
	t.Cleanup(func() { setCyrusQuota(t, s, good.Email, -1) })
	q := runCLI(t, dir, exitError, "-f", planFile, "plan", "-check", "-json", "-target", good.Email)
	if !strings.Contains(q, `"problem": "quota_too_small"`) || !strings.Contains(q, `"free_bytes"`) && !strings.Contains(q, `"need_bytes"`) {
		t.Errorf("plan -check with a 1 KiB target quota: want quota_too_small:\n%s", q)
	}
}

// setCyrusQuota sets (kib ≥ 0) or removes (kib < 0) the STORAGE quota of
// the user's Cyrus mailboxes, as the Cyrus admin.
func setCyrusQuota(t *testing.T, s *peers.Set, email string, kib int64) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("admin", "adminpw").Wait(); err != nil {
		t.Fatal(err)
	}
	limits := map[imap.QuotaResourceType]int64{}
	if kib >= 0 {
		limits[imap.QuotaResourceStorage] = kib
	}
	if err := c.SetQuota("user/"+email, limits).Wait(); err != nil {
		t.Fatalf("SETQUOTA user/%s: %v", email, err)
	}
	c.Logout().Wait()
}

// treeSnapshot lists every file under dir with its size and modification
// time.
func treeSnapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %s\n", p, fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
