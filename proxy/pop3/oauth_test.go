package pop3_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

func xoauth2B64(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

func oauthBearerB64(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("n,a=" + user + ",\x01auth=Bearer " + token + "\x01\x01"))
}

// TestOAuthPOP3: AUTH XOAUTH2 and OAUTHBEARER through the proxy to the
// real Dovecot, whose oauth2 passdb checks the token (peers.Token): with
// an initial response, with a continuation, and with a 2.5 KB token (a
// realistic size; too long for an initial response in a POP3 command
// line, so the client sends it as a continuation). After the login the
// session is the account's own: RETR returns the message put there
// beforehand. Wrong and foreign tokens get -ERR; curl logs in with
// --oauth2-bearer.
func TestOAuthPOP3(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	b := s.NewAccount(t)
	body := []byte("From: x@example.test\r\nSubject: pop token\r\n\r\nfetched with a token\r\n")
	oauthAppend(t, s.Dovecot.IMAP, a, body)
	tok := peers.Token(a.Email)

	dialogues := map[string][]string{ // client lines; the answer to the last is +OK
		"XOAUTH2 initial response":     {"AUTH XOAUTH2 " + xoauth2B64(a.Email, tok)},
		"XOAUTH2 continuation":         {"AUTH XOAUTH2", xoauth2B64(a.Email, tok)},
		"OAUTHBEARER initial response": {"AUTH OAUTHBEARER " + oauthBearerB64(a.Email, tok)},
		"OAUTHBEARER 2.5 KB token":     {"AUTH OAUTHBEARER", oauthBearerB64(a.Email, peers.TokenOfSize(a.Email, 2500))},
	}
	for name, lines := range dialogues {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.POP3)
			r.cmd("", "+OK")
			r.cmd("CAPA", "+OK")
			sasl := ""
			for {
				l := r.cmd("", "")
				if l == "." {
					break
				}
				if strings.HasPrefix(l, "SASL ") {
					sasl = l
				}
			}
			if !strings.Contains(sasl, "XOAUTH2") || !strings.Contains(sasl, "OAUTHBEARER") {
				t.Errorf("CAPA SASL line %q lacks the token mechanisms", sasl)
			}
			for i, l := range lines {
				want := "+OK"
				if i < len(lines)-1 {
					want = "+"
				}
				r.cmd(l, want)
			}
			if l := r.cmd("STAT", "+OK"); !strings.HasPrefix(l, "+OK 1 ") {
				t.Fatalf("STAT after a token login: %q", l)
			}
			r.cmd("RETR 1", "+OK")
			var got []string
			for {
				l := r.cmd("", "")
				if l == "." {
					break
				}
				got = append(got, l)
			}
			if want := strings.TrimSuffix(string(body), "\r\n"); strings.Join(got, "\r\n") != want {
				t.Errorf("RETR 1 returned %q, want %q", strings.Join(got, "\r\n"), want)
			}
			r.cmd("QUIT", "+OK")
		})
	}

	refused := map[string]string{
		"wrong token":        "AUTH XOAUTH2 " + xoauth2B64(a.Email, "not-a-token"),
		"other user's token": "AUTH OAUTHBEARER " + oauthBearerB64(a.Email, peers.Token(b.Email)),
		"unknown user":       "AUTH XOAUTH2 " + xoauth2B64("nobody@elsewhere.example", tok),
	}
	for name, line := range refused {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.POP3)
			r.cmd("", "+OK")
			// [AUTH], not "aborted by client": the front answers a
			// refused token's error challenge as the mechanism says.
			r.cmd(line, "-ERR [AUTH]")
		})
	}

	t.Run("curl", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "curlrc")
		if err := os.WriteFile(cfg, []byte(`oauth2-bearer = "`+tok+`"`+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
			// The token is in the config file, not on the command line.
			out, err := curl(t, "-K", cfg, "--login-options", "AUTH="+mech, "--user", a.Email, "pop3://"+p.POP3+"/1")
			if err != nil {
				t.Fatalf("curl %s: %v\n%s", mech, err, out)
			}
			if !strings.Contains(out, "fetched with a token") {
				t.Errorf("curl %s RETR 1:\n%s", mech, out)
			}
		}
	})
}

// oauthAppend puts a message into the account's INBOX directly at Dovecot.
func oauthAppend(t *testing.T, addr string, a peers.Account, msg []byte) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
}
