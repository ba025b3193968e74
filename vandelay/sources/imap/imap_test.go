package imap_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

func TestMain(m *testing.M) { peers.Main(m) }

func TestConformance(t *testing.T) {
	a := newAccount(t)
	a.load(t, 1, 150)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	vandelaytest.Run(t, a.factory(), want)
}

func TestNoChangeRerunFetchesNothing(t *testing.T) {
	a := newAccount(t)
	a.load(t, 2, 100)
	ar := vandelaytest.OpenArchive(t)
	src := a.factory()(t).(*imapsrc.Source)
	defer src.Close()
	vandelaytest.Import(t, ar, src, nil)
	start := time.Now()
	res := vandelaytest.Import(t, ar, src, nil)
	el := time.Since(start)
	st := src.Stats()
	if st.Bodies != 0 || st.Selects != 0 || res.Fetched != 0 {
		t.Errorf("no-change re-run fetched %d bodies and selected %d mailboxes", st.Bodies, st.Selects)
	}
	if st.Unchanged != len(testFolders) {
		t.Errorf("unchanged mailboxes %d, want %d", st.Unchanged, len(testFolders))
	}
	if el > time.Second {
		t.Errorf("no-change re-run took %v", el)
	}
}

// TestConvergence changes the source — adds 10, deletes 5, moves 3,
// re-flags 20, renames a folder — and checks that the re-run counts
// exactly those changes and that the archive equals the changed source.
func TestConvergence(t *testing.T) {
	a := newAccount(t)
	a.load(t, 3, 200)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, a.factory()(t), nil)

	c := a.client(t)
	// Adds: 10 new messages.
	for i := 0; i < 10; i++ {
		a.appendMsg(t, c, "INBOX", testMessage(33, i, 3000), nil, time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC))
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// Collect INBOX UIDs with flags, skipping \Deleted and the duplicated one.
	bufs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var plain []imap.UID
	for _, b := range bufs[:len(bufs)-10] { // not the new ones
		skip := false
		for _, f := range b.Flags {
			if f == imap.FlagDeleted || f == imap.FlagFlagged {
				skip = true
			}
		}
		if !skip {
			plain = append(plain, b.UID)
		}
	}
	if len(plain) < 8 {
		t.Fatalf("only %d usable INBOX messages", len(plain))
	}
	// Deletes: 5 from INBOX.
	var del imap.UIDSet
	del.AddNum(plain[:5]...)
	if err := c.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(del).Close(); err != nil {
		t.Fatal(err)
	}
	// Moves: 3 from INBOX to Archive.
	var mv imap.UIDSet
	mv.AddNum(plain[5:8]...)
	if _, err := c.Move(mv, "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	// Re-flags: 20 messages in other folders get \Flagged.
	reflagged := 0
	for _, f := range []string{"Sent", "Проекты", "日本語のフォルダ", "Ünïcödé & Co", "Lists/golang-nuts", "Entwürfe/Projekte", "Drafts", "Junk", "Trash"} {
		if reflagged == 20 {
			break
		}
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		bufs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var set imap.UIDSet
		for _, b := range bufs {
			ok := reflagged < 20
			for _, fl := range b.Flags {
				if fl == imap.FlagDeleted || fl == imap.FlagFlagged {
					ok = false
				}
			}
			if ok {
				set.AddNum(b.UID)
				reflagged++
			}
		}
		if len(set) > 0 {
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if reflagged != 20 {
		t.Fatalf("re-flagged only %d", reflagged)
	}
	c.Unselect().Wait()
	// Rename a folder.
	if err := c.Rename("Work/Reports 2024", "Work/Reports 2025", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	res := vandelaytest.Import(t, ar, a.factory()(t), nil)
	want := archive.Counts{MessagesAdded: 10, MessagesDeleted: 5, MessagesMoved: 3, MessagesReflagged: 20, MailboxesRenamed: 1}
	got := res.Counts
	got.Fetched, got.FetchedBytes, got.BlobsStored, got.BlobBytes, got.Skipped = 0, 0, 0, 0, 0
	if got != want {
		t.Errorf("re-run counts\n got %+v\nwant %+v", got, want)
	}
	if res.Fetched != 13 { // 10 new + 3 moved (new UIDs in Archive)
		t.Errorf("re-run fetched %d bodies, want 13", res.Fetched)
	}
	snap := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	vandelaytest.Check(t, ar, snap)
	// A fresh import of the changed source gives the same archive content.
	fresh := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, fresh, a.factory()(t), nil)
	vandelaytest.Check(t, fresh, snap)
	// Tombstones: exactly the 5 deleted.
	st, _ := ar.Stats(context.Background())
	if st.Tombstones != 5 {
		t.Errorf("tombstones %d, want 5", st.Tombstones)
	}
}

func TestUIDValidityChange(t *testing.T) {
	a := newAccount(t)
	a.load(t, 4, 60)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, a.factory()(t), nil)
	before, _ := ar.Stats(context.Background())
	a.set.Dovecot.Doveadm(t, "mailbox", "update", "-u", a.user, "--uid-validity", "12345", "INBOX")
	res := vandelaytest.Import(t, ar, a.factory()(t), nil)
	if res.MessagesAdded != 0 || res.MessagesDeleted != 0 || res.MessagesMoved != 0 || res.Fetched == 0 {
		t.Errorf("after UIDVALIDITY change: %+v (want no changes, some bodies re-matched)", res.Counts)
	}
	after, _ := ar.Stats(context.Background())
	if after.Messages != before.Messages || after.Blobs != before.Blobs {
		t.Errorf("archive grew: %+v -> %+v", before, after)
	}
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}

func TestIncludeDeletedAndFilters(t *testing.T) {
	a := newAccount(t)
	a.load(t, 5, 40)
	ctx := context.Background()

	ar := vandelaytest.OpenArchive(t)
	res := vandelaytest.Import(t, ar, a.factory(func(c *imapsrc.Options) { c.IncludeDeleted = true })(t), nil)
	def := vandelaytest.OpenArchive(t)
	res2 := vandelaytest.Import(t, def, a.factory()(t), nil)
	if res.MessagesAdded != res2.MessagesAdded+1 || res2.Skipped != 1 {
		t.Errorf("include-deleted added %d, default added %d skipped %d", res.MessagesAdded, res2.MessagesAdded, res2.Skipped)
	}

	f := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, f, a.factory(func(c *imapsrc.Options) {
		c.Include = []*regexp.Regexp{regexp.MustCompile(`^(INBOX|Work/.*)$`)}
		c.Exclude = []*regexp.Regexp{regexp.MustCompile(`2024`)}
	})(t), nil)
	mbs, _ := f.Mailboxes(ctx, nil)
	var paths []string
	for _, m := range mbs {
		paths = append(paths, m.Path)
	}
	if strings.Join(paths, ",") != "INBOX" {
		t.Errorf("include/exclude gave %q", paths)
	}

	c := a.client(t)
	if err := c.Unsubscribe("Проекты").Wait(); err != nil {
		t.Fatal(err)
	}
	s := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, s, a.factory(func(c *imapsrc.Options) { c.SubscribedOnly = true })(t), nil)
	mbs, _ = s.Mailboxes(ctx, nil)
	for _, m := range mbs {
		if m.Path == "Проекты" {
			t.Error("unsubscribed folder imported with SubscribedOnly")
		}
	}
	if len(mbs) < 10 {
		t.Errorf("subscribed-only imported %d mailboxes", len(mbs))
	}
}

func TestLoginForms(t *testing.T) {
	a := newAccount(t)
	a.load(t, 6, 5)
	for name, mod := range map[string]func(*imapsrc.Options){
		"plain":       func(c *imapsrc.Options) { c.Auth = vandelay.AuthPlain },
		"login":       func(c *imapsrc.Options) { c.Auth = vandelay.AuthLogin },
		"master-star": func(c *imapsrc.Options) { c.MasterUser, c.Password = "admin", a.set.Dovecot.MasterPassword },
		"master-authzid": func(c *imapsrc.Options) {
			c.MasterUser, c.MasterForm, c.Password = "admin", vandelay.MasterAuthzID, a.set.Dovecot.MasterPassword
		},
	} {
		t.Run(name, func(t *testing.T) {
			ar := vandelaytest.OpenArchive(t)
			res := vandelaytest.Import(t, ar, a.factory(mod)(t), nil)
			if res.MessagesAdded != 5 {
				t.Errorf("added %d", res.MessagesAdded)
			}
		})
	}
	t.Run("bad-password", func(t *testing.T) {
		src, _ := imapsrc.New(a.config(func(c *imapsrc.Options) { c.Password = "wrong" }))
		ar := vandelaytest.OpenArchive(t)
		run, _ := ar.BeginRun(context.Background(), src.Describe(), nil)
		err := src.Sync(context.Background(), run, nil)
		if !errors.Is(err, vandelay.ErrAuth) {
			t.Errorf("bad password: %v, want ErrAuth", err)
		}
	})
	t.Run("cleartext-refused", func(t *testing.T) {
		src, _ := imapsrc.New(a.config(func(c *imapsrc.Options) { c.AllowCleartext = false }))
		ar := vandelaytest.OpenArchive(t)
		run, _ := ar.BeginRun(context.Background(), src.Describe(), nil)
		if err := src.Sync(context.Background(), run, nil); !errors.Is(err, vandelay.ErrUsage) {
			t.Errorf("cleartext: %v, want ErrUsage", err)
		}
	})
}

func TestXOAUTH2InitialResponse(t *testing.T) {
	mech, ir, err := imapsrc.NewXOAUTH2Client("u@example.test", "tok").Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=u@example.test\x01auth=Bearer tok\x01\x01" {
		t.Errorf("got %q %q %v", mech, ir, err)
	}
}

// TestReconnectAfterKick drops every connection of the account in the
// middle of an import (doveadm kick); the workers reconnect with backoff
// and the import completes with the right content.
func TestReconnectAfterKick(t *testing.T) {
	if testing.Short() {
		t.Skip("uses doveadm; skipped with -short")
	}
	a := newAccount(t)
	a.load(t, 8, 300)
	ar := vandelaytest.OpenArchive(t)
	prog := &kickProgress{at: 60, kick: func() { a.set.Dovecot.Doveadm(t, "kick", a.user) }}
	// 100 messages/s: the 240 messages after the kick take 2.4 s, time
	// enough for doveadm (which takes over a second on a loaded machine)
	// to kick connections that are still in use; at 400/s a fast import
	// could finish first and nobody would need to reconnect.
	src := a.factory(func(c *imapsrc.Options) {
		c.Throttle = vandelay.NewThrottle(0, 100, 0)
		c.Batch = 20
	})(t)
	res, err := vandelay.Import(t.Context(), src, ar, &vandelay.ImportOptions{Progress: prog})
	if err != nil {
		t.Fatal(err)
	}
	if !prog.kicked.Load() {
		t.Fatal("never kicked")
	}
	if st := src.(*imapsrc.Source).Stats(); st.Connections <= 4 {
		t.Errorf("only %d connections: nobody reconnected", st.Connections)
	}
	t.Logf("%+v", res.Counts)
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}

type kickProgress struct {
	at     int64
	done   atomic.Int64
	kicked atomic.Bool
	kick   func()
}

func (p *kickProgress) Discovered(int, int64) {}
func (p *kickProgress) Done(n int, _ int64) {
	if p.done.Add(int64(n)) >= p.at && p.kicked.CompareAndSwap(false, true) {
		go p.kick()
	}
}

// TestWithoutExtensions runs the conformance suite and a convergence pass
// as if the server had no CONDSTORE/QRESYNC, LIST-STATUS, LIST-EXTENDED or
// SPECIAL-USE: LIST + STATUS per mailbox, full flag fetches, roles by name.
func TestWithoutExtensions(t *testing.T) {
	a := newAccount(t)
	a.load(t, 10, 80)
	factory := func(t testing.TB) vandelay.MailSource {
		src := a.factory()(t)
		imapsrc.IgnoreCaps(src, imap.CapCondStore, imap.CapQResync, imap.CapListStatus, imap.CapListExtended, imap.CapSpecialUse)
		return src
	}
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	vandelaytest.Run(t, factory, want)

	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, factory(t), nil)
	c := a.client(t)
	vandelaytest.ExpungeFirst(t, c, "Sent", 1)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{"$Reviewed"}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()
	res := vandelaytest.Import(t, ar, factory(t), nil)
	if res.MessagesReflagged != 1 || res.MessagesDeleted+res.MessagesMoved != 1 || res.Fetched != 0 {
		t.Errorf("re-run without CONDSTORE: %+v", res.Counts)
	}
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}

// TestFolderCreateDelete: a folder deleted at the source is tombstoned with
// its messages; a new folder is created.
func TestFolderCreateDelete(t *testing.T) {
	a := newAccount(t)
	a.load(t, 11, 60)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, a.factory()(t), nil)
	ctx := context.Background()
	var gone *archive.Mailbox
	mbs, _ := ar.Mailboxes(ctx, nil)
	for _, m := range mbs {
		if m.Path == "Lists/golang-nuts" {
			gone = m
		}
	}
	n := 0
	for _, err := range ar.Messages(ctx, &archive.MessageFilter{MailboxID: gone.ID}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	c := a.client(t)
	if err := c.Delete("Lists/golang-nuts").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("Neu/Ordner", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	res := vandelaytest.Import(t, ar, a.factory()(t), nil)
	// "Lists" stays as a placeholder only if something else is under it.
	if res.MailboxesCreated != 2 || res.MailboxesDeleted < 1 || res.MessagesDeleted != n {
		t.Errorf("counts %+v; want 2 created (Neu, Neu/Ordner), the folder deleted, %d messages deleted", res.Counts, n)
	}
	m, err := ar.Mailbox(ctx, gone.ID)
	if err != nil || m.Deleted.IsZero() {
		t.Errorf("deleted folder is not a tombstone: %+v %v", m, err)
	}
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}
