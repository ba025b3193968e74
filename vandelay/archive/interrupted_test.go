package archive

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A first run killed before its schema committed leaves an empty file:
// readers see "no archive yet", the next writer creates the schema. Some
// other program's database is refused, never migrated.
func TestOpenInterruptedOrForeign(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, empty, &Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Fatalf("read-only open of an empty file: %v, want ErrNotExist", err)
	}
	a, err := Open(ctx, empty, nil)
	if err != nil {
		t.Fatalf("read-write open of an empty file: %v", err)
	}
	a.Close()
	r, err := Open(ctx, empty, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after creation: %v", err)
	}
	r.Close()

	foreign := filepath.Join(dir, "foreign.db")
	db, err := sql.Open("sqlite", foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE notes (body TEXT)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(ctx, foreign, &Options{ReadOnly: ro})
		if err == nil || !strings.Contains(err.Error(), "foreign") {
			t.Errorf("open foreign database (read-only %v): %v, want a refusal", ro, err)
		}
	}
}

// A first run killed inside setPageSize's VACUUM (the one moment an
// archive is in rollback-journal mode) leaves a hot journal that a
// read-only opener cannot roll back (SQLITE_READONLY_ROLLBACK): readers
// see "no archive yet" as for an empty file, and the next writer rolls the
// journal back and creates the archive.
func TestOpenHotJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	db, err := sql.Open("sqlite", src+"?_pragma=journal_mode(DELETE)&_pragma=cache_size(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	// Enough pages to spill the one-page cache into the file, so that the
	// journal is needed to undo them.
	if _, err := tx.Exec("CREATE TABLE filler (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := tx.Exec("INSERT INTO filler VALUES (randomblob(4000))"); err != nil {
			t.Fatal(err)
		}
	}
	// "Kill": copy the file and its journal while the transaction is open.
	crashed := filepath.Join(dir, "crashed.db")
	for _, suffix := range []string{"", "-journal"} {
		b, err := os.ReadFile(src + suffix)
		if err != nil {
			t.Fatalf("read %s: %v", src+suffix, err)
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tx.Rollback()

	if _, err := Open(ctx, crashed, &Options{ReadOnly: true}); !errors.Is(err, ErrNotExist) {
		t.Fatalf("read-only open with a hot journal: %v, want ErrNotExist", err)
	}
	a, err := Open(ctx, crashed, nil)
	if err != nil {
		t.Fatalf("read-write open with a hot journal: %v", err)
	}
	a.Close()
	r, err := Open(ctx, crashed, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open after the writer: %v", err)
	}
	r.Close()
}
