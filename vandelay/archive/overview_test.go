package archive

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestOverview: totals, cursors and the export status (never exported,
// changed since export, tombstones still mapped), read through a second,
// read-only open while nothing else holds the file.
func TestOverview(t *testing.T) {
	ctx := context.Background()
	a, p := openTemp(t)
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Work", "2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		box := boxes["INBOX"].ID
		if i >= 4 {
			box = boxes["Work"].ID
		}
		if err := r.Add(ctx, box, fmt.Sprint(i+1), &NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nbody\r\n", i), ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.SetCursor(ctx, boxes["INBOX"].ID, Cursor{Validity: 1, Next: 5, ModSeq: 9, Extra: "4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	tgt, err := a.ExportTarget(ctx, "jmap test")
	if err != nil {
		t.Fatal(err)
	}
	var maps []Mapping
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			t.Fatal(err)
		}
		if len(maps) < 4 {
			maps = append(maps, Mapping{Kind: KindEmail, ArchiveID: m.ID, RemoteID: fmt.Sprint("e", m.ID), ModSeq: m.ModSeq})
		}
	}
	if err := tgt.PutMappings(ctx, maps); err != nil {
		t.Fatal(err)
	}
	// Re-flag one exported message and delete another at the source.
	r, err = a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1"), mb("Work", "2")}, nil)
	if err := r.SetKeywords(ctx, boxes["INBOX"].ID, "1", []string{"$seen"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, boxes["INBOX"].ID, "2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}

	ro, err := Open(ctx, p, &Options{ReadOnly: true})
	if err == nil {
		ro.Close()
		t.Fatal("read-only open succeeded while the writer holds the archive")
	}
	a.Close()
	ro, err = Open(ctx, p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	o, err := ro.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o.Stats.Messages != 5 || o.Stats.Mailboxes != 2 || o.Source == nil || o.Source.LastComplete.IsZero() {
		t.Errorf("stats %+v source %+v", o.Stats, o.Source)
	}
	if len(o.Cursors) != 2 || o.Cursors[0].Path != "INBOX" || o.Cursors[0].Cursor.Next != 5 || o.Cursors[0].Messages != 3 ||
		o.Cursors[1].Path != "Work" || !o.Cursors[1].Cursor.Updated.IsZero() || o.Cursors[1].Messages != 2 {
		t.Errorf("cursors %+v", o.Cursors)
	}
	if len(o.Exports) != 1 {
		t.Fatalf("exports %+v", o.Exports)
	}
	e := o.Exports[0]
	if e.Name != "jmap test" || e.Exported != 3 || e.Unexported != 2 || e.Changed != 1 || e.Deleted != 1 || e.MailboxesPending != 2 || e.LastExport.IsZero() || e.Pending() != 4 {
		t.Errorf("export status %+v", e)
	}
}

// BenchmarkOverview reads the overview and the cursors of an archive with
// 50,000 exported messages in 20 mailboxes: what plan pays per archive
// (Overview) and per probe (Cursors).
func BenchmarkOverview(b *testing.B) {
	ctx := context.Background()
	a, err := Open(ctx, b.TempDir()+"/a.db", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		b.Fatal(err)
	}
	var infos []MailboxInfo
	for i := range 20 {
		infos = append(infos, mb(fmt.Sprint("F", i), fmt.Sprint(i)))
	}
	boxes, err := r.SyncMailboxes(ctx, infos, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 50000 {
		if err := r.Add(ctx, boxes[fmt.Sprint("F", i%20)].ID, fmt.Sprint(i), &NewMessage{Body: fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", i), ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.Finish(ctx, true); err != nil {
		b.Fatal(err)
	}
	tgt, err := a.ExportTarget(ctx, "t")
	if err != nil {
		b.Fatal(err)
	}
	var maps []Mapping
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			b.Fatal(err)
		}
		maps = append(maps, Mapping{Kind: KindEmail, ArchiveID: m.ID, RemoteID: fmt.Sprint(m.ID), ModSeq: m.ModSeq})
	}
	if err := tgt.PutMappings(ctx, maps); err != nil {
		b.Fatal(err)
	}
	b.Run("Overview", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Overview(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Cursors", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Cursors(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
