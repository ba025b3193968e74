package imap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestOAuthImport imports an account from the real Dovecot logged in with
// an OAuth bearer token (what `vandelay import imap --auth xoauth2
// --token-env VAR` builds: Config.Auth and Config.Token, no password),
// over XOAUTH2 and OAUTHBEARER; Dovecot's oauth2 passdb checks the token
// (peers.Token). The archive is hash-equal to the source (bytes, keywords,
// dates, membership), a re-run changes nothing, and a wrong token or
// another user's token is an authentication error (vandelay.ErrAuth).
func TestOAuthImport(t *testing.T) {
	a := newAccount(t)
	a.set.RequireOAuth(t)
	a.load(t, 11, 25)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	token := func(auth, tok string) func(*vandelay.Config) {
		return func(c *vandelay.Config) { c.Auth, c.Token, c.Password = auth, tok, "" }
	}
	for _, auth := range []string{vandelay.AuthXOAUTH2, vandelay.AuthOAuthBearer} {
		t.Run(auth, func(t *testing.T) {
			vandelaytest.Run(t, a.factory(token(auth, peers.Token(a.user))), want)
		})
	}
	other := a.set.NewAccount(t)
	for name, mod := range map[string]func(*vandelay.Config){
		"xoauth2 wrong token":               token(vandelay.AuthXOAUTH2, "not-a-token"),
		"oauthbearer other user's token":    token(vandelay.AuthOAuthBearer, peers.Token(other.Email)),
		"xoauth2 token as password (plain)": func(c *vandelay.Config) { c.Auth, c.Password = vandelay.AuthPlain, peers.Token(a.user) },
	} {
		t.Run(name, func(t *testing.T) {
			src, err := imapsrc.New(a.config(mod))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ar := vandelaytest.OpenArchive(t)
			run, err := ar.BeginRun(context.Background(), src.Describe(), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = src.Sync(context.Background(), run)
			// The server's error challenge is answered as the mechanism
			// says, so a refused token is an authentication failure.
			if !errors.Is(err, vandelay.ErrAuth) {
				t.Errorf("got %v, want ErrAuth", err)
			}
		})
	}
}
