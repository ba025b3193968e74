package maildir_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/sources/maildir"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestProbe: a probe of Dovecot's Maildir (directory listings only) after
// an import is quiet; after appends, an expunge, a new and a renamed
// folder over IMAP it reports them.
func TestProbe(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	cl := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	for _, f := range []string{"Work", "Old"} {
		if err := cl.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var crlf, lf int64 // the seeded size with CRLF and with LF line ends
	for i := range 3 {
		for _, m := range []string{"Subject: w" + string(rune('a'+i)) + "\r\n\r\nhello\r\n", "Subject: o" + string(rune('a'+i)) + "\r\n\r\nhello\r\n"} {
			crlf += int64(len(m))
			lf += int64(len(strings.ReplaceAll(m, "\r\n", "\n")))
		}
		vandelaytest.AppendIMAP(t, cl, "Work", []byte("Subject: w"+string(rune('a'+i))+"\r\n\r\nhello\r\n"), time.Now())
		vandelaytest.AppendIMAP(t, cl, "Old", []byte("Subject: o"+string(rune('a'+i))+"\r\n\r\nhello\r\n"), time.Now())
	}
	cfg := &maildir.Options{Path: s.Dovecot.MaildirPath(acct.Email), User: acct.Email}
	// Before the first import the probe adds up the files (Dovecot stores
	// them with LF line ends by default).
	if r, err := maildir.Probe(context.Background(), cfg, nil); err != nil || !r.NotImported || r.Messages != 6 || (r.Bytes != crlf && r.Bytes != lf) || r.BytesFrom != "files" {
		t.Errorf("probe before the import: %+v, %v; want 6 messages, %d (LF) or %d (CRLF) bytes from files", r, err, lf, crlf)
	}
	a := vandelaytest.OpenArchive(t)
	src, err := maildir.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vandelaytest.Import(t, a, src, nil)
	o, err := a.Overview(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := maildir.Probe(context.Background(), cfg, o.Cursors)
	if err != nil {
		t.Fatal(err)
	}
	if r.New != 0 || r.Deleted != 0 || len(r.Added)+len(r.Removed)+len(r.Renamed) > 0 || r.Messages != 6 {
		t.Errorf("probe after the import: %+v", r)
	}
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 1\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.AppendIMAP(t, cl, "INBOX", []byte("Subject: new 2\r\n\r\nhello\r\n"), time.Now())
	vandelaytest.ExpungeFirst(t, cl, "Work", 1)
	if err := cl.Create("Neu", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Rename("Old", "Older", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	r, err = maildir.Probe(context.Background(), cfg, o.Cursors)
	if err != nil {
		t.Fatal(err)
	}
	if r.New != 2 || r.Deleted != 1 || strings.Join(r.Added, ",") != "Neu" || strings.Join(r.Renamed, ",") != "Old → Older" || len(r.Removed) != 0 {
		t.Errorf("probe after changes: %+v", r)
	}
}
