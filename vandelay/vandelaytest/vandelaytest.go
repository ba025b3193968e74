// Package vandelaytest is the conformance suite every mail source runs,
// plus helpers that read the expected state of an account independently of
// the adapters (SnapshotIMAP reads the server with a plain IMAP client).
//
// A source test builds a [Want] (the truth, e.g. from SnapshotIMAP or from
// the generated corpus) and calls [Run] with a factory for fresh source
// instances. Run imports into a fresh archive and checks fidelity ([Check]:
// mailboxes, roles, subscriptions, every message's SHA-256 re-hashed from
// the stored blob, keywords, internal dates, membership), then checks that
// a re-run changes nothing and that a dry run writes nothing.
package vandelaytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Want is the expected content of an account.
type Want struct {
	// Mailboxes by path (UTF-8, source separator).
	Mailboxes map[string]*WantMailbox
	// CheckSubscriptions and CheckRoles enable those comparisons.
	CheckSubscriptions, CheckRoles bool
	// CheckDates compares internal dates (to the second).
	CheckDates bool
}

// WantMailbox is one expected mailbox.
type WantMailbox struct {
	Role       string
	Subscribed bool
	// Messages by content hash.
	Messages map[string]*WantMessage
}

// WantMessage is one expected copy of a message.
type WantMessage struct {
	Hash       string
	Size       int64
	Keywords   []string
	ReceivedAt time.Time
}

// Count returns the number of distinct messages.
func (w *Want) Count() int {
	seen := map[string]bool{}
	for _, mb := range w.Mailboxes {
		for h := range mb.Messages {
			seen[h] = true
		}
	}
	return len(seen)
}

// Add records a copy.
func (w *Want) Add(path string, m *WantMessage) {
	if w.Mailboxes == nil {
		w.Mailboxes = map[string]*WantMailbox{}
	}
	mb := w.Mailboxes[path]
	if mb == nil {
		mb = &WantMailbox{Messages: map[string]*WantMessage{}}
		w.Mailboxes[path] = mb
	}
	if old, ok := mb.Messages[m.Hash]; ok {
		old.Keywords = archive.NormalizeKeywords(append(old.Keywords, m.Keywords...))
		return
	}
	mb.Messages[m.Hash] = m
}

// SnapshotIMAP reads an account over IMAP with go-imap directly: every
// selectable mailbox, its SPECIAL-USE role and subscription, and every
// message that is not \Deleted (bytes hashed, flags as JMAP keywords,
// INTERNALDATE).
func SnapshotIMAP(t testing.TB, addr, user, pass string) *Want {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("snapshot login: %v", err)
	}
	list, err := c.List("", "*", &imap.ListOptions{ReturnSubscribed: true, ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("snapshot list: %v", err)
	}
	w := &Want{Mailboxes: map[string]*WantMailbox{}, CheckSubscriptions: true, CheckRoles: true, CheckDates: true}
	for _, ld := range list {
		noselect := false
		mb := &WantMailbox{Messages: map[string]*WantMessage{}}
		for _, a := range ld.Attrs {
			switch a {
			case imap.MailboxAttrNoSelect, imap.MailboxAttrNonExistent:
				noselect = true
			case imap.MailboxAttrSubscribed:
				mb.Subscribed = true
			default:
				if r := archive.RoleFromAttr(string(a)); r != "" {
					mb.Role = r
				}
			}
		}
		if noselect {
			continue
		}
		path := ld.Mailbox
		if strings.EqualFold(path, "INBOX") {
			path, mb.Role = "INBOX", archive.RoleInbox
		}
		w.Mailboxes[path] = mb
		sel, err := c.Select(ld.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("snapshot select %q: %v", path, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true,
			RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		bufs, err := cmd.Collect()
		if err != nil {
			t.Fatalf("snapshot fetch %q: %v", path, err)
		}
		for _, b := range bufs {
			var kws []string
			deleted := false
			for _, f := range b.Flags {
				k, del := archive.KeywordFromFlag(string(f))
				deleted = deleted || del
				if k != "" {
					kws = append(kws, k)
				}
			}
			if deleted {
				continue
			}
			var body []byte
			for _, s := range b.BodySection {
				body = s.Bytes
			}
			sum := sha256.Sum256(body)
			w.Add(path, &WantMessage{Hash: hex.EncodeToString(sum[:]), Size: int64(len(body)), Keywords: archive.NormalizeKeywords(kws),
				ReceivedAt: b.InternalDate})
		}
	}
	return w
}

// Check compares an archive with want and reports every difference with
// t.Errorf. It also re-hashes every stored blob.
func Check(t testing.TB, a *archive.Archive, want *Want) {
	t.Helper()
	ctx := context.Background()
	mbs, err := a.Mailboxes(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*archive.Mailbox{}
	byID := map[int64]*archive.Mailbox{}
	for _, m := range mbs {
		byPath[m.Path] = m
		byID[m.ID] = m
	}
	// Expected keywords and dates per hash (union over copies).
	type exp struct {
		kws       []string
		dates     map[int64]bool
		size      int64
		mailboxes []string
	}
	exps := map[string]*exp{}
	for path, wm := range want.Mailboxes {
		am := byPath[path]
		if am == nil {
			t.Errorf("mailbox %q missing from the archive", path)
			continue
		}
		if want.CheckRoles && am.Role != wm.Role {
			t.Errorf("mailbox %q: role %q, want %q", path, am.Role, wm.Role)
		}
		if want.CheckSubscriptions && am.Subscribed != wm.Subscribed {
			t.Errorf("mailbox %q: subscribed %v, want %v", path, am.Subscribed, wm.Subscribed)
		}
		if !am.Selectable {
			t.Errorf("mailbox %q: not selectable in the archive", path)
		}
		for h, m := range wm.Messages {
			e := exps[h]
			if e == nil {
				e = &exp{dates: map[int64]bool{}, size: m.Size}
				exps[h] = e
			}
			e.kws = archive.NormalizeKeywords(append(e.kws, m.Keywords...))
			e.dates[m.ReceivedAt.Unix()] = true
			e.mailboxes = append(e.mailboxes, path)
		}
	}
	for _, m := range mbs {
		if _, ok := want.Mailboxes[m.Path]; !ok && m.Selectable {
			t.Errorf("archive has an unexpected mailbox %q", m.Path)
		}
	}
	seen := map[string]bool{}
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		e := exps[m.Blob]
		if e == nil {
			t.Errorf("archive has an unexpected message %d (%s, %d bytes)", m.ID, m.Blob[:12], m.Size)
			continue
		}
		seen[m.Blob] = true
		var got []string
		for _, id := range m.MailboxIDs {
			got = append(got, byID[id].Path)
		}
		sort.Strings(got)
		sort.Strings(e.mailboxes)
		if strings.Join(got, "|") != strings.Join(e.mailboxes, "|") {
			t.Errorf("message %s: mailboxes %q, want %q", m.Blob[:12], got, e.mailboxes)
		}
		if strings.Join(m.Keywords, " ") != strings.Join(e.kws, " ") {
			t.Errorf("message %s in %q: keywords %q, want %q", m.Blob[:12], got, m.Keywords, e.kws)
		}
		if want.CheckDates && len(e.dates) == 1 && !e.dates[m.ReceivedAt.Unix()] {
			t.Errorf("message %s: received %v, want %v", m.Blob[:12], m.ReceivedAt, e.dates)
		}
		if e.size != 0 && m.Size != e.size {
			t.Errorf("message %s: size %d, want %d", m.Blob[:12], m.Size, e.size)
		}
		r, _, err := a.Blob(ctx, m.Blob)
		if err != nil {
			t.Errorf("message %s: %v", m.Blob[:12], err)
			continue
		}
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			t.Errorf("read blob %s: %v", m.Blob[:12], err)
		}
		r.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != m.Blob {
			t.Errorf("blob %s re-hashes to %s", m.Blob[:12], got[:12])
		}
	}
	for h, e := range exps {
		if !seen[h] {
			t.Errorf("message %s (in %q) missing from the archive", h[:12], e.mailboxes)
		}
	}
}

// Import runs one import of src into a and returns the result; the run is
// finished as complete when Sync succeeds.
func Import(t testing.TB, a *archive.Archive, src vandelay.MailSource, opts *archive.RunOptions) *archive.Result {
	t.Helper()
	var o vandelay.ImportOptions
	if opts != nil {
		o.DryRun, o.AllowSourceChange = opts.DryRun, opts.AllowSourceChange
	}
	res, err := vandelay.Import(context.Background(), src, a, &o)
	if res == nil {
		t.Fatalf("import: %v", err)
	}
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

// OpenArchive opens a fresh archive in t.TempDir.
func OpenArchive(t testing.TB) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), filepath.Join(t.TempDir(), "archive.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// Run is the conformance suite for a mail source. newSource returns a fresh
// source for the same account (each call); want is the truth.
func Run(t *testing.T, newSource func(t testing.TB) vandelay.MailSource, want *Want) {
	t.Helper()
	a := OpenArchive(t)
	t.Run("fidelity", func(t *testing.T) {
		src := newSource(t)
		defer src.Close()
		res := Import(t, a, src, nil)
		if res.MessagesAdded != want.Count() {
			t.Errorf("added %d messages, want %d", res.MessagesAdded, want.Count())
		}
		Check(t, a, want)
	})
	t.Run("rerun-changes-nothing", func(t *testing.T) {
		src := newSource(t)
		defer src.Close()
		res := Import(t, a, src, nil)
		zero := archive.Counts{}
		got := res.Counts
		got.Fetched, got.FetchedBytes, got.Skipped = 0, 0, 0
		if got != zero {
			t.Errorf("re-run changed the archive: %+v", res.Counts)
		}
		Check(t, a, want)
	})
	t.Run("dry-run-writes-nothing", func(t *testing.T) {
		b := OpenArchive(t)
		src := newSource(t)
		defer src.Close()
		res := Import(t, b, src, &archive.RunOptions{DryRun: true})
		if res.MessagesAdded != want.Count() {
			t.Errorf("dry run reports %d additions, want %d", res.MessagesAdded, want.Count())
		}
		st, err := b.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 0 || st.Mailboxes != 0 || st.Blobs != 0 {
			t.Errorf("dry run wrote to the archive: %+v", st)
		}
	})
	t.Run("source-change-guard", func(t *testing.T) {
		src := newSource(t)
		defer src.Close()
		other := src.Describe()
		other.Endpoint += "-elsewhere"
		if _, err := a.BeginRun(context.Background(), other, nil); err == nil {
			t.Error("a run for another source was not refused")
		}
	})
}

// DialIMAP logs in to a plain-IMAP test server.
func DialIMAP(t testing.TB, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// AppendIMAP appends one message.
func AppendIMAP(t testing.TB, c *imapclient.Client, mailbox string, body []byte, date time.Time, flags ...imap.Flag) {
	t.Helper()
	cmd := c.Append(mailbox, int64(len(body)), &imap.AppendOptions{Time: date, Flags: flags})
	cmd.Write(body)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %q: %v", mailbox, err)
	}
}

// ExpungeFirst expunges the first n messages of a mailbox.
func ExpungeFirst(t testing.TB, c *imapclient.Client, mailbox string, n uint32) {
	t.Helper()
	if _, err := c.Select(mailbox, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	set := imap.SeqSet{imap.SeqRange{Start: 1, Stop: n}}
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()
}
