package ews_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/ews"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func options(srv *recorded.Server, sl *sleeps) *ews.Options {
	return &ews.Options{URL: srv.URL + "/EWS/Exchange.asmx",
		Login: vandelay.Login{User: "alice@contoso.example", MasterUser: "svc-migration", Password: "fixture-password"},
		HTTP:  srv.Client(), Sleep: sl.sleep}
}

var mimeRE = regexp.MustCompile(`(?s)<t:ItemId Id="([^"]+)"|<t:MimeContent CharacterSet="UTF-8">([^<]+)</t:MimeContent>`)

// served returns, by item id, the MIME bytes the script's GetItem answers
// carry (base64-decoded), the truth the archive must hold byte for byte.
func served(t *testing.T, script string) map[string]*vandelaytest.WantMessage {
	t.Helper()
	ex, err := recorded.ParseFile(script)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*vandelaytest.WantMessage{}
	for _, e := range ex {
		if !bytes.Contains(e.RespBody, []byte("MimeContent")) {
			continue
		}
		var body []byte
		for _, m := range mimeRE.FindAllSubmatch(e.RespBody, -1) {
			if m[2] != nil {
				if body, err = base64.StdEncoding.DecodeString(string(m[2])); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if body != nil {
				out[string(m[1])] = &vandelaytest.WantMessage{Hash: archive.Hash(body), Size: int64(len(body))}
				body = nil
			}
		}
	}
	return out
}

func with(m *vandelaytest.WantMessage, received string, kws ...string) *vandelaytest.WantMessage {
	c := *m
	c.Keywords = kws
	c.ReceivedAt, _ = time.Parse(time.RFC3339, received)
	return &c
}

// run1Want is the archive after the first import (ews-run1.txtar), m the
// served messages.
func run1Want(m map[string]*vandelaytest.WantMessage) *vandelaytest.Want {
	want := &vandelaytest.Want{CheckRoles: true, CheckDates: true, Mailboxes: map[string]*vandelaytest.WantMailbox{}}
	for p, role := range map[string]string{"Deleted Items": archive.RoleTrash, "Drafts": archive.RoleDrafts, "Junk E-Mail": archive.RoleJunk,
		"INBOX": archive.RoleInbox, "INBOX/Projects": "", "Sent Items": archive.RoleSent} {
		want.Mailboxes[p] = &vandelaytest.WantMailbox{Role: role, Messages: map[string]*vandelaytest.WantMessage{}}
	}
	want.Add("INBOX", with(m["AAMkItemE1"], "2026-11-09T08:00:05Z", "$seen", "Red_category"))
	want.Add("INBOX", with(m["AAMkItemE2"], "2026-11-10T09:00:02Z"))
	want.Add("INBOX", with(m["AAMkItemE3"], "2026-11-11T10:00:01Z", "$seen"))
	want.Add("INBOX/Projects", with(m["AAMkItemE4"], "2026-11-11T10:00:01Z", "$seen"))
	want.Add("Sent Items", with(m["AAMkItemE5"], "2026-11-09T09:30:00Z", "$seen"))
	return want
}

// TestEWSImport runs two imports against testdata/ews-run{1,2}.txtar: the
// first negotiates the version, impersonates the mailbox, pages
// SyncFolderItems by SyncState, waits out ErrorServerBusy and fills the
// archive with the MIME bytes exactly as served; the second records
// exactly the changes the stored SyncStates bring, including a refused
// SyncState read again without duplicates.
func TestEWSImport(t *testing.T) {
	r1, r2 := "testdata/ews-run1.txtar", "testdata/ews-run2.txtar"
	srv := recorded.New(t, r1)
	var sl sleeps
	a := vandelaytest.OpenArchive(t)
	src, err := ews.New(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	res := vandelaytest.Import(t, a, src, nil)
	if !slices.Equal(sl.d, []time.Duration{1500 * time.Millisecond}) {
		t.Errorf("waits %v, want the server's 1500 ms back-off", sl.d)
	}
	m := served(t, r1)
	vandelaytest.Check(t, a, run1Want(m))
	if res.MessagesAdded != 4 || res.Fetched != 5 {
		t.Errorf("first import: %d added, %d fetched; want 4 distinct messages from 5 fetches", res.MessagesAdded, res.Fetched)
	}

	srv.Load(r2)
	sl.d = nil
	src, err = ews.New(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	res = vandelaytest.Import(t, a, src, nil)
	got := res.Counts
	got.FetchedBytes, got.BlobBytes = 0, 0
	wantCounts := archive.Counts{MessagesAdded: 2, MessagesMoved: 1, MessagesReflagged: 2, MailboxesRenamed: 1, Fetched: 3, BlobsStored: 2}
	if got != wantCounts {
		t.Errorf("second import counted %+v, want %+v", got, wantCounts)
	}
	m2 := served(t, r2)
	want := &vandelaytest.Want{CheckRoles: true, CheckDates: true, Mailboxes: map[string]*vandelaytest.WantMailbox{}}
	for p, role := range map[string]string{"Deleted Items": archive.RoleTrash, "Drafts": archive.RoleDrafts, "Junk E-Mail": archive.RoleJunk,
		"INBOX": archive.RoleInbox, "INBOX.Projects 2026/2027": "", "Sent Items": archive.RoleSent} {
		want.Mailboxes[p] = &vandelaytest.WantMailbox{Role: role, Messages: map[string]*vandelaytest.WantMessage{}}
	}
	want.Add("Deleted Items", with(m2["AAMkItemE2M"], "2026-11-10T09:00:02Z"))
	want.Add("INBOX", with(m["AAMkItemE1"], "2026-11-09T08:00:05Z", "Red_category"))
	want.Add("INBOX", with(m["AAMkItemE3"], "2026-11-11T10:00:01Z", "$seen", "Blue_category"))
	want.Add("INBOX", with(m2["AAMkItemE6"], "2026-12-01T12:00:03Z"))
	want.Add("INBOX.Projects 2026/2027", with(m["AAMkItemE4"], "2026-11-11T10:00:01Z", "$seen"))
	want.Add("Sent Items", with(m["AAMkItemE5"], "2026-11-09T09:30:00Z", "$seen"))
	want.Add("Sent Items", with(m2["AAMkItemE7"], "2026-12-02T13:00:00Z", "$seen"))
	vandelaytest.Check(t, a, want)

	// A "/" in a folder name is kept: the mailbox's paths use "." instead.
	mbs, err := a.Mailboxes(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mb := range mbs {
		if mb.Path == "INBOX.Projects 2026/2027" {
			found = true
			if mb.Name != "Projects 2026/2027" || mb.Sep != "." {
				t.Errorf("renamed folder stored as name %q, separator %q", mb.Name, mb.Sep)
			}
		}
	}
	if !found {
		t.Error("no mailbox INBOX.Projects 2026/2027")
	}

	srv.Load("testdata/ews-probe.txtar")
	known, err := a.Cursors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ews.Probe(context.Background(), options(srv, &sl), known)
	if err != nil {
		t.Fatal(err)
	}
	if pr.NotImported || pr.New != 1 || pr.Deleted != 0 || pr.MailboxesChanged != 1 || !pr.Changed() {
		t.Errorf("probe: %+v, want one new message in one changed folder", pr)
	}
}

// TestEWSOptions checks the refusals of New.
func TestEWSOptions(t *testing.T) {
	for name, o := range map[string]*ews.Options{
		"no url":   {Login: vandelay.Login{User: "a@b.example", Password: "x"}},
		"no user":  {URL: "https://ex.example/EWS/Exchange.asmx", Login: vandelay.Login{Password: "x"}},
		"kerberos": {URL: "https://ex.example/EWS/Exchange.asmx", Login: vandelay.Login{User: "a@b.example", Password: "x", Auth: "kerberos"}},
		"relative": {URL: "/EWS/Exchange.asmx", Login: vandelay.Login{User: "a@b.example", Password: "x"}},
	} {
		if _, err := ews.New(o); !errors.Is(err, vandelay.ErrUsage) {
			t.Errorf("%s: %v, want ErrUsage", name, err)
		}
	}
}

// FuzzParseResponse feeds the SOAP decoder arbitrary bytes, seeded with
// the recorded answers: it must not panic, and what it accepts must be a
// SOAP body.
func FuzzParseResponse(f *testing.F) {
	for _, p := range []string{"testdata/ews-run1.txtar", "testdata/ews-run2.txtar"} {
		ex, err := recorded.ParseFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range ex {
			f.Add(e.RespBody)
		}
	}
	f.Add([]byte(`<Envelope><Body><X><ResponseMessages><Y ResponseClass="Error"><MessageXml><Value Name="BackOffMilliseconds">x</Value></MessageXml></Y></ResponseMessages></X></Body></Envelope>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := ews.ParseResponse(b)
		if err == nil && env == nil {
			t.Fatal("nil envelope without error")
		}
	})
}

// TestEWSCalendarsContacts imports the calendar and contact folders over
// EWS: the items are Exchange's own iCalendar and vCard, kept byte for
// byte, with their UIDs read from them.
func TestEWSCalendarsContacts(t *testing.T) {
	srv := recorded.New(t, "testdata/ews-dav.txtar")
	var sl sleeps
	a := vandelaytest.OpenArchive(t)
	ctx := context.Background()
	for _, tc := range []struct {
		mk   func(*ews.Options) (*ews.DAV, error)
		kind string
		uid  string
		id   string
	}{{ews.NewCalendars, archive.CollectionCalendar, "040000008200E00074C5B7101A82E00800000000EWS1", "AAMkCal1"},
		{ews.NewContacts, archive.CollectionAddressBook, "ews-contact-1", "AAMkCon1"}} {
		src, err := tc.mk(options(srv, &sl))
		if err != nil {
			t.Fatal(err)
		}
		res, err := vandelay.ImportDAV(ctx, src, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Collections != 1 || res.Added != 1 || len(res.Unparsable) > 0 || len(res.Failed) > 0 {
			t.Errorf("%s: %+v", tc.kind, res)
		}
		cols, err := a.DAVCollections(ctx, tc.kind, false)
		if err != nil || len(cols) != 1 {
			t.Fatalf("%s collections %v %v", tc.kind, cols, err)
		}
		its, err := a.DAVItems(ctx, cols[0].ID, false)
		if err != nil || len(its) != 1 || its[0].UID != tc.uid || its[0].Hash != served(t, "testdata/ews-dav.txtar")[tc.id].Hash {
			t.Errorf("%s items %+v %v; want the served bytes with UID %s", tc.kind, its, err, tc.uid)
		}
	}
}
