package sieve_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

func xoauth2B64(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01"))
}

func oauthBearerB64(user, token string) string {
	return base64.StdEncoding.EncodeToString([]byte("n,a=" + user + ",\x01host=127.0.0.1\x01port=4190\x01auth=Bearer " + token + "\x01\x01"))
}

// TestOAuthManageSieve: AUTHENTICATE OAUTHBEARER and XOAUTH2 through the
// proxy to the real Dovecot's ManageSieve, whose oauth2 passdb checks the
// token (peers.Token); sieve-connect cannot do OAuth, so this is a small
// client over the connection. With an initial response and with a
// continuation (empty challenge, then the message as a string). The
// session is the account's own: a script put and activated through the
// proxy is the one in the user's sieve directory at Dovecot. Wrong and
// foreign tokens get NO.
func TestOAuthManageSieve(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	b := s.NewAccount(t)
	tok := peers.Token(a.Email)
	home := filepath.Dir(s.Dovecot.MaildirPath(a.Email))

	dialogues := map[string][]string{ // client lines; the answer to the last is OK
		"OAUTHBEARER initial response": {`AUTHENTICATE "OAUTHBEARER" "` + oauthBearerB64(a.Email, tok) + `"`},
		"OAUTHBEARER continuation":     {`AUTHENTICATE "OAUTHBEARER"`, `"` + oauthBearerB64(a.Email, tok) + `"`},
		"XOAUTH2 initial response":     {`AUTHENTICATE "XOAUTH2" "` + xoauth2B64(a.Email, tok) + `"`},
		"XOAUTH2 literal":              {`AUTHENTICATE "XOAUTH2" {` + fmt.Sprint(len(xoauth2B64(a.Email, tok))) + "+}\r\n" + xoauth2B64(a.Email, tok)},
	}
	i := 0
	for name, lines := range dialogues {
		i++
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.ManageSieve)
			var sasl string
			for {
				l, err := r.br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(l, `"SASL" `) {
					sasl = l
				}
				if strings.HasPrefix(l, "OK") {
					break
				}
			}
			if !strings.Contains(sasl, "XOAUTH2") || !strings.Contains(sasl, "OAUTHBEARER") {
				t.Errorf("SASL capability %q lacks the token mechanisms", strings.TrimSpace(sasl))
			}
			for j, l := range lines {
				r.send(l + "\r\n")
				if j < len(lines)-1 {
					if got, _ := r.br.ReadString('\n'); strings.TrimSpace(got) != `""` {
						t.Fatalf("want an empty challenge, got %q", got)
					}
				}
			}
			if l := r.until(); !strings.HasPrefix(l, "OK") {
				t.Fatalf("token login: %q", l)
			}
			name := fmt.Sprintf("oauth%d", i)
			script := fmt.Sprintf("require \"fileinto\";\r\n# %s\r\nif header :contains \"subject\" \"x\" { fileinto \"INBOX\"; }\r\n", name)
			r.send(fmt.Sprintf("PUTSCRIPT %q {%d+}\r\n%s\r\n", name, len(script), script))
			if l := r.until(); !strings.HasPrefix(l, "OK") {
				t.Fatalf("PUTSCRIPT: %q", l)
			}
			r.send(fmt.Sprintf("SETACTIVE %q\r\n", name))
			if l := r.until(); !strings.HasPrefix(l, "OK") {
				t.Fatalf("SETACTIVE: %q", l)
			}
			r.send("LOGOUT\r\n")
			r.until()
			got, err := os.ReadFile(filepath.Join(home, "sieve", name+".sieve"))
			if err != nil || string(got) != script {
				t.Fatalf("script at Dovecot: %q, %v; want what was put through the proxy", got, err)
			}
		})
	}

	refused := map[string]string{
		"wrong token":        `AUTHENTICATE "XOAUTH2" "` + xoauth2B64(a.Email, "not-a-token") + `"`,
		"other user's token": `AUTHENTICATE "OAUTHBEARER" "` + oauthBearerB64(a.Email, peers.Token(b.Email)) + `"`,
		"unknown user":       `AUTHENTICATE "OAUTHBEARER" "` + oauthBearerB64("nobody@elsewhere.example", tok) + `"`,
	}
	for name, line := range refused {
		t.Run(name, func(t *testing.T) {
			r := dialRaw(t, p.ManageSieve)
			r.until()
			r.send(line + "\r\n")
			// A failure, not "aborted by client": the front answers a
			// refused token's error challenge as the mechanism says.
			if l := r.until(); !strings.HasPrefix(l, "NO") || strings.Contains(l, "abort") {
				t.Fatalf("got %q, want NO (not an abort)", l)
			}
		})
	}
}
