package jmapdata_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/targets/jmapdata"
)

// The scripts of the recordings (testdata/sieve-*.txtar), after RFC
// 9661 3's examples.
const (
	scriptMain  = "require [\"fileinto\", \"vacation\"];\nif header :contains \"subject\" \"Rechnung\" {\n  fileinto \"Rechnungen\";\n}\nvacation :days 7 :subject \"Out of office\" \"I am away until Monday.\";\n"
	scriptSpam  = "require \"fileinto\";\nif header :is \"X-Spam-Flag\" \"YES\" { fileinto \"Junk\"; }\n"
	scriptSpam2 = "require \"fileinto\";\nif anyof (header :is \"X-Spam-Flag\" \"YES\", header :contains \"subject\" \"[SPAM]\") { fileinto \"Junk\"; }\n"
	scriptBad   = "require \"frobnicate\";\nfrobnicate;\n"
)

var msSource = archive.Source{Kind: "managesieve", Endpoint: "sieve.example.test:4190", Account: "ken@example.com", Login: "ken@example.com"}

// newArchive opens a fresh archive.
func newArchive(t *testing.T) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// dial starts the recorded server with the session script and discovers
// the session.
func dial(t *testing.T) (*recorded.Server, *jmap.Client) {
	t.Helper()
	srv := recorded.New(t, "testdata/session.txtar")
	c, err := jmap.Discover(context.Background(), srv.URL+"/jmap/session", &jmap.Options{Auth: jmap.BasicAuth{User: "ken@example.com", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func syncSieve(t *testing.T, a *archive.Archive, scripts ...archive.NewSieveScript) {
	t.Helper()
	if _, err := a.SyncSieve(context.Background(), msSource, scripts, nil); err != nil {
		t.Fatal(err)
	}
}

// TestSieveJMAP runs vandelay.ExportSieve and VerifySieve over RFC 9661
// against recordings that check every request: the first export uploads
// each script and creates it, then activates one; a re-run sends one
// SieveScript/get; an edit, an activation switch and a deletion are
// carried exactly; a script the user has at the target is a conflict and
// kept; a script the server refuses (invalidSieve) is reported with the
// server's text and the others go on.
func TestSieveJMAP(t *testing.T) {
	ctx := context.Background()
	srv, c := dial(t)
	a := newArchive(t)
	syncSieve(t, a, archive.NewSieveScript{Name: "main", Body: []byte(scriptMain), Active: true}, archive.NewSieveScript{Name: "spam", Body: []byte(scriptSpam)})
	newTarget := func() *jmapdata.SieveTarget {
		st, err := jmapdata.NewSieveTarget(c, "u1")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	srv.Load("testdata/sieve-first.txtar")
	res, err := vandelay.ExportSieve(ctx, a, newTarget(), nil)
	if err != nil || res.Put != 2 || res.Activated != 1 || res.Changes() != 3 {
		t.Fatalf("first export: %+v %v", res, err)
	}

	srv.Load("testdata/sieve-rerun.txtar")
	res, err = vandelay.ExportSieve(ctx, a, newTarget(), nil)
	if err != nil || res.Changes() != 0 || res.Unchanged != 2 {
		t.Fatalf("re-run: %+v %v", res, err)
	}

	srv.Load("testdata/sieve-edit.txtar")
	syncSieve(t, a, archive.NewSieveScript{Name: "spam", Body: []byte(scriptSpam2), Active: true})
	res, err = vandelay.ExportSieve(ctx, a, newTarget(), nil)
	if err != nil || res.Updated != 1 || res.Activated != 1 || res.Deleted != 1 || res.Put != 0 {
		t.Fatalf("edit, switch and delete: %+v %v", res, err)
	}

	srv.Load("testdata/sieve-conflict.txtar")
	syncSieve(t, a, archive.NewSieveScript{Name: "spam", Body: []byte(scriptSpam2), Active: true},
		archive.NewSieveScript{Name: "vacation", Body: []byte("require \"vacation\";\nvacation \"from the source\";\n")},
		archive.NewSieveScript{Name: "bad", Body: []byte(scriptBad)})
	res, err = vandelay.ExportSieve(ctx, a, newTarget(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"bad": `line 1: unsupported extension "frobnicate"`}; !reflect.DeepEqual(res.Refused, want) {
		t.Errorf("refused %q, want %q", res.Refused, want)
	}
	if !reflect.DeepEqual(res.Conflicts, []string{"vacation"}) || res.Changes() != 0 {
		t.Errorf("conflict run: %+v", res)
	}

	srv.Load("testdata/sieve-verify.txtar")
	rep, err := vandelay.VerifySieve(ctx, a, newTarget())
	if err != nil {
		t.Fatal(err)
	}
	want := &vandelay.SieveVerifyReport{Scripts: 3, Mismatches: []vandelay.SieveMismatch{{Name: "bad", Kind: "missing"}}, Conflicts: []string{"vacation"}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("verify: %+v, want %+v", rep, want)
	}
}

// TestSieveJMAPNoCapability: a session without RFC 9661 is refused with
// vandelay.ErrNoCapability, which apply reads as "use ManageSieve".
func TestSieveJMAPNoCapability(t *testing.T) {
	srv := recorded.New(t, "testdata/session-mail-only.txtar")
	c, err := jmap.Discover(context.Background(), srv.URL+"/jmap/session", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jmapdata.NewSieveTarget(c, "u1"); err == nil {
		t.Error("a session without urn:ietf:params:jmap:sieve gave a Sieve target")
	}
	if _, err := jmapdata.NewFileTarget(c, "u1"); err == nil {
		t.Error("a session without FileNode gave a file target")
	}
}
