package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// TestArchiveReader: one directory listing answers Has; Archive reads the
// totals, cursors and export status with a shared lock, and reports an
// archive held by a running import as in use instead of waiting.
func TestArchiveReader(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	m := &plan.Migration{State: plan.State{Path: state}}
	alice := &plan.Account{Address: "Alice@Example.test"}
	bob := &plan.Account{Address: "bob@example.test"}

	r := NewArchiveReader(m, filepath.Join(state, "archives"), nil)
	if r.Has(alice) {
		t.Fatal("Has without an archive directory")
	}

	if err := os.MkdirAll(filepath.Join(state, "archives"), 0o750); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, filepath.Join(state, "archives", "alice@example.test.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := a.BeginRun(ctx, archive.Source{Kind: "imap", Endpoint: "127.0.0.1:1", Account: "alice@example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := run.SyncMailboxes(ctx, []archive.MailboxInfo{{Path: "INBOX", Selectable: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := run.Add(ctx, boxes["INBOX"].ID, fmt.Sprint(i+1), &archive.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i), ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := run.SetCursor(ctx, boxes["INBOX"].ID, archive.Cursor{Validity: 7, Next: 4, Extra: "3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}

	r = NewArchiveReader(m, filepath.Join(state, "archives"), nil)
	if !r.Has(alice) || r.Has(bob) {
		t.Fatalf("Has(alice) = %v, Has(bob) = %v", r.Has(alice), r.Has(bob))
	}
	info, err := r.Archive(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if !info.InUse {
		t.Errorf("archive held read-write read as %+v, want in use", info)
	}
	a.Close()
	info, err = r.Archive(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if info.InUse || info.Messages != 3 || info.Mailboxes != 1 || info.Cursors != 1 || info.Unexported != 3 || info.LastImport.IsZero() || info.Bytes == 0 {
		t.Errorf("archive info %+v", info)
	}
}

// TestOpenArchiveWaitsForReader: an import waits for a plan's shared lock
// instead of failing with "in use".
func TestOpenArchiveWaitsForReader(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	m := &plan.Migration{State: plan.State{Path: state}}
	acct := &plan.Account{Address: "alice@example.test"}
	x := New(m, filepath.Join(state, "archives"), slog.New(slog.DiscardHandler))
	a, err := x.openArchive(ctx, acct, true, x.log)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	ro, err := archive.Open(ctx, x.archivePath(acct), &archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := x.openArchive(short, acct, true, x.log); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("open while a reader holds the archive: %v, want to wait until the context ends", err)
	}
	ro.Close()
	a, err = x.openArchive(ctx, acct, true, x.log)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
}

// TestArchiveSummary: an import or export leaves a summary stamped with
// the archive file's size and time; plan uses it while the stamp matches
// and reads the archive again once someone else wrote it.
func TestArchiveSummary(t *testing.T) {
	ctx := context.Background()
	state := t.TempDir()
	m := &plan.Migration{State: plan.State{Path: state}}
	acct := &plan.Account{Address: "alice@example.test"}
	x := New(m, filepath.Join(state, "archives"), slog.New(slog.DiscardHandler))
	a, err := x.openArchive(ctx, acct, true, x.log)
	if err != nil {
		t.Fatal(err)
	}
	addMessages(t, a, 0, 2)
	x.closeArchive(ctx, acct, a, x.log)

	r := NewArchiveReader(m, filepath.Join(state, "archives"), nil)
	info, err := r.Archive(ctx, acct)
	if err != nil || info.Messages != 2 {
		t.Fatalf("archive info %+v, %v", info, err)
	}
	// Plan believes the summary while the stamp matches…
	b, err := os.ReadFile(x.archivePath(acct) + summarySuffix)
	if err != nil {
		t.Fatal(err)
	}
	var sum archiveSummary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	sum.Info.Messages = 999
	b, _ = json.Marshal(&sum)
	if err := os.WriteFile(x.archivePath(acct)+summarySuffix, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if info, _ := r.Archive(ctx, acct); info.Messages != 999 {
		t.Errorf("summary not used: %+v", info)
	}
	// A reader (which leaves an empty WAL behind) does not make it stale.
	ro, err := archive.Open(ctx, x.archivePath(acct), &archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Overview(ctx); err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if info, _ := r.Archive(ctx, acct); info.Messages != 999 {
		t.Errorf("summary not used after a reader: %+v", info)
	}
	// …and reads the archive once another writer changed it.
	a, err = archive.Open(ctx, x.archivePath(acct), nil)
	if err != nil {
		t.Fatal(err)
	}
	addMessages(t, a, 2, 3)
	a.Close()
	if info, err := r.Archive(ctx, acct); err != nil || info.Messages != 3 {
		t.Errorf("stale summary used: %+v, %v", info, err)
	}
}

// addMessages imports messages from..to-1 into the archive's INBOX.
func addMessages(t *testing.T, a *archive.Archive, from, to int) {
	t.Helper()
	ctx := context.Background()
	run, err := a.BeginRun(ctx, archive.Source{Kind: "imap", Endpoint: "127.0.0.1:1", Account: "alice@example.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := run.SyncMailboxes(ctx, []archive.MailboxInfo{{Path: "INBOX", Selectable: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		if err := run.Add(ctx, boxes["INBOX"].ID, fmt.Sprint(i+1), &archive.NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i), ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	// A partial run: earlier messages stay.
	if _, err := run.Finish(ctx, false); err != nil {
		t.Fatal(err)
	}
}
