package imap_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/maildir"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// loadLarge fills a fresh account with the generated corpus (3,000
// messages, 16 user folders, one 25 MiB message) plus 20 more nested
// folders holding copies of INBOX messages (same bytes in several
// folders), 43+ folders in all.
func loadLarge(t testing.TB, a account) *corpus.Corpus {
	t.Helper()
	c := corpus.Generate(corpus.Options{Seed: 1, Messages: 3000, Folders: 16, HugeSize: 25 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.LoadIMAP(ctx, a.addr, a.user, a.pass, 4); err != nil {
		t.Fatalf("load corpus: %v", err)
	}
	cl := a.client(t)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		name := fmt.Sprintf("Projekte/Kunde %02d", i)
		if err := cl.Create(name, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			cl.Subscribe(name).Wait()
		}
		if _, err := cl.Copy(imap.SeqSetNum(uint32(i), uint32(i+20), uint32(i+40)), name).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestFidelityLarge is the "Done when" fidelity case: every message's
// bytes hash-equal to what Dovecot serves, keywords, internal dates,
// membership, hierarchy, roles and subscriptions.
func TestFidelityLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("3,000 messages / 190 MB; skipped with -short")
	}
	a := newAccount(t)
	start := time.Now()
	loadLarge(t, a)
	t.Logf("loaded in %v", time.Since(start))
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	if n := len(want.Mailboxes); n < 40 {
		t.Fatalf("only %d folders", n)
	}
	vandelaytest.Run(t, a.factory(), want)

	// The same account read from Dovecot's own Maildir, and its INBOX over
	// POP3, hash-equal to what Dovecot serves over IMAP.
	t.Run("maildir", func(t *testing.T) {
		root := a.set.Dovecot.MaildirPath(a.user)
		src, err := maildir.New(&maildir.Options{Path: root, User: a.user})
		if err != nil {
			t.Fatal(err)
		}
		w := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
		// Folders with "auto = subscribe" in the test Dovecot are
		// subscribed by configuration, not in the Maildir's file.
		w.CheckSubscriptions = false
		ar := vandelaytest.OpenArchive(t)
		vandelaytest.Import(t, ar, src, nil)
		vandelaytest.Check(t, ar, w)
	})
	t.Run("pop3", func(t *testing.T) {
		src, err := pop3.New(&pop3.Options{Server: vandelay.Server{Address: a.set.Dovecot.POP3, TLS: vandelay.TLSNone, AllowCleartext: true}, Login: vandelay.Login{User: a.user, Password: a.pass}})
		if err != nil {
			t.Fatal(err)
		}
		w := &vandelaytest.Want{}
		for h, m := range want.Mailboxes["INBOX"].Messages {
			w.Add("INBOX", &vandelaytest.WantMessage{Hash: h, Size: m.Size})
		}
		ar := vandelaytest.OpenArchive(t)
		vandelaytest.Import(t, ar, src, nil)
		vandelaytest.Check(t, ar, w)
	})
}
