package imap_test

import (
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// xoauth2Msg and oauthBearerMsg are the clients' SASL messages.
func xoauth2Msg(user, token string) string {
	return b64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

func oauthBearerMsg(user, token string) string {
	return b64("n,a=" + user + ",\x01host=127.0.0.1\x01port=143\x01auth=Bearer " + token + "\x01\x01")
}

// TestOAuthThroughProxy: AUTHENTICATE XOAUTH2 and OAUTHBEARER, with and
// without SASL-IR, through the proxy to the real Dovecot, whose oauth2
// passdb checks the token (peers.Token) at its introspection endpoint. The
// session that follows is the account's own (a message appended through
// the proxy is there when the user logs in directly with the password),
// a second account's token lands on the second Dovecot by its route, a
// wrong token, another user's token and an unknown user get NO, and the
// log holds no token.
func TestOAuthThroughProxy(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: proxy.LevelTrace}))
	p := proxytest.Start(t, s, &proxytest.Options{Logger: log})
	a := s.NewAccount(t)
	b := s.NewAccount(t)
	p.Route(t, b.Email, "dovecot2")
	tok := peers.Token(a.Email)

	dialogues := map[string][]string{ // client lines; the last answer must be OK
		"XOAUTH2 SASL-IR":        {"a AUTHENTICATE XOAUTH2 " + xoauth2Msg(a.Email, tok)},
		"XOAUTH2 continuation":   {"a AUTHENTICATE XOAUTH2", xoauth2Msg(a.Email, tok)},
		"OAUTHBEARER SASL-IR":    {"a AUTHENTICATE OAUTHBEARER " + oauthBearerMsg(a.Email, tok)},
		"OAUTHBEARER continuing": {"a AUTHENTICATE OAUTHBEARER", oauthBearerMsg(a.Email, tok)},
	}
	for name, lines := range dialogues {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.IMAP)
			if l := r.expect("* OK"); !strings.Contains(l, "AUTH=XOAUTH2") || !strings.Contains(l, "AUTH=OAUTHBEARER") {
				t.Errorf("greeting does not offer the token mechanisms: %q", l)
			}
			for i, l := range lines {
				r.send(l + "\r\n")
				if i < len(lines)-1 {
					if got := r.line(); got != "+ " && got != "+" {
						t.Fatalf("want an empty continuation, got %q", got)
					}
				}
			}
			if l := r.expect("a "); !strings.HasPrefix(l, "a OK [CAPABILITY ") || !strings.Contains(l, "CONDSTORE") {
				t.Fatalf("want OK with the backend's capabilities, got %q", l)
			}
			r.send("b SELECT INBOX\r\n")
			if l := r.expect("b "); !strings.HasPrefix(l, "b OK") {
				t.Fatalf("SELECT after a token login: %q", l)
			}
		})
	}

	t.Run("go-imap", func(t *testing.T) {
		for _, tc := range []struct {
			acct peers.Account
			cl   sasl.Client
			d    *peers.Dovecot
		}{
			{a, peers.XOAuth2Client(a.Email, tok), s.Dovecot},
			{b, sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: b.Email, Token: peers.Token(b.Email)}), s.Dovecot2},
		} {
			c, err := imapclient.DialInsecure(p.IMAP, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Authenticate(tc.cl); err != nil {
				t.Fatalf("AUTHENTICATE %s as %s: %v", mechOf(tc.cl), tc.acct.Email, err)
			}
			subject := "token " + mechOf(tc.cl)
			appendMsg(t, c, subject)
			c.Logout().Wait()
			// The message is in the account on the backend its route names.
			d := login(t, tc.d.IMAP, tc.acct.Email, tc.acct.Password)
			if _, err := d.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			got, err := d.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
			if err != nil || len(got.AllSeqNums()) != 1 {
				t.Fatalf("message appended through a %s login not found on %s: %v %v", mechOf(tc.cl), tc.d.IMAP, got, err)
			}
		}
	})

	// A wrong token is the backend's NO [AUTHENTICATIONFAILED]: the front
	// answers the backend's error challenge as each mechanism says (an
	// empty response, %x01), so Dovecot ends with a counted failure, not
	// an abort. "unknown user" never reaches a backend.
	refused := map[string]string{
		"wrong token":          "a AUTHENTICATE XOAUTH2 " + xoauth2Msg(a.Email, "not-a-token"),
		"other user's token":   "a AUTHENTICATE OAUTHBEARER " + oauthBearerMsg(a.Email, peers.Token(b.Email)),
		"token of second user": "a AUTHENTICATE XOAUTH2 " + xoauth2Msg(b.Email, tok),
		"unknown user":         "a AUTHENTICATE XOAUTH2 " + xoauth2Msg("nobody@elsewhere.example", tok),
	}
	for name, line := range refused {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.IMAP)
			r.expect("* OK")
			r.send(line + "\r\n")
			if l := r.expect("a "); !strings.HasPrefix(l, "a NO [AUTHENTICATIONFAILED]") {
				t.Fatalf("got %q, want NO [AUTHENTICATIONFAILED]", l)
			}
		})
	}

	out := buf.String()
	if !strings.Contains(out, a.Email) {
		t.Fatalf("no login records in the log:\n%s", out)
	}
	for _, secret := range []string{tok, peers.Token(b.Email), xoauth2Msg(a.Email, tok)} {
		if strings.Contains(out, secret) {
			t.Error("the proxy log contains a token")
		}
	}
}

// TestOAuthMasterMode: with master login configured, a token still goes
// to the backend as it is (a master login cannot stand in for it), so a
// good token logs in and a wrong one is refused.
func TestOAuthMasterMode(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	p := proxytest.Start(t, s, &proxytest.Options{Login: proxy.LoginMaster})
	a := s.NewAccount(t)
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send("a AUTHENTICATE XOAUTH2 " + xoauth2Msg(a.Email, peers.Token(a.Email)) + "\r\n")
	if l := r.expect("a "); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("token login in master mode: %q", l)
	}
	r = dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send("a AUTHENTICATE OAUTHBEARER " + oauthBearerMsg(a.Email, "not-a-token") + "\r\n")
	if l := r.expect("a "); !strings.HasPrefix(l, "a NO") {
		t.Fatalf("wrong token in master mode: %q", l)
	}
}

// TestCurlOAuth: curl, a real client, logs in with --oauth2-bearer over
// both mechanisms and lists the folders. The token reaches curl in a
// config file, never on its command line.
func TestCurlOAuth(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	cfg := filepath.Join(t.TempDir(), "curlrc")
	if err := os.WriteFile(cfg, []byte(`oauth2-bearer = "`+peers.Token(a.Email)+`"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run(mech, func(t *testing.T) {
			out, err := curl(t, "-K", cfg, "--login-options", "AUTH="+mech, "--user", a.Email, "imap://"+p.IMAP+"/")
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			if !strings.Contains(out, "INBOX") || !strings.Contains(out, "Sent") {
				t.Errorf("LIST output lacks INBOX/Sent:\n%s", out)
			}
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "curlrc")
		os.WriteFile(bad, []byte(`oauth2-bearer = "not-a-token"`+"\n"), 0o600)
		if out, err := curl(t, "-K", bad, "--login-options", "AUTH=XOAUTH2", "--user", a.Email, "imap://"+p.IMAP+"/"); err == nil {
			t.Errorf("curl with a wrong token succeeded:\n%s", out)
		}
	})
}

func mechOf(c sasl.Client) string {
	m, _, _ := c.Start()
	return m
}
