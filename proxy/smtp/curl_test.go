package smtp_test

import (
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/smtp"
)

// needCurl fails the test under CI=true when curl is missing (the harness's
// install.sh installs it) and skips it otherwise.
func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("curl is not installed (testdata/peers/install.sh installs it)")
	}
}

// runCurl runs curl -v with a deadline and returns its exit code and its
// combined output, with the SASL lines it sent redacted. The arguments
// hold a password, so callers print only the output.
func runCurl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "-v", "--max-time", "15"}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, redactSASL(string(out))
	case errors.As(err, &ee):
		return ee.ExitCode(), redactSASL(string(out))
	}
	t.Fatalf("curl did not run: %v", err)
	return -1, ""
}

// redactSASL blanks what curl -v shows of the lines it sent that may carry
// credentials: AUTH's initial response and SASL continuation lines.
func redactSASL(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "> ") {
			continue
		}
		f := strings.Fields(l[2:])
		switch {
		case len(f) == 0:
		case strings.EqualFold(f[0], "AUTH"):
			if len(f) > 2 {
				lines[i] = "> AUTH " + f[1] + " [redacted]"
			}
		case !smtpVerbs[strings.ToUpper(f[0])]:
			lines[i] = "> [redacted]"
		}
	}
	return strings.Join(lines, "\n")
}

var smtpVerbs = map[string]bool{"EHLO": true, "HELO": true, "MAIL": true, "RCPT": true, "DATA": true, "RSET": true, "QUIT": true, "NOOP": true, "STARTTLS": true}

// curlMessage writes a message with a fresh Message-ID into dir and
// returns the file, the Message-ID and the SHA-256 of its body. The body
// has what an SMTP path can damage: lines that start with dots (a lone "."
// included, which must be dot-stuffed and unstuffed again), 8-bit UTF-8,
// trailing blanks, an empty line at the end and about 100 KiB of base64.
func curlMessage(t *testing.T, dir, from, to string) (file, msgID, bodyHash string) {
	t.Helper()
	rnd := make([]byte, 75*1024)
	rand.Read(rnd)
	id := hex.EncodeToString(rnd[:8]) + "@example.test"
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: curl through the proxy %s\r\nMessage-ID: <%s>\r\n", from, to, id, id)
	b.WriteString("Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	hdrLen := b.Len()
	b.WriteString("Grüße aus Köln — ünïcödé 日本語\r\n.\r\n..two dots\r\n.leading dot\r\ntrailing blanks   \r\n\r\n")
	enc := make([]byte, hex.EncodedLen(len(rnd)))
	hex.Encode(enc, rnd)
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.Write(enc[:n])
		b.WriteString("\r\n")
		enc = enc[n:]
	}
	b.WriteString("\r\n")
	file = filepath.Join(dir, id+".eml")
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, id, sha(b.Bytes()[hdrLen:])
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// bodyOf returns the part of a message after the first empty line.
func bodyOf(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[i+4:]
	}
	return nil
}

// imapBodies logs in to a backend directly and returns the SHA-256 of the
// body of every INBOX message whose Message-ID is msgID.
func imapBodies(t *testing.T, addr string, a peers.Account, msgID string) []string {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatalf("log in to %s as %s: %v", addr, a.Email, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sr, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: msgID}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := sr.AllUIDs()
	if len(uids) == 0 {
		return nil
	}
	text := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{text}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, sha(m.FindBodySection(text)))
	}
	c.Logout().Wait()
	return out
}

// curlProxy starts the proxy with a submission (plaintext AUTH allowed:
// loopback) and a port-25 listener, both proxy.Server listeners like in
// `mailmig proxy`.
func curlProxy(t *testing.T, s *peers.Set) (p *proxytest.Proxy, submission, smtp25 string) {
	t.Helper()
	lr := &lateRouter{}
	sub, err := smtp.NewServer(&smtp.Options{Mode: smtp.ModeSubmission, Router: lr, Hostname: "proxy.example.test", AllowInsecureAuth: true, BackendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mx, err := smtp.NewServer(&smtp.Options{Mode: smtp.ModeSMTP, Router: lr, Hostname: "proxy.example.test", BackendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p = proxytest.Start(t, s, &proxytest.Options{Extra: []proxy.ListenerConfig{
		{Protocol: proxy.Submission, TLS: proxy.TLSNone, Handler: sub},
		{Protocol: proxy.SMTP, TLS: proxy.TLSNone, Handler: mx},
	}})
	lr.Router = p.Router
	return p, p.Extra[0], p.Extra[1]
}

// TestCurlSubmission sends a message with curl's SMTP client and AUTH
// (PLAIN and LOGIN) through the proxy's submission front to Dovecot's
// submission service, which relays it to the harness's SMTP sink; the
// sink's copy has the same body, byte for byte, and the envelope curl gave.
// A wrong password is Dovecot's 535 and nothing is relayed.
func TestCurlSubmission(t *testing.T) {
	s := peers.Get(t) // first: skips under -short
	needCurl(t)
	p, submission, _ := curlProxy(t, s)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			file, id, want := curlMessage(t, t.TempDir(), a.Email, "friend@remote.example")
			code, out := runCurl(t, "--url", "smtp://"+submission+"/client.example.test", "--login-options", "AUTH="+mech,
				"--user", a.Email+":"+a.Password, "--mail-from", a.Email, "--mail-rcpt", "friend@remote.example", "--upload-file", file)
			if code != 0 {
				t.Fatalf("curl exit %d:\n%s", code, out)
			}
			if !strings.Contains(out, "AUTH "+mech) {
				t.Errorf("curl did not use AUTH %s:\n%s", mech, out)
			}
			// The sink writes its file while it reads: poll until the whole
			// body is there.
			var got []string
			proxytest.WaitFor(t, 10*time.Second, func() bool {
				got = sinkBodies(t, s.Dovecot.SinkDir, id)
				return len(got) == 1 && got[0] == want
			})
			if msg := sinkMessage(t, s.Dovecot.SinkDir, id); !strings.Contains(msg, "X-Sink-To: <friend@remote.example>") || !strings.Contains(msg, "X-Sink-From: <"+a.Email+">") {
				t.Errorf("sink envelope is not curl's:\n%.300s", msg)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		file, id, _ := curlMessage(t, t.TempDir(), a.Email, "friend@remote.example")
		code, out := runCurl(t, "--url", "smtp://"+submission+"/client.example.test", "--user", a.Email+":wrong",
			"--mail-from", a.Email, "--mail-rcpt", "friend@remote.example", "--upload-file", file)
		if code != 67 || !strings.Contains(out, "< 535 5.7.8") { // 67: CURLE_LOGIN_DENIED
			t.Fatalf("curl exit %d, want 67 (login denied) after 535 5.7.8:\n%s", code, out)
		}
		if n := len(sinkBodies(t, s.Dovecot.SinkDir, id)); n != 0 {
			t.Errorf("%d copies relayed after a refused login", n)
		}
	})
}

// sinkBodies returns the body hashes of the sink's messages that carry
// Message-ID id.
func sinkBodies(t *testing.T, dir, id string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && bytes.Contains(b, []byte("Message-ID: <"+id+">")) {
			out = append(out, sha(bodyOf(b)))
		}
	}
	return out
}

// sinkMessage returns the sink's first message with Message-ID id.
func sinkMessage(t *testing.T, dir, id string) string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err == nil && bytes.Contains(b, []byte("Message-ID: <"+id+">")) {
			return string(b)
		}
	}
	return ""
}

// TestCurlSMTPTwoBackends sends one message with curl to two recipients
// whose accounts are on different backends (Dovecot and Dovecot2) through
// the port-25 front, which accepts the first backend's recipient and
// answers the other 452 4.5.3. What curl does with that, and what lands
// where (read back over IMAP from each backend, by Message-ID and body
// hash):
//
//   - without --mail-rcpt-allowfails curl (7.69+) gives up on the whole
//     transaction at the 452 (exit 55, no DATA): nothing is delivered
//     anywhere, the accepted recipient included;
//   - with --mail-rcpt-allowfails curl sends DATA to the accepted recipient
//     and exits 0: the first backend's account has the message once, the
//     other none;
//   - a second curl run for the deferred recipient alone delivers it to the
//     second backend: each account has exactly one copy, byte-equal body,
//     and nothing landed on the wrong backend.
func TestCurlSMTPTwoBackends(t *testing.T) {
	s := peers.Get(t) // first: skips under -short
	needCurl(t)
	p, _, mx := curlProxy(t, s)
	a, b := s.NewAccount(t), s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	p.Route(t, b.Email, "dovecot2")
	file, id, want := curlMessage(t, t.TempDir(), "sender@remote.example", a.Email)
	send := func(extra []string, rcpts ...string) (int, string) {
		args := append([]string{"--url", "smtp://" + mx + "/client.example.test", "--mail-from", "sender@remote.example", "--upload-file", file}, extra...)
		for _, r := range rcpts {
			args = append(args, "--mail-rcpt", r)
		}
		return runCurl(t, args...)
	}
	copies := func(d *peers.Dovecot, acct peers.Account) []string {
		return imapBodies(t, d.IMAP, acct, id)
	}

	// 1. Plain curl: the 452 ends the transaction before DATA.
	code, out := send(nil, a.Email, b.Email)
	if !strings.Contains(out, "> EHLO client.example.test") {
		t.Errorf("curl did not say EHLO client.example.test:\n%s", out)
	}
	if !strings.Contains(out, "< 452 4.5.3") {
		t.Fatalf("second backend's recipient not answered 452 4.5.3 (curl exit %d):\n%s", code, out)
	}
	if code != 55 || strings.Contains(out, "> DATA") {
		t.Errorf("curl without --mail-rcpt-allowfails: exit %d, want 55 (RCPT failed) without DATA:\n%s", code, out)
	}
	if n, m := len(copies(s.Dovecot, a)), len(copies(s.Dovecot2, b)); n != 0 || m != 0 {
		t.Fatalf("aborted transaction delivered %d copies on dovecot, %d on dovecot2; want none", n, m)
	}

	// 2. --mail-rcpt-allowfails: DATA goes to the accepted recipient only.
	code, out = send([]string{"--mail-rcpt-allowfails"}, a.Email, b.Email)
	if code != 0 || !strings.Contains(out, "< 452 4.5.3") {
		t.Fatalf("curl --mail-rcpt-allowfails: exit %d, want 0 after a 452 4.5.3:\n%s", code, out)
	}
	if got := copies(s.Dovecot, a); len(got) != 1 || got[0] != want {
		t.Errorf("first recipient on dovecot: %d copies (hashes %v), want 1 with body %s", len(got), got, want)
	}
	if got := copies(s.Dovecot2, b); len(got) != 0 {
		t.Errorf("deferred recipient already has %d copies on dovecot2", len(got))
	}

	// 3. The sender's retry of the deferred recipient alone.
	if code, out = send(nil, b.Email); code != 0 {
		t.Fatalf("retry for the deferred recipient: curl exit %d:\n%s", code, out)
	}
	if got := copies(s.Dovecot2, b); len(got) != 1 || got[0] != want {
		t.Errorf("retried recipient on dovecot2: %d copies (hashes %v), want 1 with body %s", len(got), got, want)
	}
	if got := copies(s.Dovecot, a); len(got) != 1 {
		t.Errorf("first recipient has %d copies after the retry, want still 1", len(got))
	}
	for _, wrong := range []struct {
		d    *peers.Dovecot
		acct peers.Account
	}{{s.Dovecot2, a}, {s.Dovecot, b}} {
		if got := copies(wrong.d, wrong.acct); len(got) != 0 {
			t.Errorf("%s has %d copies on the wrong backend", wrong.acct.Email, len(got))
		}
	}
}

// TestCurlSMTPFrozen: curl through the port-25 front to a frozen account
// gets 451 4.2.0 at RCPT (exit 55) and nothing is delivered; after a flip
// to Dovecot2 and the unfreeze, the same curl command delivers exactly one
// copy there and none on the old backend.
func TestCurlSMTPFrozen(t *testing.T) {
	s := peers.Get(t) // first: skips under -short
	needCurl(t)
	p, _, mx := curlProxy(t, s)
	a := s.NewAccount(t)
	p.Route(t, a.Email, "dovecot")
	file, id, want := curlMessage(t, t.TempDir(), "sender@remote.example", a.Email)
	send := func() (int, string) {
		return runCurl(t, "--url", "smtp://"+mx+"/client.example.test", "--mail-from", "sender@remote.example",
			"--mail-rcpt", a.Email, "--upload-file", file)
	}

	p.Freeze(t, a.Email)
	if code, out := send(); code != 55 || !strings.Contains(out, "< 451 4.2.0") || strings.Contains(out, "> DATA") {
		t.Fatalf("curl to a frozen account: exit %d, want 55 after 451 4.2.0, no DATA:\n%s", code, out)
	}
	p.Route(t, a.Email, "dovecot2") // still frozen
	p.Unfreeze(t, a.Email)
	if code, out := send(); code != 0 {
		t.Fatalf("curl after the unfreeze: exit %d:\n%s", code, out)
	}
	if got := imapBodies(t, s.Dovecot2.IMAP, a, id); len(got) != 1 || got[0] != want {
		t.Errorf("new backend: %d copies (hashes %v), want 1 with body %s", len(got), got, want)
	}
	if got := imapBodies(t, s.Dovecot.IMAP, a, id); len(got) != 0 {
		t.Errorf("old backend has %d copies, want none", len(got))
	}
}
