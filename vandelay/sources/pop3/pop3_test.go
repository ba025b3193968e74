package pop3_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

func TestMain(m *testing.M) { peers.Main(m) }

// TestPOP3 imports Dovecot's INBOX over POP3 and checks it hash-equal to
// what Dovecot serves over IMAP, then converges after deletions/additions.
func TestPOP3(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := corpus.Generate(corpus.Options{Seed: 11, Messages: 80, Folders: -1})
	if err := c.LoadIMAP(context.Background(), s.Dovecot.IMAP, acct.Email, acct.Password, 2); err != nil {
		t.Fatal(err)
	}
	snapshot := func() *vandelaytest.Want {
		full := vandelaytest.SnapshotIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
		want := &vandelaytest.Want{CheckRoles: true}
		for h, m := range full.Mailboxes["INBOX"].Messages {
			want.Add("INBOX", &vandelaytest.WantMessage{Hash: h, Size: m.Size})
		}
		want.Mailboxes["INBOX"].Role = archive.RoleInbox
		return want
	}
	want := snapshot()
	factory := func(t testing.TB) vandelay.MailSource {
		src, err := pop3.New(&pop3.Options{Server: vandelay.Server{Address: s.Dovecot.POP3, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login: vandelay.Login{User: acct.Email, Password: acct.Password}})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	vandelaytest.Run(t, factory, want)

	// Convergence: expunge 3 over IMAP, add 2; the re-run fetches only 2.
	a := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, a, factory(t), nil)
	cl := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	vandelaytest.ExpungeFirst(t, cl, "INBOX", 3)
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 1\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 2\r\n\r\nhello\r\n"), time.Now())
	res := vandelaytest.Import(t, a, factory(t), nil)
	if res.MessagesAdded != 2 || res.MessagesDeleted != 3 || res.Fetched != 2 {
		t.Errorf("re-run: %+v", res.Counts)
	}
	vandelaytest.Check(t, a, snapshot())

	t.Run("master-authzid", func(t *testing.T) {
		src, _ := pop3.New(&pop3.Options{Server: vandelay.Server{Address: s.Dovecot.POP3, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login: vandelay.Login{User: acct.Email, MasterUser: "admin", MasterForm: vandelay.MasterAuthzID, Password: s.Dovecot.MasterPassword}})
		b := vandelaytest.OpenArchive(t)
		if res := vandelaytest.Import(t, b, src, nil); res.MessagesAdded != want.Count()-1 {
			t.Errorf("master login added %d", res.MessagesAdded)
		}
	})
}

func TestReceivedDate(t *testing.T) {
	for name, tc := range map[string]struct {
		msg  string
		want string
	}{
		"received": {"Received: from a by b; Tue, 3 Mar 2026 10:00:00 +0000\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nx", "2026-03-03T10:00:00Z"},
		"date":     {"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nx", "2026-03-02T09:00:00Z"},
		"none":     {"Subject: x\r\n\r\nx", "0001-01-01T00:00:00Z"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := pop3.ReceivedDate([]byte(tc.msg)).UTC().Format(time.RFC3339); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
