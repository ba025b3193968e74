package peers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
)

// oauthKey is the fixed HMAC key of the test tokens; the introspection
// endpoint testdata/peers/oauth_introspect.py has the same one. TEST ONLY:
// the tokens open test accounts on loopback servers and nothing else.
const oauthKey = "mailmig-peers-test-oauth-key"

// tokenPrefix starts every test token.
const tokenPrefix = "mmtok."

// Token returns the OAuth bearer token that both Dovecots of a set accept
// for email with XOAUTH2 and OAUTHBEARER (TEST ONLY). Their oauth2 passdb
// asks the set's introspection endpoint (Dovecot.OAuthIntrospect), which
// checks the token without shared state: it is
//
//	"mmtok." + base64url(lower(email)) + "." + hex(HMAC-SHA256(key, lower(email)))[:32]
//
// with a fixed test key. The account must exist (Set.NewAccount); a token
// of another user, or a changed one, is refused like a wrong password.
// Tokens are secrets like passwords: never log them.
func Token(email string) string {
	email = strings.ToLower(email)
	m := hmac.New(sha256.New, []byte(oauthKey))
	m.Write([]byte(email))
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(email)) + "." + hex.EncodeToString(m.Sum(nil))[:32]
}

// TokenOfSize returns a valid token for email that is size bytes long
// (at least len(Token(email))+1): Token(email), "." and filler the
// introspection endpoint ignores. Real access tokens are often 1-3 KB (JWTs
// of Microsoft Entra ID), longer than some protocol lines allow.
func TokenOfSize(email string, size int) string {
	tok := Token(email) + "."
	if n := size - len(tok); n > 0 {
		tok += strings.Repeat("x", n)
	}
	return tok
}

// RequireOAuth fails the test when the set's Dovecots cannot check
// tokens: a set started by scripts older than the oauth2 passdb has no
// introspection endpoint (restart it with stop-all.sh and start-all.sh).
func (s *Set) RequireOAuth(t testing.TB) {
	t.Helper()
	for _, d := range []*Dovecot{s.Dovecot, s.Dovecot2} {
		if !portOpenAddr(d.OAuthIntrospect) {
			t.Fatalf("nothing answers on %s (OAuth token introspection of %s): the set under %s was started before "+
				"Dovecot had an oauth2 passdb; restart it (testdata/peers/stop-all.sh ROOT; start-all.sh ROOT OFFSET)",
				d.OAuthIntrospect, d.Base, s.Root)
		}
	}
}

// XOAuth2Client returns a SASL client of Google's XOAUTH2 mechanism for
// tests (go-sasl has only OAUTHBEARER): the initial response
// "user=" email ^A "auth=Bearer " token ^A ^A, and an empty answer to the
// server's error challenge, after which the server fails the exchange.
func XOAuth2Client(email, token string) sasl.Client { return &xoauth2{email, token} }

type xoauth2 struct{ user, token string }

func (c *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }
