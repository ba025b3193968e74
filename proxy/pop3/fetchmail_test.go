package pop3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// fetchmailRun is one fetchmail configuration: an rc file (it holds the
// password, mode 0600 as fetchmail demands), a home directory for its
// UIDL and pid files and an MDA that writes each message into its own file
// of dir.
type fetchmailRun struct {
	t         *testing.T
	home, dir string
	addr      string
	acct      peers.Account
	// tls holds fetchmail's TLS options; default sslproto '' (no STLS:
	// fetchmail 6.4 sends STLS even when CAPA does not offer it and gives
	// up on the -ERR, with Dovecot directly too).
	tls string
}

func newFetchmail(t *testing.T, addr string, a peers.Account) *fetchmailRun {
	t.Helper()
	if _, err := exec.LookPath("fetchmail"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("fetchmail is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("fetchmail is not installed (testdata/peers/install.sh installs it)")
	}
	home := t.TempDir()
	f := &fetchmailRun{t: t, home: home, dir: filepath.Join(home, "delivered"), addr: addr, acct: a, tls: "sslproto ''"}
	if err := os.Mkdir(f.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mda := filepath.Join(home, "mda.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec cat >\"$(mktemp %s/msg.XXXXXXXX)\"\n", f.dir)
	if err := os.WriteFile(mda, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return f
}

// run runs fetchmail once in keep or nokeep mode (always with UIDL
// tracking) and returns its exit code (0: mail delivered, 1: no new mail)
// and its output.
func (f *fetchmailRun) run(keep bool) (int, string) {
	f.t.Helper()
	host, port, _ := strings.Cut(f.addr, ":")
	keepOpt := "keep"
	if !keep {
		keepOpt = "nokeep"
	}
	rc := fmt.Sprintf(`set no bouncemail
set no syslog
set invisible
poll %s service %s protocol POP3 auth password uidl timeout 10
  user "%s" password "%s" is "nobody" here
  %s
  %s
  no rewrite
  mda "%s"
`, host, port, f.acct.Email, f.acct.Password, f.tls, keepOpt, filepath.Join(f.home, "mda.sh"))
	rcFile := filepath.Join(f.home, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fetchmail", "-f", rcFile, "--idfile", filepath.Join(f.home, "fetchids"),
		"--pidfile", filepath.Join(f.home, "fetchmail.pid"), "--nodetach")
	cmd.Env = append(os.Environ(), "HOME="+f.home, "FETCHMAILHOME="+f.home)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	f.t.Fatalf("fetchmail did not run: %v", err)
	return -1, ""
}

// delivered returns the SHA-256 of every message the MDA wrote, by file.
func (f *fetchmailRun) delivered() map[string]string {
	f.t.Helper()
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(f.dir, e.Name()))
		if err != nil {
			f.t.Fatal(err)
		}
		out[e.Name()] = lfHash(b)
	}
	return out
}

// lfHash hashes a message with LF line ends (fetchmail hands the MDA LF).
func lfHash(b []byte) string {
	h := sha256.Sum256(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	return hex.EncodeToString(h[:])
}

// appendIMAP appends messages to the INBOX of a backend directly.
func appendIMAP(t *testing.T, addr string, a peers.Account, msgs ...[]byte) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		cmd := c.Append("INBOX", int64(len(m)), nil)
		cmd.Write(m)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
}

// inboxCount returns the number of messages in a backend's INBOX.
func inboxCount(t *testing.T, addr string, a peers.Account) uint32 {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	return sel.NumMessages
}

// wantDelivered checks that the files delivered since before are exactly
// the messages want (as a multiset of hashes).
func wantDelivered(t *testing.T, before, after map[string]string, want ...[]byte) {
	t.Helper()
	need := map[string]int{}
	for _, m := range want {
		need[lfHash(m)]++
	}
	got := map[string]int{}
	for name, h := range after {
		if _, ok := before[name]; !ok {
			got[h]++
		}
	}
	for h, n := range need {
		if got[h] != n {
			t.Errorf("message %.12s delivered %d times, want %d", h, got[h], n)
		}
	}
	for h, n := range got {
		if need[h] == 0 {
			t.Errorf("unexpected message %.12s delivered %d times (bytes changed on the way?)", h, n)
		}
	}
}

// TestFetchmail fetches an account through the proxy's POP3 front with
// fetchmail (UIDL tracking, MDA delivery): 25 corpus messages loaded into
// Dovecot's INBOX arrive exactly once and byte-equal (fetchmail's LF line
// ends; "invisible" keeps it from adding a Received header); a second run
// in keep mode finds nothing new (exit 1); after two messages are added at
// the source, a nokeep run delivers exactly those two and deletes them at
// the backend (DELE through the proxy), leaving the 25 others; a last run
// fetches nothing.
func TestFetchmail(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	fm := newFetchmail(t, p.POP3, a)

	full := corpus.Generate(corpus.Options{Seed: 7, Messages: 120, Folders: -1, MaxSize: 64 << 10})
	var msgs [][]byte
	for _, m := range full.InFolder("INBOX") {
		if len(msgs) < 25 {
			msgs = append(msgs, m.Bytes())
		}
	}
	appendIMAP(t, s.Dovecot.IMAP, a, msgs...)

	start := time.Now()
	code, out := fm.run(true)
	if code != 0 {
		t.Fatalf("first fetchmail run: exit %d:\n%s", code, out)
	}
	t.Logf("first fetchmail run: %d messages in %v", len(msgs), time.Since(start))
	first := fm.delivered()
	wantDelivered(t, nil, first, msgs...)
	if t.Failed() {
		t.FailNow()
	}

	if code, out = fm.run(true); code != 1 {
		t.Fatalf("second run (keep, UIDL): exit %d, want 1 (no new mail):\n%s", code, out)
	}
	second := fm.delivered()
	wantDelivered(t, first, second)

	more := [][]byte{
		[]byte("From: a@example.test\r\nSubject: new one\r\nMessage-ID: <fm1." + a.Email + ">\r\n\r\nfirst new\r\n.\r\n..dots\r\n"),
		[]byte("From: a@example.test\r\nSubject: new two\r\nMessage-ID: <fm2." + a.Email + ">\r\n\r\nsecond new Gr\u00fc\u00dfe\r\n"),
	}
	appendIMAP(t, s.Dovecot.IMAP, a, more...)
	if code, out = fm.run(false); code != 0 {
		t.Fatalf("third run (nokeep): exit %d:\n%s", code, out)
	}
	third := fm.delivered()
	wantDelivered(t, second, third, more...)
	if n := inboxCount(t, s.Dovecot.IMAP, a); n != uint32(len(msgs)) {
		t.Errorf("after the nokeep run Dovecot's INBOX has %d messages, want the %d older ones", n, len(msgs))
	}
	if code, out = fm.run(true); code != 1 {
		t.Fatalf("last run: exit %d, want 1 (no new mail):\n%s", code, out)
	}
	wantDelivered(t, third, fm.delivered())
}

// TestFetchmailSTLS: with a certificate the proxy offers STLS, and
// fetchmail upgrades the connection, checks the proxy's certificate
// (given as its trust anchor, host name "localhost") and fetches a message
// through the encrypted session. With another certificate as trust anchor
// fetchmail refuses the session and fetches nothing.
func TestFetchmailSTLS(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{TLS: true})
	a := s.NewAccount(t)
	_, port, _ := strings.Cut(p.POP3, ":")
	fm := newFetchmail(t, "localhost:"+port, a)
	msg := []byte("From: a@example.test\r\nSubject: over STLS\r\nMessage-ID: <stls." + a.Email + ">\r\n\r\nencrypted all the way\r\n")
	appendIMAP(t, s.Dovecot.IMAP, a, msg)

	other, _, _ := proxytest.SelfSigned(t, t.TempDir())
	fm.tls = fmt.Sprintf("sslproto 'TLS1.2+' sslcertck sslcertfile %q", other)
	code, out := fm.run(true)
	if code != 2 || !strings.Contains(out, "certificate verify failed") {
		t.Fatalf("fetchmail trusting another certificate: exit %d, want 2 (certificate verify failed):\n%s", code, out)
	}
	wantDelivered(t, nil, fm.delivered())

	fm.tls = fmt.Sprintf("sslproto 'TLS1.2+' sslcertck sslcertfile %q", p.CertFile)
	if code, out = fm.run(true); code != 0 {
		t.Fatalf("fetchmail with STLS: exit %d:\n%s", code, out)
	}
	wantDelivered(t, nil, fm.delivered(), msg)
}
