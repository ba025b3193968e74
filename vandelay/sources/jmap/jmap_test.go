package jmap_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestConformance runs the source conformance suite against a Cyrus
// account filled over JMAP, compared with what Cyrus's IMAP shows.
func TestConformance(t *testing.T) {
	ca := newCyrus(t)
	ca.load(t, 1, 40)
	want := ca.snapshot(t)
	vandelaytest.Run(t, func(t testing.TB) vandelay.MailSource { return ca.source(t, ca.set.Cyrus.JMAPURL()) }, want)
}

// TestCatchUp changes the source in every way a user can (add, move,
// re-flag, delete, rename) and checks that the catch-up carries exactly
// those changes through /changes: a recording front counts the method
// calls and blob downloads.
func TestCatchUp(t *testing.T) {
	ca := newCyrus(t)
	ids := ca.load(t, 2, 30)
	f := newFront(t, "http://"+ca.set.Cyrus.HTTP)
	a := vandelaytest.OpenArchive(t)

	res := importOnce(t, a, ca.source(t, f.URL()))
	if res.MessagesAdded != 30 {
		t.Fatalf("first import added %d, want 30", res.MessagesAdded)
	}
	if _, methods, dl := f.counts(); dl != 30 || methods["Blob/get"] == 0 {
		t.Errorf("first import fetched %d blobs (calls %v), want 30 with Blob/get", dl, methods)
	}

	// No change: one request, no Email/query, nothing downloaded.
	f.reset()
	res = importOnce(t, a, ca.source(t, f.URL()))
	req, methods, dl := f.counts()
	if vandelay.SourceDiff(res) != 0 || req > 1 || methods["Email/query"] > 0 || dl > 0 {
		t.Errorf("no-change run: %d requests, calls %v, %d downloads, changes %+v", req, methods, dl, res.Counts)
	}

	// One of each change.
	newID := ca.put(t, message(2, 1000, 900), []string{"$seen"}, "Work")
	ca.update(t, "Email", ids["5"], map[string]any{"mailboxIds": map[string]bool{ca.boxes["Trash"]: true}})
	ca.update(t, "Email", ids["6"], map[string]any{"keywords/$flagged": true})
	ca.destroy(t, ids["7"])
	ca.update(t, "Mailbox", ca.boxes["Reports 2024"], map[string]any{"name": "Reports 2025"})
	f.reset()
	res = importOnce(t, a, ca.source(t, f.URL()))
	req, methods, dl = f.counts()
	c := res.Counts
	if c.MessagesAdded != 1 || c.MessagesDeleted != 1 || c.MailboxesRenamed != 1 || c.MailboxesCreated != 0 || c.MailboxesDeleted != 0 {
		t.Errorf("catch-up counts %+v, want 1 added, 1 deleted, 1 renamed", c)
	}
	// The moved message may also be the re-flagged one's neighbour; both
	// are counted per message.
	if c.MessagesMoved != 1 || c.MessagesReflagged != 1 {
		t.Errorf("catch-up moved %d, reflagged %d; want 1 and 1", c.MessagesMoved, c.MessagesReflagged)
	}
	if methods["Email/query"] > 0 || dl != 1 {
		t.Errorf("catch-up: calls %v, %d downloads (want no Email/query, 1 download of %s)", methods, dl, newID)
	}
	t.Logf("catch-up: %d requests, calls %v", req, methods)
	vandelaytest.Check(t, a, ca.snapshot(t))

	// cannotCalculateChanges: the full comparison converges without a
	// duplicate and downloads only the one new blob.
	ca.put(t, message(2, 1001, 700), nil, "Inbox")
	ca.update(t, "Email", ids["8"], map[string]any{"keywords/$seen": true, "keywords/projekt-y": true})
	f.reset()
	f.set(func(f *front) { f.cannotCalc = true })
	src := ca.source(t, f.URL())
	res = importOnce(t, a, src)
	_, methods, dl = f.counts()
	if !src.Stats().Full || methods["Email/query"] == 0 {
		t.Errorf("fallback did not compare everything: stats %+v, calls %v", src.Stats(), methods)
	}
	if dl != 1 || res.MessagesAdded != 1 {
		t.Errorf("fallback downloaded %d blobs and added %d messages, want 1 and 1", dl, res.MessagesAdded)
	}
	want := ca.snapshot(t)
	vandelaytest.Check(t, a, want)
	st, err := a.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if int(st.Messages) != want.Count() {
		t.Errorf("archive holds %d messages, source %d", st.Messages, want.Count())
	}

	// And back to /changes: the fallback saved a position.
	f.set(func(f *front) { f.cannotCalc = false })
	f.reset()
	res = importOnce(t, a, ca.source(t, f.URL()))
	req, methods, _ = f.counts()
	if vandelay.SourceDiff(res) != 0 || req > 1 || methods["Email/query"] > 0 {
		t.Errorf("run after the fallback: %d requests, calls %v, changes %+v", req, methods, res.Counts)
	}
}

// TestProbe checks that the probe sees changes through /changes only.
func TestProbe(t *testing.T) {
	ca := newCyrus(t)
	ids := ca.load(t, 3, 10)
	f := newFront(t, "http://"+ca.set.Cyrus.HTTP)
	a := vandelaytest.OpenArchive(t)
	importOnce(t, a, ca.source(t, f.URL()))
	ctx := context.Background()
	probe := func() *vandelay.ProbeResult {
		t.Helper()
		known, err := a.Cursors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.reset()
		r, err := jmapsrc.Probe(ctx, ca.options(f.URL()), known)
		if err != nil {
			t.Fatal(err)
		}
		_, methods, dl := f.counts()
		if methods["Email/get"]+methods["Email/query"] > 0 || dl > 0 {
			t.Errorf("probe read emails: calls %v, %d downloads", methods, dl)
		}
		return r
	}
	if r := probe(); r.Changed() {
		t.Errorf("probe of an unchanged account: %+v", r)
	}
	ca.put(t, message(3, 500, 400), nil, "Inbox")
	ca.destroy(t, ids["1"])
	ca.mkdir(t, "Neu", "", true)
	r := probe()
	if !r.Changed() || r.New != 1 || r.Deleted != 1 || len(r.Added) != 1 || r.Added[0] != "Neu" {
		t.Errorf("probe after changes: %+v", r)
	}
	// 10 messages, one of them in two mailboxes: 11 copies, as totalEmails
	// counts; Mailbox/get has no size.
	if r, err := jmapsrc.Probe(ctx, ca.options(f.URL()), nil); err != nil || !r.NotImported || r.Messages != 11 || r.Bytes != -1 || r.BytesFrom != "" {
		t.Errorf("probe without an archive: %+v, %v", r, err)
	}
}

// TestBadInput: a method answered with serverFail, a truncated response,
// a blob that 404s (reported, the rest imported, partial), and a session
// without mail.
func TestBadInput(t *testing.T) {
	ca := newCyrus(t)
	ids := ca.load(t, 4, 12)
	f := newFront(t, "http://"+ca.set.Cyrus.HTTP)
	ctx := context.Background()

	for _, tc := range []struct {
		name   string
		inject func(f *front)
	}{
		{"serverFail", func(f *front) { f.serverFail = "Email/get" }},
		{"truncated", func(f *front) { f.truncate = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := vandelaytest.OpenArchive(t)
			f.set(tc.inject)
			defer f.set(func(f *front) { f.serverFail, f.truncate = "", false })
			res, err := vandelay.Import(ctx, ca.source(t, f.URL()), a, nil)
			if err == nil || !errors.Is(err, vandelay.ErrConnect) {
				t.Fatalf("import through a failing server: %v", err)
			}
			if res == nil || res.Complete {
				t.Errorf("the run was finished as complete: %+v", res)
			}
			t.Logf("reported: %v", err)
		})
	}

	for _, noBlobGet := range []bool{false, true} {
		t.Run(fmt.Sprintf("blob404-noblobget=%v", noBlobGet), func(t *testing.T) { blob404(t, ca, f, ids, noBlobGet) })
	}

	t.Run("no-mail", func(t *testing.T) {
		f.set(func(f *front) { f.noMail = true })
		defer f.set(func(f *front) { f.noMail = false })
		a := vandelaytest.OpenArchive(t)
		_, err := vandelay.Import(ctx, ca.source(t, f.URL()), a, nil)
		if !errors.Is(err, vandelay.ErrUsage) || !strings.Contains(err.Error(), "offers no mail") {
			t.Errorf("session without mail: %v", err)
		}
	})
}

// blob404: a blob the server does not serve (Blob/get notFound, then the
// download URL 404s) fails its Email only; the rest is imported and the
// run is partial; the next run imports it.
func blob404(t *testing.T, ca *cyrusAccount, f *front, ids map[string]string, noBlobGet bool) {
	ctx := context.Background()
	newSrc := func() vandelay.MailSource {
		o := ca.options(f.URL())
		o.NoBlobGet = noBlobGet
		src, err := jmapsrc.New(o)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	{
		a := vandelaytest.OpenArchive(t)
		var blob string
		var list []struct {
			BlobID string `json:"blobId"`
		}
		getEmail(t, ca, ids["3"], &list)
		blob = list[0].BlobID
		f.set(func(f *front) { f.missingBlob = blob })
		res, err := vandelay.Import(ctx, newSrc(), a, nil)
		var pe *vandelay.PartialError
		if !errors.As(err, &pe) {
			t.Fatalf("import with a missing blob: %v, want a PartialError", err)
		}
		if !strings.Contains(err.Error(), ids["3"]) {
			t.Errorf("the error does not name the email: %v", err)
		}
		if res == nil || res.MessagesAdded != 11 {
			t.Errorf("imported %+v, want the 11 others", res)
		}
		// Once the blob is served again, the next run completes.
		f.set(func(f *front) { f.missingBlob = "" })
		res = importOnce(t, a, newSrc())
		if res.MessagesAdded != 1 {
			t.Errorf("resume added %d, want 1", res.MessagesAdded)
		}
		vandelaytest.Check(t, a, ca.snapshot(t))
	}
}

func getEmail(t *testing.T, ca *cyrusAccount, id string, list any) {
	t.Helper()
	var r struct {
		List []map[string]any `json:"list"`
	}
	ca.call(t, "Email/get", map[string]any{"ids": []string{id}, "properties": []string{"blobId"}}, &r)
	if len(r.List) != 1 {
		t.Fatalf("email %s not found", id)
	}
	l := list.(*[]struct {
		BlobID string `json:"blobId"`
	})
	*l = append(*l, struct {
		BlobID string `json:"blobId"`
	}{r.List[0]["blobId"].(string)})
}

var _ = archive.Hash

// TestLoginAndAccount: the account is picked by name or id as the export
// picks it, a wrong password is an authentication failure, an unknown
// account is named, and the pre-flight check logs in without reading
// mail.
func TestLoginAndAccount(t *testing.T) {
	ca := newCyrus(t)
	ca.load(t, 6, 3)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		mod  func(o *jmapsrc.Options)
		want error
	}{
		{"by-name", func(o *jmapsrc.Options) { o.AccountName = ca.acct.Email }, nil},
		{"by-id", func(o *jmapsrc.Options) { o.AccountID = ca.id }, nil},
		{"wrong-password", func(o *jmapsrc.Options) { o.Password = "wrong" }, vandelay.ErrAuth},
		{"unknown-account", func(o *jmapsrc.Options) { o.AccountName = "nobody@example.test" }, vandelay.ErrConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ca.options(ca.set.Cyrus.JMAPURL())
			tc.mod(o)
			src, err := jmapsrc.New(o)
			if err != nil {
				t.Fatal(err)
			}
			a := vandelaytest.OpenArchive(t)
			res, err := vandelay.Import(ctx, src, a, nil)
			if !errors.Is(err, tc.want) || (tc.want == nil && res.MessagesAdded != 3) {
				t.Errorf("import: %v (%+v), want %v", err, res, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), ca.acct.Password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	chk, err := jmapsrc.Check(ctx, ca.options(ca.set.Cyrus.JMAPURL()))
	if err != nil || chk == nil {
		t.Fatalf("check: %+v, %v", chk, err)
	}
	bad := ca.options(ca.set.Cyrus.JMAPURL())
	bad.Password = "wrong"
	if _, err := jmapsrc.Check(ctx, bad); !errors.Is(err, vandelay.ErrAuth) {
		t.Errorf("check with a wrong password: %v", err)
	}
	for _, o := range []*jmapsrc.Options{
		{URL: "http://x/"},
		{URL: "http://x/", Login: vandelay.Login{Auth: "bearer"}},
		{URL: "http://x/", Login: vandelay.Login{MasterUser: "admin", Password: "p"}},
		{URL: "http://x/", Login: vandelay.Login{User: "u", Auth: "login"}},
		{URL: "http://x/", Login: vandelay.Login{User: "u"}, AccountID: "a", AccountName: "b"},
	} {
		if _, err := jmapsrc.New(o); !errors.Is(err, vandelay.ErrUsage) {
			t.Errorf("options %+v accepted: %v", o, err)
		}
	}
}

// TestActingForAnotherAccount logs in with another user's credential
// that the account's owner shared every mailbox with (Cyrus lists the
// account in that user's session, as Stalwart lists the accounts an
// admin may act for), picks the account by name through MasterUser +
// User, and imports it completely. Subscriptions are the delegate's own
// in a shared account, so they are not compared, nor is $seen (below).
func TestActingForAnotherAccount(t *testing.T) {
	ca := newCyrus(t)
	ca.load(t, 7, 8)
	delegate := ca.set.NewAccount(t)
	c := vandelaytest.DialIMAP(t, ca.set.Cyrus.IMAP, ca.acct.Email, ca.acct.Password)
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list {
		if err := c.SetACL(l.Mailbox, imap.RightsIdentifier(delegate.Email), imap.RightModificationReplace, imap.RightSet("lrswipkxtecdan")).Wait(); err != nil {
			t.Fatalf("setacl %s: %v", l.Mailbox, err)
		}
	}
	o := &jmapsrc.Options{URL: ca.set.Cyrus.JMAPURL(), Login: vandelay.Login{User: ca.acct.Email, MasterUser: delegate.Email, Password: delegate.Password}}
	src, err := jmapsrc.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if d := src.Describe(); d.Account != ca.acct.Email || d.Login != delegate.Email {
		t.Errorf("describe: %+v", d)
	}
	a := vandelaytest.OpenArchive(t)
	res := importOnce(t, a, src)
	want := ca.snapshot(t)
	want.CheckSubscriptions = false
	// Cyrus keeps \Seen per user: in a shared mailbox the delegate sees
	// its own (none), not the owner's. A migration through a delegate on
	// Cyrus loses $seen; an admin credential that acts as the account
	// (Stalwart) does not.
	for _, mb := range want.Mailboxes {
		for _, m := range mb.Messages {
			m.Keywords = slices.DeleteFunc(m.Keywords, func(k string) bool { return k == "$seen" })
		}
	}
	vandelaytest.Check(t, a, want)
	if res.MessagesAdded != want.Count() {
		t.Errorf("added %d, want %d", res.MessagesAdded, want.Count())
	}
}
