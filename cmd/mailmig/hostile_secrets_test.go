package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// TestHostileSecretsNeverShown: an operator runs the migration and the
// proxy at the most verbose log level with every credential from the
// environment or a file: the legacy backend's master password
// (env("…")), one account's password from env:NAME and another's from
// file:PATH in the CSV; clients log in on every protocol with right and
// wrong passwords and bearer tokens. An attacker who reads the logs, the
// metrics, the state (journal, snapshot, archives, the saved changes) or
// the output of validate, plan, apply, show, state and journal — a CI log,
// a support ticket — must learn none of them. Promise: none of the
// secret values, nor their base64 forms on the wire (SASL PLAIN, HTTP
// Basic), appears in any output stream or in any file the run wrote.
func TestHostileSecretsNeverShown(t *testing.T) {
	s := needPeers(t)
	secret := func(prefix string) string { b := make([]byte, 8); rand.Read(b); return prefix + hex.EncodeToString(b) }
	wrongPW, token := secret("wrong-pw-"), secret("bearer-tok-")
	t.Setenv("MAILMIG_HOSTILE_MASTER", s.Dovecot.MasterPassword)
	var a, b = s.NewAccount(t), s.NewAccount(t)
	t.Setenv("MAILMIG_HOSTILE_PW_A", a.Password)
	// One message each, so that apply imports and exports something.
	for _, acct := range []struct{ Email, Password string }{a, b} {
		c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		msg := testMessage(acct.Email, "hostile-secrets@example.test")
		cmd := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{})
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		c.Logout().Wait()
		c.Close()
	}

	var outputs []string // every output stream, named
	record := func(name, text string) { outputs = append(outputs, name+"\n"+text) }
	h := startHostile(t, hostileOptions{
		Legacy: fmt.Sprintf("  login = \"master\"\n  master {\n    user     = %q\n    password = env(\"MAILMIG_HOSTILE_MASTER\")\n  }\n", s.Dovecot.MasterUser),
		Blocks: `accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = ["mail"]
}
wave "all" {
  accounts = accounts.staff
}
`,
		Globals: []string{"-log-level", "trace"},
		Files: func(dir string) {
			os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
			if err := os.WriteFile(filepath.Join(dir, "secrets", "b"), []byte(b.Password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			csv := "address,source_login,target_login,password_ref\n" +
				a.Email + ",,,env:MAILMIG_HOSTILE_PW_A\n" +
				b.Email + ",,,file:secrets/b\n"
			if err := os.WriteFile(filepath.Join(dir, "accounts.csv"), []byte(csv), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		Before: func(h *hostile) {
			// The CLI, at trace level, before and after an apply.
			cli := func(args ...string) {
				var out, errb bytes.Buffer
				code := run(context.Background(), append([]string{"-f", h.planFile, "-log-level", "trace"}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
				record("mailmig "+strings.Join(args, " ")+fmt.Sprintf(" (exit %d)", code), out.String()+errb.String())
				if args[0] == "apply" && code != exitOK {
					t.Fatalf("mailmig apply: exit %d\n%s%s", code, out.String(), errb.String())
				}
			}
			cli("validate")
			cli("validate", "-json")
			cli("plan")
			cli("plan", "-json")
			cli("plan", "-markdown")
			cli("plan", "-check")
			cli("plan", "-check", "-json")
			cli("plan", "-check", "-markdown")
			changes := filepath.Join(h.dir, "changes.json") // not in the test's working directory
			cli("plan", "-out", changes)
			cli("show", changes)
			cli("apply", "-auto-approve")
			cli("plan", "-detailed-exitcode")
			cli("show")
			cli("show", "-json")
			cli("state", "list")
			cli("state", "show", a.Email)
			cli("state", "show", b.Email)
			cli("state", "show", "-json", a.Email)
			cli("journal")
			cli("journal", "-json")
			cli("journal", "verify")
		},
	})

	// Clients on every protocol, right and wrong passwords and tokens.
	plainIR := func(user, pw string) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pw))
	}
	xoauth := base64.StdEncoding.EncodeToString([]byte("user=" + a.Email + "\x01auth=Bearer " + token + "\x01\x01"))
	imapLines := []string{
		"a LOGIN " + a.Email + " " + a.Password,
		"a LOGIN " + a.Email + " " + wrongPW,
		"a AUTHENTICATE PLAIN " + plainIR(a.Email, a.Password),
		"a AUTHENTICATE PLAIN " + plainIR(b.Email, wrongPW),
		"a AUTHENTICATE XOAUTH2 " + xoauth,
	}
	for _, l := range imapLines {
		r := h.dial(t, "imap")
		r.greet("imap")
		r.send(l + "\r\n")
		r.until("a ")
		r.send("z LOGOUT\r\n")
		r.rest()
	}
	for _, pw := range []string{a.Password, wrongPW} {
		r := h.dial(t, "pop3")
		r.greet("pop3")
		r.send("USER " + a.Email + "\r\nPASS " + pw + "\r\n")
		r.until("+OK")
		r.line()
		r.send("QUIT\r\n")
		r.rest()
	}
	for _, pw := range []string{b.Password, wrongPW} {
		r := h.dial(t, "managesieve")
		r.greet("managesieve")
		r.send("AUTHENTICATE \"PLAIN\" \"" + plainIR(b.Email, pw) + "\"\r\n")
		r.line()
		r.send("LOGOUT\r\n")
		r.rest()
	}
	for _, pw := range []string{wrongPW, a.Password} {
		nc, err := net.DialTimeout("tcp", h.addr["submission"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := gosmtp.NewClient(nc)
		c.Hello("client.example")
		c.Auth(sasl.NewPlainClient("", a.Email, pw))
		c.Quit()
		c.Close()
	}
	h.cli("routes", "set", b.Email, "cyrus")
	for _, authz := range []string{basicAuth(b.Email, b.Password), basicAuth(b.Email, wrongPW), "Bearer " + token} {
		rawHTTP(t, h.addr["http"], "GET /jmap/ HTTP/1.1\r\nHost: x\r\nAuthorization: "+authz+"\r\nConnection: close\r\n\r\n")
	}
	record("/metrics", h.metrics())
	resp, err := http.Get("http://" + h.addr["admin"] + "/healthz")
	if err == nil {
		resp.Body.Close()
	}

	// Stop the proxy so that everything it would write is written.
	h.px.cmd.Process.Signal(os.Interrupt)
	h.px.wait(10 * time.Second)
	var stdout []string
	for l := range h.px.lines {
		stdout = append(stdout, l)
	}
	record("mailmig proxy stdout", strings.Join(stdout, "\n"))
	record("mailmig proxy stderr", h.px.stderr.String())
	if !strings.Contains(h.px.stderr.String(), a.Email) {
		t.Errorf("the proxy's trace log does not show the logins at all (is it logging?):\n%.2000s", h.px.stderr.String())
	}

	secrets := map[string]string{
		"account A's password (env)":  a.Password,
		"account B's password (file)": b.Password,
		"master password (env)":       s.Dovecot.MasterPassword,
		"wrong password":              wrongPW,
		"bearer token":                token,
		"SASL PLAIN of A":             plainIR(a.Email, a.Password),
		"SASL PLAIN of B":             plainIR(b.Email, b.Password),
		"XOAUTH2 response":            xoauth,
		"Basic credentials of B":      strings.TrimPrefix(basicAuth(b.Email, b.Password), "Basic "),
	}
	for _, out := range outputs {
		name, text, _ := strings.Cut(out, "\n")
		for what, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s shows the %s:\n%.3000s", name, what, text)
			}
		}
	}
	// Every file the run wrote: state, journal, snapshot, archives,
	// route table, saved changes. The inputs that hold a secret on
	// purpose (the password file) are skipped.
	files := 0
	filepath.WalkDir(h.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == filepath.Join(h.dir, "secrets", "b") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files++
		for what, v := range secrets {
			if bytes.Contains(data, []byte(v)) {
				t.Errorf("%s holds the %s", p, what)
			}
		}
		return nil
	})
	if files < 5 {
		t.Errorf("only %d files under %s: did the run write its state?", files, h.dir)
	}
	for _, out := range outputs {
		name, text, _ := strings.Cut(out, "\n")
		t.Logf("%s: %d bytes", name, len(text))
	}
	t.Logf("%d outputs and %d files checked", len(outputs), files)
}
