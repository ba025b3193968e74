package vandelay_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

var jmapSource = archive.Source{Kind: "jmap", Endpoint: "https://old.example.com/", Account: "ken@example.com", Login: "ken@example.com"}

func dialRecorded(t *testing.T) (*recorded.Server, *jmap.Client) {
	t.Helper()
	srv := recorded.New(t, "testdata/jmapdata/session.txtar")
	c, err := jmap.Discover(context.Background(), srv.URL+"/jmap/session", &jmap.Options{Auth: jmap.BasicAuth{User: "ken@example.com", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

// TestImportJMAPData imports Sieve scripts, identities, the vacation
// response and files from a JMAP source (recordings after RFC 9661, RFC
// 8621 6 and 8, and the FileNode draft; every request checked): the first
// run reads every type whole; a no-change run is one request of three
// /changes and the vacation get; cannotCalculateChanges for SieveScript
// reads the scripts again and changes nothing, while the identity that
// /changes names is updated.
func TestImportJMAPData(t *testing.T) {
	ctx := context.Background()
	srv, c := dialRecorded(t)
	a := openArchive(t)

	srv.Load("testdata/jmapdata/import-first.txtar")
	res, err := vandelay.ImportJMAPData(ctx, c, "u1", jmapSource, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sieve.Added != 2 || res.Sieve.Activated != 1 || res.Identities.Added != 2 || res.Files.Added != 3 || !res.VacationChanged {
		t.Fatalf("first import: %+v sieve %+v identities %+v files %+v", res, res.Sieve, res.Identities, res.Files)
	}
	if !reflect.DeepEqual(res.Full, []string{"sieve", "identities", "files"}) {
		t.Errorf("full reads %v", res.Full)
	}
	scripts, _ := a.SieveScripts(ctx, false)
	if len(scripts) != 2 || scripts[0].Name != "main" || !scripts[0].Active || scripts[0].Hash != archive.Hash([]byte("require [\"fileinto\", \"vacation\"];\nif header :contains \"subject\" \"Rechnung\" {\n  fileinto \"Rechnungen\";\n}\nvacation :days 7 :subject \"Out of office\" \"I am away until Monday.\";\n")) {
		t.Errorf("archived scripts %+v", scripts)
	}
	ids, _ := a.Identities(ctx, false)
	if len(ids) != 2 || ids[0].Email != "joe@example.com" || ids[0].Bcc != `[{"name":null,"email":"joe+archive@example.com"}]` || ids[0].TextSignature != "-- \nJoe Bloggs\nMaster of Email" {
		t.Errorf("archived identities %+v", ids)
	}
	v, _ := a.Vacation(ctx)
	if v == nil || !v.Enabled || v.Subject != "I am in Tahiti" || !v.From.Equal(time.Date(2014, 10, 30, 6, 12, 0, 0, time.UTC)) || v.SourceRef != "jmap:VacationResponse" {
		t.Errorf("archived vacation %+v", v)
	}
	cols, _ := a.FileCollections(ctx, false)
	if len(cols) != 1 {
		t.Fatalf("file collections %+v", cols)
	}
	files, _ := a.Files(ctx, cols[0].ID, false)
	if len(files) != 3 || files[1].Path != "Docs/Bericht März.txt" || files[1].Hash != archive.Hash([]byte("Quartalsbericht März\n")) {
		t.Errorf("archived files %+v", files)
	}

	srv.Load("testdata/jmapdata/import-nochange.txtar")
	before := c.Stats().Requests.Load()
	res, err = vandelay.ImportJMAPData(ctx, c, "u1", jmapSource, a, nil)
	if err != nil || res.Changes() != 0 || len(res.Unchanged) != 3 || len(res.Full) != 0 {
		t.Fatalf("no-change run: %+v %v", res, err)
	}
	if n := c.Stats().Requests.Load() - before; n != 1 {
		t.Errorf("no-change run sent %d requests, want 1", n)
	}

	srv.Load("testdata/jmapdata/import-cannotcalc.txtar")
	res, err = vandelay.ImportJMAPData(ctx, c, "u1", jmapSource, a, nil)
	if err != nil || !reflect.DeepEqual(res.Full, []string{"sieve"}) || res.Sieve.Changes() != 0 || res.Identities.Changed != 1 || res.Changes() != 1 {
		t.Fatalf("cannotCalculateChanges: %+v %v", res, err)
	}
}

// TestIdentitiesJMAP exports identities over RFC 8621 6 (recordings, every
// request checked): created once, unchanged on a re-run, one the target
// refuses (forbiddenFrom) reported with its text; an identity the user
// edited at the target is kept when the source deletes it (a conflict).
func TestIdentitiesJMAP(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t)
	sig := "-- \nJoe Bloggs\nMaster of Email (retired)"
	if _, err := a.SyncIdentities(ctx, []archive.NewIdentity{
		{SourceRef: "jmap:XD-3301-222-11_22AAz", Name: "Joe Bloggs", Email: "joe@example.com", Bcc: `[{"name":null,"email":"joe+archive@example.com"}]`,
			TextSignature: sig, HTMLSignature: "<div><b>Joe Bloggs</b></div><div>Master of Email</div>"},
		{SourceRef: "jmap:XD-9911312-11_22AAz", Name: "Joe B", Email: "*@example.com"},
	}, false); err != nil {
		t.Fatal(err)
	}
	srv, c := dialRecorded(t)
	refused := map[string]string{"*@example.com": "the account may not send as *@example.com"}

	srv.Load("testdata/jmapdata/identity-first.txtar")
	res, err := vandelay.ExportIdentitiesJMAP(ctx, a, c, "u1", nil)
	if err != nil || res.Created != 1 || !reflect.DeepEqual(res.Refused, refused) {
		t.Fatalf("first export: %+v %v", res, err)
	}
	srv.Load("testdata/jmapdata/identity-rerun.txtar")
	res, err = vandelay.ExportIdentitiesJMAP(ctx, a, c, "u1", nil)
	if err != nil || res.Changes() != 0 || res.Unchanged != 1 || !reflect.DeepEqual(res.Refused, refused) {
		t.Fatalf("re-run: %+v %v", res, err)
	}
	if _, err := a.SyncIdentities(ctx, nil, false); err != nil {
		t.Fatal(err)
	}
	srv.Load("testdata/jmapdata/identity-conflict.txtar")
	res, err = vandelay.ExportIdentitiesJMAP(ctx, a, c, "u1", nil)
	if err != nil || res.Changes() != 0 || !reflect.DeepEqual(res.Conflicts, []string{"joe@example.com"}) {
		t.Fatalf("edited at the target, deleted at the source: %+v %v", res, err)
	}
}

// TestImportJMAPDataKilled: an import cancelled right after the
// identities were served loses nothing and doubles nothing — the re-run
// asks SieveScript/changes for the scripts (their cursor was stored after
// their sync) and reads the identities and files, which were not stored,
// whole, and stores the vacation (stored last); the archive then holds
// everything once.
func TestImportJMAPDataKilled(t *testing.T) {
	srv, c := dialRecorded(t)
	a := openArchive(t)
	srv.Load("testdata/jmapdata/import-killed.txtar")
	ctx, cancel := context.WithCancel(context.Background())
	srv.OnServe(func(name string) {
		if name == "identity-get" {
			cancel()
		}
	})
	if _, err := vandelay.ImportJMAPData(ctx, c, "u1", jmapSource, a, nil); err == nil {
		t.Fatal("the cancelled import reported no error")
	}
	if ids, _ := a.Identities(context.Background(), true); len(ids) != 0 {
		t.Fatalf("identities stored by the killed run: %+v", ids)
	}
	srv.OnServe(nil)
	srv.Load("testdata/jmapdata/import-resume.txtar")
	res, err := vandelay.ImportJMAPData(context.Background(), c, "u1", jmapSource, a, nil)
	if err != nil || !reflect.DeepEqual(res.Unchanged, []string{"sieve"}) || res.Identities.Added != 2 || res.Files.Added != 3 || !res.VacationChanged {
		t.Fatalf("resumed import: %+v %v", res, err)
	}
	scripts, _ := a.SieveScripts(context.Background(), true)
	ids, _ := a.Identities(context.Background(), true)
	if len(scripts) != 2 || len(ids) != 2 {
		t.Errorf("after the resume: %d scripts, %d identities; want 2 and 2", len(scripts), len(ids))
	}
}
