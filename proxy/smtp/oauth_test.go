package smtp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
)

// oauthBearer is go-sasl's OAUTHBEARER client for a user and token.
func oauthBearer(user, token string) sasl.Client {
	return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token})
}

// submitWith logs in through the submission front with cl, sends one
// message with mark to a remote recipient and returns the AUTH error.
func submitWith(t *testing.T, e *env, cl sasl.Client, from, mark string) error {
	t.Helper()
	c, err := gosmtp.Dial(e.submission)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(cl); err != nil {
		return err
	}
	if err := c.SendMail(from, []string{"friend@remote.example"}, strings.NewReader(message(from, "friend@remote.example", mark))); err != nil {
		t.Fatalf("send after token login: %v", err)
	}
	c.Quit()
	return nil
}

// TestSubmissionOAuth: clients with an OAuth account (Thunderbird,
// Outlook) log in to the submission front with XOAUTH2 or OAUTHBEARER; the
// proxy routes by the token's user, relays the client's message to the
// real Dovecot submission service, whose oauth2 passdb checks the token,
// and the message reaches Dovecot's relay (the SMTP sink). A wrong token,
// another user's token and a token for an unknown user get the same 535.
func TestSubmissionOAuth(t *testing.T) {
	e := newEnv(t)
	e.set.RequireOAuth(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	b := e.set.NewAccount(t)
	e.route(b.Email, "dovecot2")
	m := e.set.NewAccount(t)
	e.route(m.Email, "dovecot-master")

	// EHLO offers the token mechanisms.
	c, err := gosmtp.Dial(e.submission)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.example.test"); err != nil {
		t.Fatal(err)
	}
	_, auth := c.Extension("AUTH")
	c.Close()
	for _, mech := range []string{"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"} {
		if !strings.Contains(" "+auth+" ", " "+mech+" ") {
			t.Errorf("EHLO AUTH %q lacks %s", auth, mech)
		}
	}

	good := map[string]struct {
		cl   sasl.Client
		user string
		sink string
	}{
		"XOAUTH2":              {peers.XOAuth2Client(a.Email, peers.Token(a.Email)), a.Email, e.set.Dovecot.SinkDir},
		"OAUTHBEARER":          {oauthBearer(a.Email, peers.Token(a.Email)), a.Email, e.set.Dovecot.SinkDir},
		"XOAUTH2 second":       {peers.XOAuth2Client(b.Email, peers.Token(b.Email)), b.Email, e.set.Dovecot2.SinkDir},
		"OAUTHBEARER master":   {oauthBearer(m.Email, peers.Token(m.Email)), m.Email, e.set.Dovecot.SinkDir},
		"XOAUTH2 master route": {peers.XOAuth2Client(m.Email, peers.Token(m.Email)), m.Email, e.set.Dovecot.SinkDir},
		// A token of realistic size: the proxy's AUTH line to Dovecot
		// would pass 512 octets, so the token goes in a continuation
		// (Dovecot refuses such an AUTH line with 500 5.5.2).
		"XOAUTH2 1.4 KB token":     {peers.XOAuth2Client(a.Email, peers.TokenOfSize(a.Email, 1400)), a.Email, e.set.Dovecot.SinkDir},
		"OAUTHBEARER 1.4 KB token": {oauthBearer(a.Email, peers.TokenOfSize(a.Email, 1400)), a.Email, e.set.Dovecot.SinkDir},
		// Entra ID tokens run to several KB: the AUTH line (go-smtp sends
		// the initial response) is far over RFC 5321's 512 octets, within
		// RFC 4954's 12288 for SASL responses.
		"XOAUTH2 4 KB token":     {peers.XOAuth2Client(a.Email, peers.TokenOfSize(a.Email, 4096)), a.Email, e.set.Dovecot.SinkDir},
		"OAUTHBEARER 4 KB token": {oauthBearer(a.Email, peers.TokenOfSize(a.Email, 4096)), a.Email, e.set.Dovecot.SinkDir},
	}
	for name, tc := range good {
		t.Run(name, func(t *testing.T) {
			mark := marker()
			if err := submitWith(t, e, tc.cl, tc.user, mark); err != nil {
				t.Fatalf("AUTH: %v", err)
			}
			msg := sinkMessage(t, tc.sink, mark)
			if msg == "" {
				t.Fatal("message not relayed to the backend's sink")
			}
			if !strings.Contains(msg, "friend@remote.example") {
				t.Errorf("sink envelope lacks the recipient:\n%s", msg)
			}
		})
	}
	if n := e.metrics.Get(proxy.MetricAuthFailures, "proto", string(ModeSubmission)); n != 0 {
		t.Errorf("%d auth failures counted for good tokens", n)
	}

	bad := map[string]sasl.Client{
		"XOAUTH2 wrong token":         peers.XOAuth2Client(a.Email, "not-a-token"),
		"OAUTHBEARER wrong token":     oauthBearer(a.Email, "not-a-token"),
		"XOAUTH2 other user's token":  peers.XOAuth2Client(a.Email, peers.Token(b.Email)),
		"OAUTHBEARER unknown user":    oauthBearer("nobody-"+marker()+"@elsewhere.example", "x"),
		"XOAUTH2 master route, wrong": peers.XOAuth2Client(m.Email, peers.Token(a.Email)),
	}
	for name, cl := range bad {
		t.Run(name, func(t *testing.T) {
			err := submitWith(t, e, cl, a.Email, marker())
			var se *gosmtp.SMTPError
			if err == nil {
				t.Fatal("AUTH succeeded")
			}
			// The proxy answers the backend's error challenge itself and
			// passes on only the final reply, so the client never sees a
			// challenge (go-sasl's OAUTHBEARER client would turn one into
			// an error of its own).
			if se = smtpErr(err); se == nil || se.Code != 535 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 7, 8}) {
				t.Fatalf("AUTH: %v, want 535 5.7.8", err)
			}
		})
	}
	if n := e.metrics.Get(proxy.MetricAuthFailures, "proto", string(ModeSubmission)); n != int64(len(bad)) {
		t.Errorf("%d auth failures counted, want %d", n, len(bad))
	}
}

// TestSubmissionOAuthDialogue drives the token mechanisms by hand: without
// an initial response (empty 334 challenge, then the message), with "="
// (an empty initial response: malformed), with a malformed message, and
// cancelled with "*".
func TestSubmissionOAuthDialogue(t *testing.T) {
	e := newEnv(t)
	e.set.RequireOAuth(t)
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	xo := b64("user=" + a.Email + "\x01auth=Bearer " + peers.Token(a.Email) + "\x01\x01")
	ob := b64("n,a=" + a.Email + ",\x01auth=Bearer " + peers.Token(a.Email) + "\x01\x01")
	tests := map[string]struct {
		lines []string // after EHLO; each gets one reply
		want  []string // reply prefixes
	}{
		"XOAUTH2 no initial response":     {[]string{"AUTH XOAUTH2", xo, "MAIL FROM:<" + a.Email + ">"}, []string{"334 ", "235 2.0.0", "250"}},
		"OAUTHBEARER no initial response": {[]string{"AUTH OAUTHBEARER", ob}, []string{"334 ", "235 2.0.0"}},
		"OAUTHBEARER initial response":    {[]string{"AUTH OAUTHBEARER " + ob}, []string{"235 2.0.0"}},
		"empty initial response":          {[]string{"AUTH XOAUTH2 ="}, []string{"501 5.5.2"}},
		"malformed":                       {[]string{"AUTH XOAUTH2", b64("user=\x01\x01")}, []string{"334 ", "501 5.5.2"}},
		"no bearer":                       {[]string{"AUTH OAUTHBEARER " + b64("n,a="+a.Email+",\x01\x01")}, []string{"501 5.5.2"}},
		"cancelled":                       {[]string{"AUTH OAUTHBEARER", "*", "MAIL FROM:<" + a.Email + ">"}, []string{"334 ", "501 5.0.0", "5"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", e.submission, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(nc)
			reply := func() string {
				t.Helper()
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if len(l) < 4 || l[3] != '-' {
						return strings.TrimRight(l, "\r\n")
					}
				}
			}
			reply() // greeting
			nc.Write([]byte("EHLO client.example.test\r\n"))
			reply()
			for i, l := range tc.lines {
				nc.Write([]byte(l + "\r\n"))
				if got := reply(); !strings.HasPrefix(got, tc.want[i]) {
					t.Fatalf("step %d: got %q, want %q", i, got, tc.want[i])
				}
			}
		})
	}
}

// TestCurlSubmissionOAuth: curl, a real client, sends a message through
// the submission front with --oauth2-bearer over both mechanisms, as
// Thunderbird and Outlook do for OAuth accounts. The token reaches curl in
// a config file, never on its command line, and curl's output is not
// shown (its protocol trace would hold the token).
func TestCurlSubmissionOAuth(t *testing.T) {
	e := newEnv(t)
	e.set.RequireOAuth(t)
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("curl not installed")
	}
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	dir := t.TempDir()
	run := func(token, mech, mark string) error {
		cfg := filepath.Join(dir, "curlrc-"+mark)
		msg := filepath.Join(dir, "msg-"+mark)
		os.WriteFile(cfg, []byte(`oauth2-bearer = "`+token+`"`+"\n"), 0o600)
		os.WriteFile(msg, []byte(message(a.Email, "friend@remote.example", mark)), 0o600)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "20", "-K", cfg, "--login-options", "AUTH="+mech,
			"--user", a.Email, "--mail-from", a.Email, "--mail-rcpt", "friend@remote.example", "--upload-file", msg,
			"smtp://"+e.submission)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return errors.New(strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			mark := marker()
			if err := run(peers.Token(a.Email), mech, mark); err != nil {
				t.Fatalf("curl: %v", err)
			}
			if sinkMessage(t, e.set.Dovecot.SinkDir, mark) == "" {
				t.Fatal("message not relayed to the backend's sink")
			}
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		if err := run("not-a-token", "XOAUTH2", marker()); err == nil || !strings.Contains(err.Error(), "Login denied") {
			t.Errorf("curl with a wrong token: %v, want Login denied (the 535)", err)
		}
	})
}

// TestTokenSASL checks the proxy's two token SASL parts without servers:
// the server side asks with an empty challenge when there is no initial
// response and parses (only) the user; the client side sends the message
// as the initial response and answers one error challenge the way each
// mechanism wants.
func TestTokenSASL(t *testing.T) {
	xo := []byte("user=u@example.test\x01auth=Bearer tok\x01\x01")
	ob := []byte("n,a=u@example.test,\x01auth=Bearer tok\x01\x01")
	for _, tc := range []struct {
		mech string
		msg  []byte
		ir   bool
	}{{"XOAUTH2", xo, true}, {"XOAUTH2", xo, false}, {"OAUTHBEARER", ob, true}, {"OAUTHBEARER", ob, false}} {
		var got *wire.Credentials
		srv := &tokenServer{mech: tc.mech, auth: func(c *wire.Credentials) error { got = c; return nil }}
		resp := tc.msg
		if !tc.ir {
			ch, done, err := srv.Next(nil)
			if err != nil || done || len(ch) != 0 {
				t.Fatalf("%s: first step %q %v %v, want an empty challenge", tc.mech, ch, done, err)
			}
		}
		if _, done, err := srv.Next(resp); err != nil || !done {
			t.Fatalf("%s: %v %v", tc.mech, done, err)
		}
		if got == nil || got.Identity() != "u@example.test" || !bytes.Equal(got.Raw, tc.msg) || !got.Token() {
			t.Fatalf("%s: credentials %v", tc.mech, got)
		}
		if _, _, err := srv.Next(resp); err == nil {
			t.Errorf("%s: a third step was accepted", tc.mech)
		}

		cl := &tokenClient{mech: tc.mech, msg: tc.msg}
		if m, ir, _ := cl.Start(); m != tc.mech || !bytes.Equal(ir, tc.msg) {
			t.Errorf("%s: Start %q %q", tc.mech, m, ir)
		}
		want := []byte{}
		if tc.mech == "OAUTHBEARER" {
			want = []byte{1}
		}
		if r, err := cl.Next([]byte(`{"status":"invalid_token"}`)); err != nil || !bytes.Equal(r, want) {
			t.Errorf("%s: answer to the error challenge %q %v, want %q", tc.mech, r, err, want)
		}
		if _, err := cl.Next(nil); err == nil {
			t.Errorf("%s: a second challenge was answered", tc.mech)
		}
	}
	// A long message goes in answer to the first (empty) challenge.
	long := []byte("user=u@example.test\x01auth=Bearer " + strings.Repeat("t", 400) + "\x01\x01")
	cl := &tokenClient{mech: "XOAUTH2", msg: long}
	if _, ir, _ := cl.Start(); ir != nil {
		t.Errorf("a %d-byte message was sent as the initial response", len(long))
	}
	if r, err := cl.Next([]byte{}); err != nil || !bytes.Equal(r, long) {
		t.Errorf("first challenge: %v, want the message", err)
	}
	if r, err := cl.Next([]byte("{}")); err != nil || len(r) != 0 {
		t.Errorf("error challenge: %q %v", r, err)
	}
	for _, bad := range [][]byte{{}, []byte("user=\x01\x01"), []byte("n,,\x01auth=Bearer t\x01\x01")} {
		srv := &tokenServer{mech: "OAUTHBEARER", auth: func(*wire.Credentials) error { return nil }}
		if strings.HasPrefix(string(bad), "user") {
			srv.mech = "XOAUTH2"
		}
		if _, _, err := srv.Next(bad); err != errMalformedAuth {
			t.Errorf("%q: %v, want errMalformedAuth", bad, err)
		}
	}
}

// FuzzTokenServer feeds arbitrary client messages to the XOAUTH2 and
// OAUTHBEARER server: it never panics, and it either hands the exact
// message with a non-empty user to the login or answers 501 5.5.2.
func FuzzTokenServer(f *testing.F) {
	f.Add([]byte("user=u@example.test\x01auth=Bearer tok\x01\x01"))
	f.Add([]byte("n,a=u@example.test,\x01host=h\x01port=587\x01auth=Bearer tok\x01\x01"))
	f.Add([]byte("n,a=a=2Cb=3Dc@example.test,\x01auth=Bearer t\x01\x01"))
	f.Add([]byte("y,,\x01auth=Bearer t\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		if msg == nil {
			msg = []byte{} // nil means "no initial response"
		}
		for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
			var got *wire.Credentials
			srv := &tokenServer{mech: mech, auth: func(c *wire.Credentials) error { got = c; return nil }}
			_, done, err := srv.Next(msg)
			switch {
			case err == errMalformedAuth:
				if got != nil || done {
					t.Fatalf("%s %q: refused but logged in", mech, msg)
				}
			case err != nil:
				t.Fatalf("%s %q: %v", mech, msg, err)
			case !done || got == nil || got.Identity() == "" || !bytes.Equal(got.Raw, msg) || got.Mechanism != mech:
				t.Fatalf("%s %q: done %v, credentials %v", mech, msg, done, got)
			}
		}
	})
}
