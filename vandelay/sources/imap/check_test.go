package imap_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
)

// TestCheck is the pre-flight login at the real Dovecot: the size from
// STATUS SIZE (Dovecot has no QUOTA here, which is reported), and a
// refused login as vandelay.ErrAuth.
func TestCheck(t *testing.T) {
	a := newAccount(t)
	c := a.client(t)
	var want int64
	for i := 0; i < 3; i++ {
		msg := testMessage(7, i, 2000)
		want += int64(len(msg))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	opts := &imapsrc.Options{Server: vandelay.Server{Address: a.addr, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: a.user, Password: a.pass}}
	r, err := imapsrc.Check(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size != want || r.SizeFrom != "status-size" || r.Quota != nil || len(r.Unknown) != 1 {
		t.Errorf("Check: %+v, want size %d from status-size and the quota unknown", r, want)
	}
	opts.Password = "wrong"
	if _, err := imapsrc.Check(context.Background(), opts); !errors.Is(err, vandelay.ErrAuth) {
		t.Errorf("wrong password: %v, want ErrAuth", err)
	}
}
