package archive

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var sieveSrc = Source{Kind: "managesieve", Endpoint: "127.0.0.1:4190", Account: "a@example.test", Login: "a@example.test"}

// TestUpgradeFromV2 opens an archive written by the release before
// migration 0003 (testdata/v2-takeout.db.gz: one Takeout message, made
// with that release's "mailmig vandelay import takeout"), upgrades it and
// checks that the mail is still there and the new tables work.
func TestUpgradeFromV2(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "v2.db")
	f, err := os.Open("testdata/v2-takeout.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	// Read-only refuses an old schema, with a hint.
	if _, err := Open(ctx, p, &Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only open of a v2 archive succeeded; want the migrate hint")
	}
	a, err := Open(ctx, p, nil)
	if err != nil {
		t.Fatalf("open v2 archive: %v", err)
	}
	defer a.Close()
	var v, msgs int
	a.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	a.db.QueryRowContext(ctx, "SELECT count(*) FROM messages").Scan(&msgs)
	if v != SchemaVersion() || v < 3 || msgs != 1 {
		t.Fatalf("after upgrade: version %d (want %d), messages %d (want 1)", v, SchemaVersion(), msgs)
	}
	res, err := a.SyncSieve(ctx, sieveSrc, []NewSieveScript{{Name: "s", Body: []byte("keep;\r\n"), Active: true}}, nil)
	if err != nil || res.Added != 1 {
		t.Fatalf("sieve sync on upgraded archive: %+v, %v", res, err)
	}
}

func TestSyncSieve(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	sync := func(ss ...NewSieveScript) SieveResult {
		t.Helper()
		r, err := a.SyncSieve(ctx, sieveSrc, ss, nil)
		if err != nil {
			t.Fatal(err)
		}
		return *r
	}
	one := NewSieveScript{Name: "one", Body: []byte("require \"fileinto\";\r\nfileinto \"Müll\";\r\n"), Active: true}
	two := NewSieveScript{Name: "two", Body: []byte("keep;\n")}
	if got, want := sync(one, two), (SieveResult{Added: 2, Activated: 1}); got != want {
		t.Errorf("first: %+v, want %+v", got, want)
	}
	if got, want := sync(one, two), (SieveResult{Unchanged: 2}); got != want {
		t.Errorf("no change: %+v, want %+v", got, want)
	}
	// Dry run counts and writes nothing.
	r, err := a.SyncSieve(ctx, sieveSrc, []NewSieveScript{one}, &SieveSyncOptions{DryRun: true})
	if err != nil || r.Deleted != 1 || !r.DryRun {
		t.Fatalf("dry run: %+v, %v", r, err)
	}
	two.Body = []byte("discard;\n")
	two.Active, one.Active = true, false
	three := NewSieveScript{Name: "three", Body: []byte("stop;\n")}
	if got, want := sync(two, three), (SieveResult{Added: 1, Changed: 1, Deleted: 1, Activated: 1}); got != want {
		t.Errorf("changes: %+v, want %+v", got, want)
	}
	ss, err := a.SieveScripts(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name            string
		Active, Deleted bool
		Hash            string
	}
	var got []row
	for _, s := range ss {
		got = append(got, row{s.Name, s.Active, s.Deleted, s.Hash})
	}
	want := []row{{"one", false, true, Hash(one.Body)}, {"three", false, false, Hash(three.Body)}, {"two", true, false, Hash(two.Body)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("scripts (-want +got):\n%s", d)
	}
	b, err := a.BlobBytes(ctx, Hash(two.Body))
	if err != nil || string(b) != "discard;\n" {
		t.Errorf("blob: %q, %v", b, err)
	}
	// Re-created after deletion: a new row beside the tombstone.
	if got, want := sync(one, two, three), (SieveResult{Added: 1, Unchanged: 2}); got != want {
		t.Errorf("re-create: %+v, want %+v", got, want)
	}
	// Another account is refused without AllowSourceChange.
	other := sieveSrc
	other.Account = "b@example.test"
	if _, err := a.SyncSieve(ctx, other, nil, nil); !errors.Is(err, ErrSourceChanged) {
		t.Errorf("other account: %v, want ErrSourceChanged", err)
	}
	if _, err := a.SyncSieve(ctx, sieveSrc, []NewSieveScript{{Name: "x", Active: true}, {Name: "y", Active: true}}, nil); err == nil {
		t.Error("two active scripts accepted")
	}
}
