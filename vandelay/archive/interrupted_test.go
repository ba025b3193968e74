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
