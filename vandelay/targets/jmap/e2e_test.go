package jmap_test

import (
	"bytes"
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// importIMAP runs one convergent import of the Dovecot account.
func importIMAP(t testing.TB, s *peers.Set, acct peers.Account, a *archive.Archive) *archive.Result {
	t.Helper()
	ctx := context.Background()
	src, err := imapsrc.New(&imapsrc.Options{Server: vandelay.Server{Address: s.Dovecot.IMAP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	res, err := vandelay.Import(ctx, src, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestDovecotToCyrus is the end-to-end case: a generated account (with a
// 25 MiB message, non-ASCII nested folders, keywords) goes Dovecot →
// archive → Cyrus; both servers' IMAP views must be equal, and verify must
// find every message hash-equal. Then the source changes (10 adds, 5
// deletes, 3 moves, 20 re-flags, a folder rename) and a second
// import+export must converge with exactly 10 uploads.
//
// MAILMIG_E2E_MESSAGES sets the corpus size (default 300; the issue's
// acceptance run uses 3000).
func TestDovecotToCyrus(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: end to end")
	}
	n := 300
	if v, err := strconv.Atoi(os.Getenv("MAILMIG_E2E_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx := context.Background()
	c0 := corpus.Generate(corpus.Options{Seed: 42, Messages: n, HugeSize: 25 << 20})
	if err := c0.LoadIMAP(ctx, s.Dovecot.IMAP, acct.Email, acct.Password, 4); err != nil {
		t.Fatal(err)
	}
	a := tempArchive(t)
	start := time.Now()
	ires := importIMAP(t, s, acct, a)
	t.Logf("import: %d messages in %v", ires.MessagesAdded, time.Since(start))
	jc := dial(t, s.Cyrus.JMAPURL(), acct)
	acctID, _ := jc.Session().FindAccount("")
	start = time.Now()
	res, err := tj.Export(ctx, a, jc, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("export: %d imported (%d MB) in %v, skipped %v", res.EmailsImported, res.UploadBytes>>20, time.Since(start), res.Skipped)
	compareServers(t, s, acct, a, acctID)

	// Source changes over Dovecot's IMAP.
	changeSource(t, s, acct)
	ires = importIMAP(t, s, acct, a)
	t.Logf("re-import: %+v", ires.Counts)
	jc2 := dial(t, s.Cyrus.JMAPURL(), acct)
	res, err = tj.Export(ctx, a, jc2, acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("re-export: %d imported, %d updated, %d destroyed, %d mailboxes updated, %d uploads", res.EmailsImported, res.EmailsUpdated, res.EmailsDestroyed, res.MailboxesUpdated, res.Uploads)
	if res.Uploads != 10 {
		t.Errorf("re-export uploaded %d blobs, want exactly the 10 new messages (moves are patches)", res.Uploads)
	}
	if res.MailboxesUpdated < 1 {
		t.Errorf("folder rename not carried over")
	}
	compareServers(t, s, acct, a, acctID)

	// No change: a re-run of import+export is quick and does nothing.
	start = time.Now()
	importIMAP(t, s, acct, a)
	tImport := time.Since(start)
	res, err = tj.Export(ctx, a, dial(t, s.Cyrus.JMAPURL(), acct), acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("no-change import+export: %v (import %v, export %v)", time.Since(start), tImport, res.Duration)
	if res.Uploads != 0 || res.EmailsUpdated != 0 || res.EmailsImported != 0 {
		t.Errorf("no-change run did work: %+v", res)
	}
}

// compareServers checks the target against the source through both
// servers' own IMAP, and the archive against the target through verify.
func compareServers(t *testing.T, s *peers.Set, acct peers.Account, a *archive.Archive, acctID string) {
	t.Helper()
	want := mergeCopies(readIMAP(t, s.Dovecot.IMAP, acct))
	got := mergeCopies(readIMAP(t, s.Cyrus.IMAP, acct))
	for _, d := range diffViews(want, got) {
		t.Errorf("dovecot vs cyrus: %s", d)
	}
	rep, err := verify.Target(context.Background(), a, dial(t, s.Cyrus.JMAPURL(), acct), acctID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("verify: %s", m)
	}
	if rep.HashEqual != rep.ArchiveEmails {
		t.Errorf("verify: %d of %d hash-equal", rep.HashEqual, rep.ArchiveEmails)
	}
	t.Logf("verify: %d emails hash-equal, %d mailboxes", rep.HashEqual, len(rep.Mailboxes))
}

// mergeCopies accounts for JMAP's model: the same bytes in several source
// folders are one Email with one keyword set and one receivedAt. For such
// copies the view keeps the union of their keywords and no date.
func mergeCopies(v imapView) imapView {
	folders := map[string]int{}
	union := map[string]map[string]bool{}
	for _, msgs := range v {
		for h, val := range msgs {
			folders[h]++
			if union[h] == nil {
				union[h] = map[string]bool{}
			}
			flags, _, _ := strings.Cut(val, "|")
			for _, f := range strings.Fields(flags) {
				union[h][f] = true
			}
		}
	}
	for _, msgs := range v {
		for h := range msgs {
			if folders[h] > 1 {
				var fl []string
				for f := range union[h] {
					fl = append(fl, f)
				}
				sort.Strings(fl)
				msgs[h] = strings.Join(fl, " ") + "|(copies)"
			}
		}
	}
	return v
}

func changeSource(t *testing.T, s *peers.Set, acct peers.Account) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	// 10 new messages
	more := corpus.Generate(corpus.Options{Seed: 4242, Messages: 10, Folders: -1})
	for _, m := range more.Messages {
		b := m.Bytes()
		cmd := c.Append("INBOX", int64(len(b)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: m.InternalDate})
		cmd.Write(b)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages < 30 {
		t.Fatalf("select INBOX: %v (%d messages)", err, sel.NumMessages)
	}
	// 5 deleted
	var del imap.SeqSet
	del.AddRange(1, 5)
	if err := c.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	// 20 re-flagged
	var rf imap.SeqSet
	rf.AddRange(6, 25)
	if err := c.Store(rf, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "Reflagged"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	// 3 moved to Archive
	var mv imap.SeqSet
	mv.AddRange(1, 3)
	if _, err := c.Move(mv, "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	// a folder renamed: a leaf user folder
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var leaf string
	for _, l := range list {
		name := l.Mailbox
		if strings.EqualFold(name, "INBOX") || hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || len(l.Attrs) > 0 && hasAttr(l.Attrs, imap.MailboxAttrHasChildren) {
			continue
		}
		if name == "Drafts" || name == "Sent" || name == "Trash" || name == "Junk" || name == "Archive" || strings.Contains(name, "/") {
			continue
		}
		leaf = name
		break
	}
	if leaf == "" {
		t.Fatal("no folder to rename")
	}
	if err := c.Rename(leaf, leaf+" (umbenannt)", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("renamed %q", leaf)
	_ = bytes.MinRead
}
