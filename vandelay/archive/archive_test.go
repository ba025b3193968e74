package archive

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openTemp(t *testing.T) (*Archive, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.db")
	a, err := Open(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, p
}

func TestMigrationsSequence(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || SchemaVersion() != ms[len(ms)-1].Version {
		t.Fatalf("migrations: %d, version %d", len(ms), SchemaVersion())
	}
}

func TestLock(t *testing.T) {
	a, p := openTemp(t)
	if _, err := Open(context.Background(), p, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
	if _, err := Open(context.Background(), p, &Options{ReadOnly: true}); !errors.Is(err, ErrInUse) {
		t.Fatalf("read-only open during write: %v, want ErrInUse", err)
	}
	a.Close()
	r1, err := Open(context.Background(), p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	r2, err := Open(context.Background(), p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("two readers: %v", err)
	}
	r2.Close()
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "none.db"), &Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Fatalf("read-only missing: %v", err)
	}
}

var src = Source{Kind: "imap", Endpoint: "127.0.0.1:1", Account: "a@example.test", Login: "a@example.test"}

func mb(path string, ref string) MailboxInfo {
	return MailboxInfo{Path: path, Sep: "/", Selectable: true, SourceRef: ref, Subscribed: true}
}

func TestRunConvergence(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Work/Reports", "2"), mb("Sent", "3"), mb("Gesendet", "4")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if boxes["Work"] == nil || boxes["Work"].Selectable || boxes["Work/Reports"].ParentID != boxes["Work"].ID {
		t.Fatalf("placeholder parent: %+v", boxes["Work"])
	}
	if boxes["Sent"].Role != RoleSent || boxes["Gesendet"].Role != "" || boxes["INBOX"].Role != RoleInbox {
		t.Fatalf("roles: %q %q", boxes["Sent"].Role, boxes["Gesendet"].Role)
	}
	in, wr := boxes["INBOX"].ID, boxes["Work/Reports"].ID
	body := []byte("Subject: a\r\n\r\nx\r\n")
	add := func(r *Run, mbox int64, key string, b []byte, kw ...string) {
		t.Helper()
		if err := r.Add(ctx, mbox, key, &NewMessage{Body: b, ReceivedAt: time.Unix(1e9, 0), Keywords: kw}); err != nil {
			t.Fatal(err)
		}
	}
	add(r, in, "1", body, KeywordSeen)
	add(r, wr, "1", body, "Projekt-X")
	add(r, in, "2", []byte("Subject: b\r\n\r\ny\r\n"))
	add(r, in, "3", []byte("Subject: c\r\n\r\nz\r\n"))
	res, err := r.Finish(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.MessagesAdded != 3 || res.MailboxesCreated != 5 || res.BlobsStored != 3 {
		t.Fatalf("first run: %+v", res.Counts)
	}
	m, err := a.Message(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"$seen", "Projekt-X"}, m.Keywords); diff != "" {
		t.Fatal(diff)
	}
	if diff := cmp.Diff([]int64{in, wr}, m.MailboxIDs); diff != "" {
		t.Fatal(diff)
	}
	got, _ := a.BlobBytes(ctx, m.Blob)
	if string(got) != string(body) {
		t.Fatalf("blob %q", got)
	}
	ms0, _ := a.ModSeq(ctx)

	// Second run: rename Work/Reports → Work/Reports 2024, move c to it,
	// delete b, reflag a.
	r, err = a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err = r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Work/Reports 2024", "2"), mb("Sent", "3"), mb("Gesendet", "4")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if boxes["Work/Reports 2024"].ID != wr {
		t.Fatal("rename lost the id")
	}
	if err := r.Remove(ctx, in, "3"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, in, "2"); err != nil {
		t.Fatal(err)
	}
	add(r, wr, "2", []byte("Subject: c\r\n\r\nz\r\n"))
	if err := r.SetKeywords(ctx, in, "1", []string{KeywordSeen, KeywordFlagged}, 5); err != nil {
		t.Fatal(err)
	}
	res, err = r.Finish(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{MessagesDeleted: 1, MessagesMoved: 1, MessagesReflagged: 1, MailboxesRenamed: 1, Fetched: 1, FetchedBytes: 17}
	if diff := cmp.Diff(want, res.Counts); diff != "" {
		t.Fatalf("second run counts (-want +got):\n%s", diff)
	}
	var changed []int64
	for m, err := range a.Messages(ctx, &MessageFilter{ChangedSince: ms0, IncludeDeleted: true}) {
		if err != nil {
			t.Fatal(err)
		}
		changed = append(changed, m.ID)
	}
	if diff := cmp.Diff([]int64{1, 2, 3}, changed); diff != "" {
		t.Fatal(diff)
	}
	st, _ := a.Stats(ctx)
	if st.Messages != 2 || st.Tombstones != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Source-change guard and dry run.
	other := src
	other.Endpoint = "127.0.0.1:2"
	if _, err := a.BeginRun(ctx, other, nil); !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("guard: %v", err)
	}
	r, err = a.BeginRun(ctx, src, &RunOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	res, err = r.Finish(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.MailboxesDeleted != 4 || res.MessagesDeleted != 1 {
		t.Fatalf("dry run %+v", res.Counts)
	}
	if st2, _ := a.Stats(ctx); st2.Mailboxes != st.Mailboxes || st2.Messages != 2 {
		t.Fatalf("dry run changed the archive: %+v", st2)
	}
}

func TestExportMapping(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	tg, err := a.ExportTarget(ctx, "jmap http://x/ u1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.PutMappings(ctx, []Mapping{{Kind: KindEmail, ArchiveID: 7, RemoteID: "M1", Created: true, ModSeq: 3}}); err != nil {
		t.Fatal(err)
	}
	tg2, _ := a.ExportTarget(ctx, "jmap http://x/ u1")
	m, ok, err := tg2.Mapping(ctx, KindEmail, 7)
	if err != nil || !ok || m.RemoteID != "M1" || !m.Created || m.ModSeq != 3 {
		t.Fatalf("mapping %+v %v %v", m, ok, err)
	}
	tg.SetState(ctx, "Email", "s1")
	if s, _ := tg2.State(ctx, "Email"); s != "s1" {
		t.Fatal(s)
	}
}

func TestRoleFromName(t *testing.T) {
	for in, want := range map[string]string{"Sent": RoleSent, "INBOX/Sent Items": RoleSent, "Papierkorb": RoleTrash,
		"Brouillons": RoleDrafts, "Спам": RoleJunk, "Work/Sent": "", "inbox": RoleInbox, "Archiv": RoleArchive} {
		if got := RoleFromName(in, "/"); got != want {
			t.Errorf("%q: %q want %q", in, got, want)
		}
	}
}

// TestFinishAfterCancel: a cancelled context (first SIGINT) must not lose
// the open batch; Finish with a fresh context commits it.
func TestFinishAfterCancel(t *testing.T) {
	a, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, _ := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err := r.Add(ctx, boxes["INBOX"].ID, "1", &NewMessage{Body: []byte("a\r\n")}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Finish(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.Stats(context.Background()); st.Messages != 1 {
		t.Errorf("messages %d after cancel, want 1", st.Messages)
	}
}
