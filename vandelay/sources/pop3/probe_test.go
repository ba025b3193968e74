package pop3_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestProbe: after an import the probe (STAT only) is quiet; after
// appends and an expunge it reports the net growth as new.
func TestProbe(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	cl := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	var seeded int64
	for i := range 4 {
		msg := []byte("Subject: old " + string(rune('a'+i)) + "\r\n\r\nhello\r\n")
		seeded += int64(len(msg))
		vandelaytest.AppendIMAP(t, cl, "INBOX", msg, time.Now())
	}
	cfg := &pop3.Options{Server: vandelay.Server{Address: s.Dovecot.POP3, TLS: vandelay.TLSNone, AllowCleartext: true}, Login: vandelay.Login{User: acct.Email, Password: acct.Password}}
	// Before the first import STAT's two numbers are the account's size.
	if r, err := pop3.Probe(context.Background(), cfg, nil); err != nil || !r.NotImported || r.Messages != 4 || r.Bytes != seeded || r.BytesFrom != "stat" {
		t.Errorf("probe before the import: %+v, %v; want 4 messages, %d bytes from stat", r, err, seeded)
	}
	a := vandelaytest.OpenArchive(t)
	src, err := pop3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vandelaytest.Import(t, a, src, nil)
	src.Close()
	o, err := a.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := pop3.Probe(context.Background(), cfg, o.Cursors)
	if err != nil {
		t.Fatal(err)
	}
	if r.Changed() || r.Messages != 4 {
		t.Errorf("probe after the import: %+v", r)
	}
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 1\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 2\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 3\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.ExpungeFirst(t, cl, "INBOX", 1)
	r, err = pop3.Probe(context.Background(), cfg, o.Cursors)
	if err != nil {
		t.Fatal(err)
	}
	if r.New != 2 || r.MailboxesChanged != 1 || r.NotImported {
		t.Errorf("probe after 3 appends and 1 expunge: %+v, want 2 new (net)", r)
	}
}
