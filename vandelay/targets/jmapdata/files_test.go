package jmapdata_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/targets/jmapdata"
)

var davSource = archive.Source{Kind: "webdav", Endpoint: "http://files.example.test/", Account: "ken@example.com", Login: "ken@example.com"}

// putFiles records files (path → content; a path ending in "/" is a
// folder) and deletions in the archive's tree, as the WebDAV source does.
func putFiles(t *testing.T, a *archive.Archive, files map[string]string, deleted ...string) {
	t.Helper()
	ctx := context.Background()
	var entries []archive.NewFile
	for p, body := range files {
		if dir, ok := strings.CutSuffix(p, "/"); ok {
			entries = append(entries, archive.NewFile{Path: dir, IsDir: true})
			continue
		}
		hash, size, err := a.PutBlobStream(ctx, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, archive.NewFile{Path: p, Hash: hash, Size: size, ETag: hash[:8], MTime: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)})
	}
	if _, err := a.SyncFiles(ctx, davSource, "/files/ken/", entries, deleted, ""); err != nil {
		t.Fatal(err)
	}
}

// TestFilesJMAP runs vandelay.ExportFiles and VerifyFiles over FileNode
// against recordings that check every request: folders and files created
// with their names kept exactly, a re-run that sends one FileNode/get, an
// edit and a deletion (file before its folder) carried exactly, and a
// file the user changed at the target kept as a conflict, which verify
// reports as such and not as a mismatch.
func TestFilesJMAP(t *testing.T) {
	ctx := context.Background()
	srv, c := dial(t)
	a := newArchive(t)
	putFiles(t, a, map[string]string{"Docs/": "", "Docs/Bericht März.txt": "Quartalsbericht März\n", "Fotos/": "", "notes.md": "# Notizen\n\n- Umzug planen\n"})
	target := func() *jmapdata.FileTarget {
		ft, err := jmapdata.NewFileTarget(c, "u1")
		if err != nil {
			t.Fatal(err)
		}
		return ft
	}

	srv.Load("testdata/files-first.txtar")
	res, err := vandelay.ExportFiles(ctx, a, target(), nil)
	if err != nil || res.Folders != 2 || res.Put != 2 || res.Changes() != 4 {
		t.Fatalf("first export: %+v %v", res, err)
	}

	srv.Load("testdata/files-rerun.txtar")
	res, err = vandelay.ExportFiles(ctx, a, target(), nil)
	if err != nil || res.Changes() != 0 || res.Unchanged != 2 {
		t.Fatalf("re-run: %+v %v", res, err)
	}

	srv.Load("testdata/files-edit.txtar")
	putFiles(t, a, map[string]string{"notes.md": "# Notizen\n\n- Umzug planen\n- Stalwart testen\n"}, "Docs/Bericht März.txt", "Docs")
	res, err = vandelay.ExportFiles(ctx, a, target(), nil)
	if err != nil || res.Updated != 1 || res.Deleted != 2 || res.Put != 0 || res.Folders != 0 {
		t.Fatalf("edit and delete: %+v %v", res, err)
	}

	srv.Load("testdata/files-conflict.txtar")
	putFiles(t, a, map[string]string{"notes.md": "# Notizen\n\n- an der Quelle nochmals geändert\n"})
	res, err = vandelay.ExportFiles(ctx, a, target(), nil)
	if err != nil || res.Changes() != 0 || !reflect.DeepEqual(res.Conflicts, []string{"notes.md"}) {
		t.Fatalf("conflict: %+v %v", res, err)
	}

	srv.Load("testdata/files-verify.txtar")
	rep, err := vandelay.VerifyFiles(ctx, a, target())
	if err != nil || rep.Matched != 1 || len(rep.Mismatches) != 0 || !reflect.DeepEqual(rep.Conflicts, []string{"notes.md"}) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
