package peers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"github.com/emersion/go-smtp"
	"github.com/migadu/go-managesieve/managesieveclient"
	"github.com/migadu/go-pop3/pop3client"
)

func TestMain(m *testing.M) { Main(m) }

// login proves one real login (and one harmless command) over one protocol.
type login struct {
	name string
	run  func(t *testing.T, s *Set, a Account)
}

func TestLogins(t *testing.T) {
	s := Get(t)
	a := s.NewAccount(t)
	tests := []login{
		{"dovecot/imap", func(t *testing.T, s *Set, a Account) {
			c := imapLogin2(t, s.Dovecot.IMAP, a.Email, a.Password)
			for _, cp := range []imap.Cap{imap.CapCondStore, imap.CapQResync, imap.CapSpecialUse} {
				if !c.Caps().Has(cp) {
					t.Errorf("capability %s missing after login", cp)
				}
			}
			selectINBOX(t, c)
		}},
		{"dovecot/imap-master-user", func(t *testing.T, s *Set, a Account) {
			c := imapLogin2(t, s.Dovecot.IMAP, a.Email+"*"+s.Dovecot.MasterUser, s.Dovecot.MasterPassword)
			selectINBOX(t, c)
		}},
		{"dovecot/imap-master-authzid", func(t *testing.T, s *Set, a Account) {
			c := dialIMAP(t, s.Dovecot.IMAP)
			if err := c.Authenticate(sasl.NewPlainClient(a.Email, s.Dovecot.MasterUser, s.Dovecot.MasterPassword)); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN authzid=%s: %v", a.Email, err)
			}
			selectINBOX(t, c)
		}},
		{"dovecot/imap-wrong-password", func(t *testing.T, s *Set, a Account) {
			c := dialIMAP(t, s.Dovecot.IMAP)
			if err := c.Login(a.Email, a.Password+"x").Wait(); err == nil {
				t.Fatal("login with a wrong password succeeded")
			}
		}},
		{"dovecot/imap-haproxy", func(t *testing.T, s *Set, a Account) {
			conn, err := net.DialTimeout("tcp", s.Dovecot.IMAPHAProxy, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "PROXY TCP4 127.0.0.99 127.0.0.1 55555 %s\r\n", portOf(s.Dovecot.IMAPHAProxy))
			c := imapclient.New(conn, nil)
			t.Cleanup(func() { c.Close() })
			if err := c.Login(a.Email, a.Password).Wait(); err != nil {
				t.Fatalf("login behind a PROXY v1 header: %v", err)
			}
		}},
		{"dovecot/pop3", func(t *testing.T, s *Set, a Account) { pop3Login(t, s.Dovecot.POP3, a) }},
		{"dovecot/managesieve", func(t *testing.T, s *Set, a Account) { sieveLogin(t, s.Dovecot.ManageSieve, "", a.Email, a.Password) }},
		{"dovecot/managesieve-master-authzid", func(t *testing.T, s *Set, a Account) {
			sieveLogin(t, s.Dovecot.ManageSieve, a.Email, s.Dovecot.MasterUser, s.Dovecot.MasterPassword)
		}},
		{"dovecot/lmtp", func(t *testing.T, s *Set, a Account) {
			lmtpDeliver(t, s.Dovecot.LMTP, a.Email, "lmtp dovecot")
			c := imapLogin2(t, s.Dovecot.IMAP, a.Email, a.Password)
			waitMessages(t, c, 1)
		}},
		{"dovecot/submission", func(t *testing.T, s *Set, a Account) {
			marker := "submission-" + randHex(6)
			c, err := smtp.Dial(s.Dovecot.Submission)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", a.Email, a.Password)); err != nil {
				t.Fatalf("AUTH PLAIN: %v", err)
			}
			if err := c.SendMail(a.Email, []string{"someone@example.net"}, strings.NewReader(testMessage(a.Email, marker))); err != nil {
				t.Fatalf("send: %v", err)
			}
			c.Quit()
			waitSink(t, s.Dovecot.SinkDir, marker)
		}},
		{"dovecot2/imap", func(t *testing.T, s *Set, a Account) {
			selectINBOX(t, imapLogin2(t, s.Dovecot2.IMAP, a.Email, a.Password))
		}},
		{"dovecot2/pop3", func(t *testing.T, s *Set, a Account) { pop3Login(t, s.Dovecot2.POP3, a) }},
		{"dovecot-proxy/imap", func(t *testing.T, s *Set, a Account) {
			selectINBOX(t, imapLogin2(t, s.DovecotProxy.IMAP, a.Email, a.Password))
		}},
		{"dovecot-proxy/imap-master-user", func(t *testing.T, s *Set, a Account) {
			selectINBOX(t, imapLogin2(t, s.DovecotProxy.IMAP, a.Email+"*"+s.Dovecot.MasterUser, s.Dovecot.MasterPassword))
		}},
		{"nginx-mail/imap", func(t *testing.T, s *Set, a Account) {
			selectINBOX(t, imapLogin2(t, s.NginxMail.IMAP, a.Email, a.Password))
		}},
		{"nginx-mail/pop3", func(t *testing.T, s *Set, a Account) { pop3Login(t, s.NginxMail.POP3, a) }},
		{"cyrus/imap", func(t *testing.T, s *Set, a Account) {
			c := imapLogin2(t, s.Cyrus.IMAP, a.Email, a.Password)
			selectINBOX(t, c)
			got := listNames(t, c)
			for _, want := range []string{"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"} {
				if !got[want] {
					t.Errorf("Cyrus folder %s missing after the first login; have %v", want, got)
				}
			}
		}},
		{"cyrus/imap-admin-authzid", func(t *testing.T, s *Set, a Account) {
			c := dialIMAP(t, s.Cyrus.IMAP)
			if err := c.Authenticate(sasl.NewPlainClient(a.Email, s.Cyrus.AdminUser, s.Cyrus.AdminPassword)); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN authzid=%s as admin: %v", a.Email, err)
			}
			selectINBOX(t, c)
		}},
		{"cyrus/pop3", func(t *testing.T, s *Set, a Account) { pop3Login(t, s.Cyrus.POP3, a) }},
		{"cyrus/managesieve", func(t *testing.T, s *Set, a Account) { sieveLogin(t, s.Cyrus.ManageSieve, "", a.Email, a.Password) }},
		{"cyrus/lmtp", func(t *testing.T, s *Set, a Account) {
			lmtpDeliver(t, s.Cyrus.LMTP, a.Email, "lmtp cyrus")
			c := imapLogin2(t, s.Cyrus.IMAP, a.Email, a.Password)
			waitMessages(t, c, 1)
		}},
		{"cyrus/jmap-session", func(t *testing.T, s *Set, a Account) {
			body := httpDo(t, "GET", s.Cyrus.JMAPURL(), a, nil, nil, http.StatusOK)
			var session struct {
				Username        string                     `json:"username"`
				APIURL          string                     `json:"apiUrl"`
				Capabilities    map[string]json.RawMessage `json:"capabilities"`
				PrimaryAccounts map[string]string          `json:"primaryAccounts"`
			}
			if err := json.Unmarshal(body, &session); err != nil {
				t.Fatalf("session is not JSON: %v\n%s", err, body)
			}
			if session.Username != a.Email || session.PrimaryAccounts["urn:ietf:params:jmap:mail"] != a.Email {
				t.Errorf("session username %q, mail account %q; want %s", session.Username, session.PrimaryAccounts["urn:ietf:params:jmap:mail"], a.Email)
			}
			if _, ok := session.Capabilities["urn:ietf:params:jmap:mail"]; !ok {
				t.Errorf("no urn:ietf:params:jmap:mail capability")
			}
		}},
		{"cyrus/jmap-wrong-password", func(t *testing.T, s *Set, a Account) {
			httpDo(t, "GET", s.Cyrus.JMAPURL(), Account{a.Email, "wrong"}, nil, nil, http.StatusUnauthorized)
		}},
		{"cyrus/caldav-propfind", func(t *testing.T, s *Set, a Account) {
			body := propfind(t, s.Cyrus.CalDAVURL(a.Email), a)
			if !bytes.Contains(body, []byte("/Default/")) {
				t.Errorf("no Default calendar in\n%s", body)
			}
		}},
		{"cyrus/carddav-propfind", func(t *testing.T, s *Set, a Account) {
			body := propfind(t, s.Cyrus.CardDAVURL(a.Email), a)
			if !bytes.Contains(body, []byte("/Default/")) {
				t.Errorf("no Default address book in\n%s", body)
			}
		}},
		{"radicale/propfind", func(t *testing.T, s *Set, a Account) {
			body := propfind(t, s.Radicale.HomeURL(a.Email), a)
			for _, want := range []string{"/calendar/", "/contacts/"} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("no %s collection in\n%s", want, body)
				}
			}
		}},
		{"radicale/wrong-password", func(t *testing.T, s *Set, a Account) {
			httpDo(t, "PROPFIND", s.Radicale.HomeURL(a.Email), Account{a.Email, "wrong"}, nil, map[string]string{"Depth": "0"}, http.StatusUnauthorized)
		}},
		{"webdav/put-get", func(t *testing.T, s *Set, a Account) {
			data := []byte("Grüße \x00\xff binary\r\n")
			u := s.WebDAV.HomeURL(a.Email) + "dir-" + randHex(3) + ".bin"
			httpDo(t, "PUT", u, a, data, nil, http.StatusCreated)
			if got := httpDo(t, "GET", u, a, nil, nil, http.StatusOK); !bytes.Equal(got, data) {
				t.Errorf("GET returned %q, want %q", got, data)
			}
			other := s.NewAccount(t)
			httpDo(t, "GET", u, other, nil, nil, http.StatusUnauthorized)
			httpDo(t, "GET", u, Account{s.WebDAV.AdminUser, s.WebDAV.AdminPassword}, nil, nil, http.StatusOK)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, s, a)
		})
	}
}

// TestNewAccountFiles checks the account on disk: Dovecot's Maildir after a
// login and doveadm seeing the user.
func TestNewAccountDoveadm(t *testing.T) {
	s := Get(t)
	a := s.NewAccount(t)
	out := s.Dovecot.Doveadm(t, "user", a.Email)
	if !strings.Contains(out, s.Dovecot.MaildirPath(a.Email)[:len(s.Dovecot.MaildirPath(a.Email))-len("/Maildir")]) {
		t.Errorf("doveadm user %s: home not under %s:\n%s", a.Email, s.Dovecot.Base, out)
	}
	lmtpDeliver(t, s.Dovecot.LMTP, a.Email, "maildir check")
	if _, err := os.Stat(filepath.Join(s.Dovecot.MaildirPath(a.Email), "new")); err != nil {
		t.Errorf("Maildir after delivery: %v", err)
	}
	// re-adding the same account with a new password replaces it everywhere
	a.Password = "pw-changed"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.AddAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	imapLogin2(t, s.Dovecot.IMAP, a.Email, a.Password)
	imapLogin2(t, s.Cyrus.IMAP, a.Email, a.Password)
}

func TestAddAccountRejects(t *testing.T) {
	s := newSet(t.TempDir(), 0, "")
	for _, a := range []Account{{"nouser", "x"}, {"a:b@example.test", "x"}, {"a@example.test", "with:colon"}, {"a@example.test", ""}} {
		if err := s.AddAccount(context.Background(), a); err == nil {
			t.Errorf("AddAccount(%q, %q) succeeded", a.Email, a.Password)
		}
	}
}

func TestLayout(t *testing.T) {
	s := newSet("/r", 300, "")
	for got, want := range map[string]string{
		s.Dovecot.IMAP: "127.0.0.1:20300", s.Dovecot.SMTPSink: "127.0.0.1:20307", s.Dovecot2.IMAP: "127.0.0.1:20310",
		s.Dovecot.OAuthIntrospect: "127.0.0.1:20308", s.Dovecot2.OAuthIntrospect: "127.0.0.1:20318",
		s.DovecotProxy.IMAP: "127.0.0.1:20320", s.Cyrus.HTTP: "127.0.0.1:20338", s.Radicale.URL: "http://127.0.0.1:20340/",
		s.WebDAV.URL: "http://127.0.0.1:20350/files/", s.NginxMail.AuthHTTP: "127.0.0.1:20368",
		s.Dovecot.MaildirPath("Bob@Example.Test"): "/r/dovecot/mail/example.test/bob/Maildir",
		s.Cyrus.JMAPURL():                         "http://127.0.0.1:20338/jmap/",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}

func portOf(a string) string { _, p, _ := net.SplitHostPort(a); return p }

func dialIMAP(t *testing.T, address string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(address, nil)
	if err != nil {
		t.Fatalf("dial IMAP %s: %v", address, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func imapLogin2(t *testing.T, address, user, pass string) *imapclient.Client {
	t.Helper()
	c := dialIMAP(t, address)
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN %s at %s: %v", user, address, err)
	}
	return c
}

func selectINBOX(t *testing.T, c *imapclient.Client) *imap.SelectData {
	t.Helper()
	d, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	return d
}

func listNames(t *testing.T, c *imapclient.Client) map[string]bool {
	t.Helper()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	names := map[string]bool{}
	for _, l := range list {
		names[l.Mailbox] = true
	}
	return names
}

// waitMessages polls INBOX until it holds n messages (delivery is synchronous,
// but keep the test robust), with a deadline.
func waitMessages(t *testing.T, c *imapclient.Client, n uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			t.Fatalf("STATUS INBOX: %v", err)
		}
		if *st.NumMessages == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("INBOX has %d messages, want %d", *st.NumMessages, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pop3Login(t *testing.T, address string, a Account) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pop3client.Dial(ctx, address, pop3client.Options{})
	if err != nil {
		t.Fatalf("dial POP3 %s: %v", address, err)
	}
	defer c.Close()
	if err := c.User(ctx, a.Email, a.Password); err != nil {
		t.Fatalf("POP3 USER/PASS %s at %s: %v", a.Email, address, err)
	}
	if _, _, err := c.Stat(ctx); err != nil {
		t.Fatalf("POP3 STAT: %v", err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatalf("POP3 QUIT: %v", err)
	}
}

func sieveLogin(t *testing.T, address, authzid, user, pass string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := managesieveclient.Dial(ctx, address, managesieveclient.Options{})
	if err != nil {
		t.Fatalf("dial ManageSieve %s: %v", address, err)
	}
	defer c.Close()
	if _, ok := c.Capabilities()["SIEVE"]; !ok {
		t.Errorf("no SIEVE capability in %v", c.Capabilities())
	}
	if err := c.AuthenticatePlain(ctx, authzid, user, pass); err != nil {
		t.Fatalf("ManageSieve AUTHENTICATE PLAIN %s (authzid %q): %v", user, authzid, err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

func testMessage(from, subject string) string {
	return "From: <" + from + ">\r\nTo: <" + from + ">\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + randHex(8) + "@example.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\nhello\r\n"
}

func lmtpDeliver(t *testing.T, address, rcpt, subject string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	if err := c.Mail("sender@example.net", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		t.Fatalf("RCPT %s: %v", rcpt, err)
	}
	if err := c.Rcpt("nobody-"+randHex(4)+"@example.test", nil); err == nil {
		t.Errorf("RCPT of an unknown user was accepted")
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	io.WriteString(w, testMessage("sender@example.net", subject))
	resp, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatalf("LMTP delivery: %v", err)
	}
	if len(resp) != 1 {
		t.Errorf("LMTP answered %d recipients, want 1", len(resp))
	}
	c.Quit()
}

// waitSink polls the SMTP sink's spool for a message containing marker.
func waitSink(t *testing.T, dir, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(marker)) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message with %q reached the sink %s", marker, dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpDo(t *testing.T, method, url string, a Account, body []byte, hdr map[string]string, want int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(a.Email, a.Password)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s as %s: %s, want %d\n%s", method, url, a.Email, resp.Status, want, firstLines(b, 10))
	}
	return b
}

func propfind(t *testing.T, url string, a Account) []byte {
	t.Helper()
	return httpDo(t, "PROPFIND", url, a,
		[]byte(`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><displayname/><resourcetype/></prop></propfind>`),
		map[string]string{"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}, http.StatusMultiStatus)
}

func firstLines(b []byte, n int) string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() && len(out) < n {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}

// TestNewAccountParallel creates accounts concurrently and logs each in at
// once: a new user must be visible immediately on every peer.
func TestNewAccountParallel(t *testing.T) {
	s := Get(t)
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			a := s.NewAccount(t)
			imapLogin2(t, s.Dovecot.IMAP, a.Email, a.Password)
			imapLogin2(t, s.Dovecot2.IMAP, a.Email, a.Password)
			imapLogin2(t, s.Cyrus.IMAP, a.Email, a.Password)
			propfind(t, s.Radicale.HomeURL(a.Email), a)
			httpDo(t, "PUT", s.WebDAV.HomeURL(a.Email)+"f", a, []byte("x"), nil, http.StatusCreated)
		})
	}
}

// TestLockFreeOffset: an offset locked by one holder is never handed to
// another (parallel test binaries each start their own set).
func TestLockFreeOffset(t *testing.T) {
	seen := map[int]bool{}
	for range 5 {
		off, f, err := lockFreeOffset()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if off < 1000 || off > 9900 || off%100 != 0 {
			t.Errorf("offset %d outside 1000..9900 or not a multiple of 100", off)
		}
		if seen[off] {
			t.Errorf("offset %d handed out twice", off)
		}
		seen[off] = true
	}
}
