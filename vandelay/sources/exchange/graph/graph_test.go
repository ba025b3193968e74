package graph_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/oauth"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// sleeps records the waits the client asked for instead of spending
// them, so the throttling fixtures show how long the client waited
// without making the test slow or timing-dependent.
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

func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.d
	s.d = nil
	slices.Sort(out)
	return out
}

func options(srv *recorded.Server, sl *sleeps) *graph.Options {
	return &graph.Options{URL: srv.URL + "/v1.0", User: "alice@contoso.example",
		OAuth: oauth.Config{Authority: srv.URL, Tenant: "tenant-1", ClientID: "app-1", ClientSecret: "fixture-secret"},
		Sleep: sl.sleep, HTTP: srv.Client()}
}

// served returns the hash and size of the MIME bytes the named exchange
// of the script serves, the truth the archive must hold byte for byte.
func served(t *testing.T, script, name string) *vandelaytest.WantMessage {
	t.Helper()
	ex, err := recorded.ParseFile(script)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ex {
		if e.Name == name {
			return &vandelaytest.WantMessage{Hash: archive.Hash(e.RespBody), Size: int64(len(e.RespBody))}
		}
	}
	t.Fatalf("%s has no exchange %q", script, name)
	return nil
}

func with(m *vandelaytest.WantMessage, received string, kws ...string) *vandelaytest.WantMessage {
	c := *m
	c.Keywords = kws
	c.ReceivedAt, _ = time.Parse(time.RFC3339, received)
	return &c
}

func importOnce(t *testing.T, a *archive.Archive, opts *graph.Options) *archive.Result {
	t.Helper()
	src, err := graph.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	return vandelaytest.Import(t, a, src, nil)
}

// TestGraphImport runs three imports against the recorded exchanges of
// testdata/graph-run{1,2,3}.txtar and a probe between the second and the
// third: the first fills the archive (folders with roles, MIME bytes
// exactly as served, flags and categories as keywords, received dates)
// through paging, an expired token and two 429s; the second records
// exactly the changes its delta links bring (a move without a refetch, a
// re-flag, an addition, a deletion, a rename, a 410 resync without
// duplicates); the third changes nothing.
func TestGraphImport(t *testing.T) {
	r1, r2 := "testdata/graph-run1.txtar", "testdata/graph-run2.txtar"
	srv := recorded.New(t, r1)
	var sl sleeps
	a := vandelaytest.OpenArchive(t)

	res := importOnce(t, a, options(srv, &sl))
	if got, want := sl.take(), []time.Duration{2 * time.Second, 3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v (the Retry-After values of the two 429s)", got, want)
	}
	if srv.Used("token-refresh") != 1 {
		t.Error("the expired token was not refreshed")
	}
	want := wantRun1(t)
	vandelaytest.Check(t, a, want)
	if res.MessagesAdded != 6 || res.Fetched != 7 {
		t.Errorf("first import: %d added, %d fetched; want 6 distinct messages from 7 fetches", res.MessagesAdded, res.Fetched)
	}

	m1, m2, m3, m4 := served(t, r1, "value-m1"), served(t, r1, "value-m2"), served(t, r1, "value-m3"), served(t, r1, "value-m4")
	d1 := served(t, r1, "value-draft1")
	add := func(path, role string, m *vandelaytest.WantMessage) {
		want.Add(path, m)
		want.Mailboxes[path].Role = role
	}
	srv.Load(r2)
	res = importOnce(t, a, options(srv, &sl))
	got := res.Counts
	got.FetchedBytes, got.BlobBytes = 0, 0
	wantCounts := archive.Counts{MessagesAdded: 2, MessagesDeleted: 1, MessagesMoved: 1, MessagesReflagged: 1,
		MailboxesRenamed: 1, Fetched: 2, BlobsStored: 2}
	if got != wantCounts {
		t.Errorf("second import counted %+v, want %+v", got, wantCounts)
	}
	want = &vandelaytest.Want{CheckRoles: true, CheckDates: true, Mailboxes: map[string]*vandelaytest.WantMailbox{
		"Junk Email": {Role: archive.RoleJunk, Messages: map[string]*vandelaytest.WantMessage{}},
		"Sent Items": {Role: archive.RoleSent, Messages: map[string]*vandelaytest.WantMessage{}},
	}}
	add("Deleted Items", archive.RoleTrash, with(m2, "2026-11-04T11:30:01Z"))
	add("Drafts", archive.RoleDrafts, with(d1, "2026-11-02T09:00:00Z", "$draft", "$seen"))
	add("Drafts", archive.RoleDrafts, with(served(t, r2, "value-draft2"), "2026-12-03T10:00:00Z", "$draft", "$seen"))
	add("INBOX", archive.RoleInbox, with(m1, "2026-11-03T08:15:02Z"))
	add("INBOX", archive.RoleInbox, with(m3, "2026-11-05T14:00:03Z", "$seen"))
	add("INBOX", archive.RoleInbox, with(served(t, r2, "value-m7"), "2026-12-04T16:45:09Z"))
	add("INBOX/Bills", "", with(m4, "2026-11-06T14:00:01Z", "$seen"))
	add("INBOX/Bills", "", with(m3, "2026-11-05T14:00:03Z", "$seen", "Finance"))
	vandelaytest.Check(t, a, want)

	srv.Load("testdata/graph-probe.txtar")
	known, err := a.Cursors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pr, err := graph.Probe(context.Background(), options(srv, &sl), known)
	if err != nil {
		t.Fatal(err)
	}
	if pr.NotImported || pr.New != 1 || pr.Deleted != 0 || pr.MailboxesChanged != 1 || !pr.Changed() {
		t.Errorf("probe: %+v, want one new message in one changed folder", pr)
	}

	srv.Load("testdata/graph-run3.txtar")
	res = importOnce(t, a, options(srv, &sl))
	if vandelay.SourceDiff(res) != 0 || res.Fetched != 0 {
		t.Errorf("third import changed the archive: %+v", res.Counts)
	}
	vandelaytest.Check(t, a, want)
}

// TestGraphErrors checks how refusals are classified.
func TestGraphErrors(t *testing.T) {
	srv := recorded.New(t, "testdata/graph-denied.txtar")
	var sl sleeps
	src, err := graph.New(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	_, err = vandelay.Import(context.Background(), src, vandelaytest.OpenArchive(t), nil)
	if !errors.Is(err, vandelay.ErrAuth) {
		t.Errorf("refused secret: %v, want ErrAuth", err)
	}
	if _, err := graph.New(&graph.Options{User: "a@b.example", OAuth: oauth.Config{Tenant: "t"}}); !errors.Is(err, vandelay.ErrUsage) {
		t.Errorf("missing client id: %v, want ErrUsage", err)
	}
	_ = http.StatusOK
}

// wantRun1 is the archive the first Graph import must produce.
func wantRun1(t *testing.T) *vandelaytest.Want {
	r1 := "testdata/graph-run1.txtar"
	m1 := served(t, r1, "value-m1")
	m2 := served(t, r1, "value-m2")
	m3 := served(t, r1, "value-m3")
	m4 := served(t, r1, "value-m4")
	m6 := served(t, r1, "value-m6")
	d1 := served(t, r1, "value-draft1")
	want := &vandelaytest.Want{CheckRoles: true, CheckDates: true, Mailboxes: map[string]*vandelaytest.WantMailbox{
		"Deleted Items": {Role: archive.RoleTrash}, "Junk Email": {Role: archive.RoleJunk},
	}}
	for _, mb := range want.Mailboxes {
		mb.Messages = map[string]*vandelaytest.WantMessage{}
	}
	add := func(path, role string, m *vandelaytest.WantMessage) {
		want.Add(path, m)
		want.Mailboxes[path].Role = role
	}
	add("Drafts", archive.RoleDrafts, with(d1, "2026-11-02T09:00:00Z", "$draft", "$seen"))
	add("INBOX", archive.RoleInbox, with(m1, "2026-11-03T08:15:02Z", "$flagged", "$seen", "Project__X_", "Red_category"))
	add("INBOX", archive.RoleInbox, with(m2, "2026-11-04T11:30:01Z"))
	add("INBOX", archive.RoleInbox, with(m3, "2026-11-05T14:00:03Z", "$seen"))
	add("INBOX/Invoices", "", with(m4, "2026-11-06T14:00:01Z", "$seen"))
	add("INBOX/Invoices", "", with(m3, "2026-11-05T14:00:03Z", "$seen", "Finance"))
	add("Sent Items", archive.RoleSent, with(m6, "2026-11-04T12:00:00Z", "$seen"))
	return want
}

// TestGraphInterrupted cancels the first import when the Invoices folder's
// delta has been served (its messages in flight) and runs it again: the
// folders done keep their delta links, Invoices is read again, and the
// archive ends exactly as after an uninterrupted import — nothing lost,
// nothing doubled.
func TestGraphInterrupted(t *testing.T) {
	srv := recorded.New(t, "testdata/graph-interrupted.txtar")
	var sl sleeps
	a := vandelaytest.OpenArchive(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv.OnServe(func(name string) {
		if name == "delta-invoices" {
			cancel()
		}
	})
	src, err := graph.New(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vandelay.Import(ctx, src, a, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want context.Canceled", err)
	}
	srv.OnServe(nil)
	srv.Load("testdata/graph-resume.txtar")
	importOnce(t, a, options(srv, &sl))
	vandelaytest.Check(t, a, wantRun1(t))
}
