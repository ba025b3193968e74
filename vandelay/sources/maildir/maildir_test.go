package maildir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/maildir"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

func TestMain(m *testing.M) { peers.Main(m) }

// TestDovecotMaildir reads Dovecot's own Maildir of an account filled over
// IMAP and checks it against what Dovecot serves over IMAP: bytes (hash),
// keywords, internal dates, membership, hierarchy, roles, subscriptions.
// Then it changes the account over IMAP and checks the re-run.
func TestDovecotMaildir(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	c := corpus.Generate(corpus.Options{Seed: 21, Messages: 300, Folders: 16})
	if err := c.LoadIMAP(context.Background(), s.Dovecot.IMAP, acct.Email, acct.Password, 4); err != nil {
		t.Fatal(err)
	}
	root := s.Dovecot.MaildirPath(acct.Email)
	factory := func(t testing.TB) vandelay.MailSource {
		src, err := maildir.New(&maildir.Options{Path: root, User: acct.Email})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	vandelaytest.Run(t, factory, snapshot(t, s, acct, root))

	cl := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	if err := cl.Create("Tmp", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	vandelaytest.AppendIMAP(t, cl, "Tmp", []byte("Subject: one\r\n\r\n1\r\n"), time.Now())
	vandelaytest.AppendIMAP(t, cl, "Tmp", []byte("Subject: two\r\n\r\n2\r\n"), time.Now())
	a := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, a, factory(t), nil)
	vandelaytest.ExpungeFirst(t, cl, "Tmp", 2)
	if _, err := cl.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Reviewed"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Move(imap.SeqSetNum(10), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	cl.Unselect().Wait()
	if err := cl.Rename("Work/Reports 2024", "Work/Reports 2025", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res := vandelaytest.Import(t, a, factory(t), nil)
	if res.MessagesDeleted != 2 || res.MessagesReflagged != 3 || res.MessagesMoved != 1 || res.MailboxesRenamed != 1 || res.MessagesAdded != 0 {
		t.Errorf("re-run counts %+v", res.Counts)
	}
	vandelaytest.Check(t, a, snapshot(t, s, acct, root))
}

// snapshot is what Dovecot serves over IMAP, except for the subscription of
// the folders the test configuration marks "auto = subscribe" (Drafts,
// Sent, Trash, Junk): Dovecot reports them subscribed from its
// configuration, which a Maildir reader cannot see, so for those the
// subscriptions file on disk is the truth.
func snapshot(t *testing.T, s *peers.Set, acct peers.Account, root string) *vandelaytest.Want {
	w := vandelaytest.SnapshotIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	data, _ := os.ReadFile(filepath.Join(root, "subscriptions"))
	onDisk := map[string]bool{}
	for _, l := range strings.Split(string(data), "\n") {
		onDisk[l] = true
	}
	for _, f := range []string{"Drafts", "Sent", "Trash", "Junk"} {
		if mb := w.Mailboxes[f]; mb != nil {
			mb.Subscribed = onDisk[f]
		}
	}
	return w
}
