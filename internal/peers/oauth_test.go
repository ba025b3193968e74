package peers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

// TestTokenSameAsScript: the Go Token and the introspection endpoint's
// Python token() agree (they share no code, only the scheme and the key).
func TestTokenSameAsScript(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := filepath.Join(findScripts(), "oauth_introspect.py")
	users := []string{"alice@example.test", "T0123abc@Example.TEST", "ünï@example.test"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, append([]string{"-c", `
import importlib.util, sys
spec = importlib.util.spec_from_file_location("oi", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
for u in sys.argv[2:]:
    t = m.token(u)
    assert m.check(t) == u.lower(), u
    assert m.check(t[:-1] + ("0" if t[-1] != "0" else "1")) is None, u
    assert m.check(t + "." + "x" * 2000) == u.lower(), u
    assert m.check(t + ".x.y") is None, u
    print(t)
`, script}, users...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	if len(got) != len(users) {
		t.Fatalf("python printed %d tokens for %d users", len(got), len(users))
	}
	for i, u := range users {
		if got[i] != Token(u) {
			t.Errorf("user %q: the Go and Python tokens differ", u) // never print tokens
		}
	}
	if Token("A@example.test") != Token("a@example.test") || Token("a@example.test") == Token("b@example.test") {
		t.Error("tokens must be per user and case-insensitive")
	}
}

// TestOAuthLogins: both Dovecots accept a user's token over XOAUTH2 and
// OAUTHBEARER and refuse a wrong one, another user's and a forged one;
// the introspection endpoint answers RFC 7662 JSON.
func TestOAuthLogins(t *testing.T) {
	s := Get(t)
	s.RequireOAuth(t)
	a := s.NewAccount(t)
	b := s.NewAccount(t)
	for _, d := range []struct {
		name string
		d    *Dovecot
	}{{"dovecot", s.Dovecot}, {"dovecot2", s.Dovecot2}} {
		t.Run(d.name, func(t *testing.T) {
			c := dialIMAP(t, d.d.IMAP)
			for _, cp := range []string{"AUTH=PLAIN", "AUTH=LOGIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"} {
				if !c.Caps().Has(imap.Cap(cp)) {
					t.Errorf("pre-login capabilities lack %s", cp)
				}
			}
			if err := c.Authenticate(XOAuth2Client(a.Email, Token(a.Email))); err != nil {
				t.Fatalf("XOAUTH2 with the user's token: %v", err)
			}
			selectINBOX(t, c)

			c = dialIMAP(t, d.d.IMAP)
			long := TokenOfSize(a.Email, 2500)
			if len(long) != 2500 {
				t.Fatalf("TokenOfSize made %d bytes", len(long))
			}
			if err := c.Authenticate(XOAuth2Client(a.Email, long)); err != nil {
				t.Fatalf("XOAUTH2 with a 2.5 KB token: %v", err)
			}

			c = dialIMAP(t, d.d.IMAP)
			if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: a.Email, Token: Token(a.Email)})); err != nil {
				t.Fatalf("OAUTHBEARER with the user's token: %v", err)
			}
			selectINBOX(t, c)

			forged := Token(a.Email)
			forged = forged[:len(forged)-1] + map[bool]string{true: "1", false: "0"}[strings.HasSuffix(forged, "0")]
			for name, tok := range map[string]string{"wrong": "not-a-token", "other user's": Token(b.Email), "forged": forged} {
				c := dialIMAP(t, d.d.IMAP)
				if err := c.Authenticate(XOAuth2Client(a.Email, tok)); err == nil {
					t.Errorf("XOAUTH2 with a %s token succeeded", name)
				}
				c = dialIMAP(t, d.d.IMAP)
				if err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: a.Email, Token: tok})); err == nil {
					t.Errorf("OAUTHBEARER with a %s token succeeded", name)
				}
			}
			// Passwords still work, and a token is no password.
			imapLogin2(t, d.d.IMAP, a.Email, a.Password)
			if err := dialIMAP(t, d.d.IMAP).Login(a.Email, Token(a.Email)).Wait(); err == nil {
				t.Error("LOGIN with the token as password succeeded")
			}
		})
	}
	t.Run("introspect", func(t *testing.T) {
		for tok, want := range map[string]string{
			Token(a.Email): `{"active": true, "username": "` + a.Email + `"}`,
			"mmtok.x.y":    `{"active": false}`,
		} {
			resp, err := http.PostForm("http://"+s.Dovecot.OAuthIntrospect+"/introspect", url.Values{"token": {tok}})
			if err != nil {
				t.Fatal(err)
			}
			var got, exp map[string]any
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("introspection: status %d, %v", resp.StatusCode, err)
			}
			json.Unmarshal([]byte(want), &exp)
			if len(got) != len(exp) || got["active"] != exp["active"] || got["username"] != exp["username"] {
				t.Errorf("introspection answered %v, want %v", got, exp)
			}
		}
	})
}
