package pop3_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
)

// TestCheck is the pre-flight login at the real Dovecot's POP3: STAT's
// octets are the size; a refused login is vandelay.ErrAuth.
func TestCheck(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := corpus.Generate(corpus.Options{Seed: 5, Messages: 6, Folders: -1})
	if err := c.LoadIMAP(context.Background(), s.Dovecot.IMAP, acct.Email, acct.Password, 1); err != nil {
		t.Fatal(err)
	}
	opts := &pop3.Options{Server: vandelay.Server{Address: s.Dovecot.POP3, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}}
	r, err := pop3.Check(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size <= 0 || r.SizeFrom != "stat" || r.Quota != nil {
		t.Errorf("Check: %+v, want a size from STAT and no quota", r)
	}
	opts.Password = "wrong"
	if _, err := pop3.Check(context.Background(), opts); !errors.Is(err, vandelay.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
}
