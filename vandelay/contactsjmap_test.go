package vandelay_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// The JMAP contacts paths (RFC 9610) are checked against recordings
// written from RFC 9610's and RFC 9553's examples: no server in the
// harness offers urn:ietf:params:jmap:contacts (Cyrus 3.6 has only its
// own cyrusimap.org namespace). The recorded server checks every request
// body the client sends.

const recDir = "testdata/contacts-jmap/"

var davSrc = archive.Source{Kind: "carddav", Endpoint: "https://dav.example.test/", Account: "jane"}

func syncBook(t testing.TB, a *archive.Archive, items []archive.NewItem, deleted ...string) {
	t.Helper()
	cs := &archive.CollectionSync{Collection: archive.NewCollection{Href: "/dav/jane/kontakte/", DisplayName: "Kontakte", Description: "Privat – Familie & Freunde"},
		Items: items, Deleted: deleted}
	if _, err := a.SyncDAVCollection(context.Background(), archive.CollectionAddressBook, davSrc, cs, false); err != nil {
		t.Fatal(err)
	}
}

func vcard(href, body string) archive.NewItem {
	return archive.NewItem{Href: "/dav/jane/kontakte/" + href, ETag: `"` + href + `"`, MediaType: "text/vcard", Body: []byte(strings.ReplaceAll(body, "\n", "\r\n"))}
}

const (
	janeV1 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work:jane_doe@example.com\nEND:VCARD\n"
	janeV2 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work;PREF=1:jane.doe@example.com\nNOTE:Neue Adresse seit Dezember\nEND:VCARD\n"
	janeV3 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work;PREF=1:jane.doe@example.com\nNOTE:Seit Dezember in Berlin\nEND:VCARD\n"
	john   = "BEGIN:VCARD\nVERSION:3.0\nUID:22B2C7DF-9120-4969-8460-05956FE6B065\nFN:John Q. Public\nN:Public;John;Quinlan;Mr.;Esq.\nTEL;TYPE=CELL,HOME:+1-555-555-5555\nEND:VCARD\n"
	robbie = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:0b1c2d3e-0000-4000-8000-00000000000f\nKIND:x-robot\nFN:Robbie\nEND:VCARD\n"
)

func recordedClient(t *testing.T, session string) (*recorded.Server, *jmap.Client) {
	t.Helper()
	srv := recorded.New(t, recDir+session)
	c, err := jmap.Discover(context.Background(), srv.URL+"/jmap/session", &jmap.Options{Auth: jmap.BasicAuth{User: "john@example.com", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func openArchive(t testing.TB) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestExportContactsJMAP: first export, a re-run that sends nothing but
// one observing request, an edit and a delete carried exactly, a card the
// server refuses (its text reported, the others go on), a conflict (the
// user's edit at the target kept), verify, and a card the user deleted at
// the target put back.
func TestExportContactsJMAP(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t)
	srv, c := recordedClient(t, "session.txtar")
	syncBook(t, a, []archive.NewItem{vcard("jane.vcf", janeV1), vcard("john.vcf", john)})

	srv.Load(recDir + "export-1-first.txtar")
	r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A13824", nil)
	if err != nil || r.Collections != 1 || r.Put != 2 || r.Changes() != 3 || len(r.Refused)+len(r.Conflicts) != 0 {
		t.Fatalf("first export: %+v %v", r, err)
	}

	srv.Load(recDir + "export-2-nochange.txtar")
	before := c.Stats().Requests.Load()
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A13824", nil); err != nil || r.Changes() != 0 || r.Unchanged != 2 {
		t.Errorf("no-change export: %+v %v", r, err)
	}
	if n := c.Stats().Requests.Load() - before; n != 1 {
		t.Errorf("no-change export sent %d requests, want 1", n)
	}

	syncBook(t, a, []archive.NewItem{vcard("jane.vcf", janeV2), vcard("robbie.vcf", robbie)}, "/dav/jane/kontakte/john.vcf")
	srv.Load(recDir + "export-3-edit.txtar")
	r, err = vandelay.ExportContactsJMAP(ctx, a, c, "A13824", nil)
	if err != nil || r.Updated != 1 || r.Deleted != 1 || r.Put != 0 || len(r.Conflicts) != 0 {
		t.Errorf("export of an edit, a delete and a refused card: %+v %v", r, err)
	}
	wantRefused := map[string]string{"/dav/jane/kontakte/robbie.vcf": "invalidProperties [kind]: unknown kind x-robot"}
	if !reflect.DeepEqual(r.Refused, wantRefused) {
		t.Errorf("refused: %q, want %q", r.Refused, wantRefused)
	}

	syncBook(t, a, []archive.NewItem{vcard("jane.vcf", janeV3)})
	srv.Load(recDir + "export-4-conflict.txtar")
	r, err = vandelay.ExportContactsJMAP(ctx, a, c, "A13824", nil)
	if err != nil || r.Changes() != 0 || !reflect.DeepEqual(r.Conflicts, []string{"/dav/jane/kontakte/jane.vcf"}) || len(r.Refused) != 1 {
		t.Errorf("export over the user's edit: %+v %v, want a conflict", r, err)
	}

	srv.Load(recDir + "export-5-verify.txtar")
	rep, err := vandelay.VerifyContactsJMAP(ctx, a, c, "A13824")
	if err != nil {
		t.Fatal(err)
	}
	wantMis := []vandelay.DAVMismatch{{Collection: "/dav/jane/kontakte/", Href: "/dav/jane/kontakte/robbie.vcf", Kind: "missing"}}
	if !reflect.DeepEqual(rep.Conflicts, []string{"/dav/jane/kontakte/jane.vcf"}) || !reflect.DeepEqual(rep.Mismatches, wantMis) ||
		len(rep.Collections) != 1 || rep.Collections[0].Items != 2 || rep.Collections[0].Matched != 0 || rep.Collections[0].Target != "ab1" {
		t.Errorf("verify: %+v", rep)
	}

	srv.Load(recDir + "export-6-putback.txtar")
	r, err = vandelay.ExportContactsJMAP(ctx, a, c, "A13824", nil)
	if err != nil || r.Put != 1 || r.Changes() != 1 || len(r.Conflicts) != 0 || len(r.Refused) != 1 {
		t.Errorf("export after the user deleted the card at the target: %+v %v", r, err)
	}
}

// TestExportContactsJMAPNoCapability: a session without the standard
// capability (Cyrus 3.6) is refused before any request.
func TestExportContactsJMAPNoCapability(t *testing.T) {
	a := openArchive(t)
	_, c := recordedClient(t, "session-nocap.txtar")
	if _, err := vandelay.ExportContactsJMAP(context.Background(), a, c, "A13824", nil); !errors.Is(err, vandelay.ErrNoCapability) {
		t.Errorf("export: %v, want ErrNoCapability", err)
	}
	if _, err := vandelay.ImportContactsJMAP(context.Background(), c, "A13824", a, nil); !errors.Is(err, vandelay.ErrUsage) {
		t.Errorf("import: %v, want ErrUsage", err)
	}
}

// TestImportContactsJMAP: the first import lists and reads every card and
// stores each as the vCard 4.0 of its JSContact; a no-change catch-up is
// one request; changes come through ContactCard/changes (an edit, a
// delete, an add); cannotCalculateChanges lists the cards and reads only
// the one whose "updated" moved.
func TestImportContactsJMAP(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t)
	srv, c := recordedClient(t, "session.txtar")
	run := func(script string) (*vandelay.DAVImportResult, vandelay.ContactsJMAPStats, int64) {
		t.Helper()
		srv.Load(recDir + script)
		before := c.Stats().Requests.Load()
		src := vandelay.NewContactsJMAPSource(c, "A13824")
		r, err := vandelay.ImportDAV(ctx, src, a, nil)
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return r, src.Stats(), c.Stats().Requests.Load() - before
	}
	r, st, _ := run("import-1-first.txtar")
	if r.Collections != 1 || r.Added != 2 || r.Changes() != 2 || !st.Full || st.Read != 2 {
		t.Fatalf("first import: %+v %+v", r, st)
	}
	cols, _ := a.DAVCollections(ctx, archive.CollectionAddressBook, false)
	if len(cols) != 1 || cols[0].Href != "ab1" || cols[0].DisplayName != "Personal" {
		t.Fatalf("collections: %+v", cols)
	}
	items, _ := a.DAVItems(ctx, cols[0].ID, false)
	group, _ := a.BlobBytes(ctx, items[1].Hash)
	wantGroup := "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:ab4310aa-fa43-11e9-8f0b-362b9e155667\r\nKIND:group\r\nREV:20261201T100005Z\r\nFN:The Doe family\r\n" +
		"MEMBER:urn:uuid:03a0e51f-d1aa-4385-8a53-e29025acd8af\r\nMEMBER:urn:uuid:b8767877-b4a1-4c70-9acc-505d3819e519\r\nEND:VCARD\r\n"
	if items[1].Href != "c2.vcf" || items[1].MediaType != "text/vcard" || string(group) != wantGroup || items[1].ETag != "2026-12-01T10:00:05Z" {
		t.Errorf("stored group card %+v:\n%s\nwant\n%s", items[1], group, wantGroup)
	}
	johnVCF, _ := a.BlobBytes(ctx, items[0].Hash)
	for _, l := range []string{"N:Doe;John;;;", "EMAIL;TYPE=work:john.doe@example.com", `JSPROP;JSPTR=speakToAs:{"grammaticalGender":"masculine"}`,
		`JSPROP;JSPTR=name/isOrdered:true`} {
		if !strings.Contains(string(johnVCF), l+"\r\n") {
			t.Errorf("stored card lacks %q:\n%s", l, johnVCF)
		}
	}

	r, _, n := run("import-2-nochange.txtar")
	if r.Changes() != 0 || n != 1 {
		t.Errorf("no-change catch-up: %+v in %d requests, want nothing in 1", r, n)
	}

	r, st, _ = run("import-3-changes.txtar")
	if r.Added != 1 || r.Changed != 1 || r.Deleted != 1 || st.Full || st.Read != 2 {
		t.Errorf("catch-up of an add, an edit and a delete: %+v %+v", r, st)
	}

	r, st, _ = run("import-4-cannotcalc.txtar")
	if r.Changed != 1 || r.Changes() != 1 || !st.Full || st.Read != 1 {
		t.Errorf("cannotCalculateChanges fallback: %+v %+v, want 1 changed and 1 card read", r, st)
	}
	items, _ = a.DAVItems(ctx, cols[0].ID, true)
	var live []string
	for _, it := range items {
		if !it.Deleted {
			live = append(live, it.Href)
		}
	}
	if !reflect.DeepEqual(live, []string{"c1.vcf", "c3.vcf"}) {
		t.Errorf("archive after the fallback: %q", live)
	}
}

// TestExportContactsJMAPResume: the answer to the first ContactCard/set
// is lost after the server applied it (a killed export, a dropped
// connection). The re-run finds the cards it made by UID from the intents
// it recorded, creates only the others, and nothing is doubled.
func TestExportContactsJMAPResume(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t)
	var items []archive.NewItem
	for i, name := range []string{"anna", "bert", "carl", "dora", "emil"} {
		items = append(items, vcard(name+".vcf", "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:00000000-0000-4000-8000-00000000000"+string(rune('1'+i))+
			"\nFN:"+strings.ToUpper(name[:1])+name[1:]+"\nEND:VCARD\n"))
	}
	syncBook(t, a, items)
	store, url := newCardStore(t)
	c, err := jmap.Discover(ctx, url, &jmap.Options{Auth: jmap.BasicAuth{User: "alice", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	store.cut = true
	if _, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err == nil {
		t.Fatal("export with the answer lost: no error")
	}
	store.mu.Lock()
	made := len(store.cards)
	store.mu.Unlock()
	if made != 3 { // maxObjectsInSet 3: the first set was applied
		t.Fatalf("the store holds %d cards after the lost answer, want 3", made)
	}
	r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil)
	if err != nil || r.Put != 2 || r.Unchanged != 3 || len(r.Conflicts)+len(r.Refused) != 0 {
		t.Fatalf("re-run: %+v %v, want 2 put and the 3 made before adopted", r, err)
	}
	store.mu.Lock()
	made = len(store.cards)
	store.mu.Unlock()
	if made != 5 {
		t.Errorf("the store holds %d cards, want 5 (nothing doubled)", made)
	}
	rep, err := vandelay.VerifyContactsJMAP(ctx, a, c, "A1")
	if err != nil || len(rep.Mismatches) != 0 || rep.Collections[0].Matched != 5 {
		t.Errorf("verify: %+v %v", rep, err)
	}
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Changes() != 0 {
		t.Errorf("no-change re-run: %+v %v", r, err)
	}
}

// BenchmarkContactsJMAPNoChange: a no-change export and a no-change
// import of an account with 2,000 contacts over JMAP (the in-test RFC
// 9610 store on loopback): each is one request; the rest is the archive.
//
//	go test -run '^$' -bench ContactsJMAPNoChange -benchtime 5x ./vandelay
func BenchmarkContactsJMAPNoChange(b *testing.B) {
	ctx := context.Background()
	a := openArchive(b)
	var items []archive.NewItem
	for i := range 2000 {
		items = append(items, vcard(fmt.Sprintf("p%04d.vcf", i), fmt.Sprintf("BEGIN:VCARD\nVERSION:3.0\nUID:bench-%04d\nFN:Person Nummer %d\nN:Nummer %d;Person;;;\n"+
			"EMAIL;TYPE=INTERNET,HOME:p%d@example.test\nTEL;TYPE=CELL:+49 170 %07d\nNOTE:Ein Hinweis über Person %d\nEND:VCARD\n", i, i, i, i, i, i)))
	}
	syncBook(b, a, items)
	_, url := newCardStore(b)
	c, err := jmap.Discover(ctx, url, &jmap.Options{Auth: jmap.BasicAuth{User: "alice", Password: "pw"}})
	if err != nil {
		b.Fatal(err)
	}
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Put != 2000 {
		b.Fatalf("first export: %+v %v", r, err)
	}
	a2 := openArchive(b)
	if r, err := vandelay.ImportContactsJMAP(ctx, c, "A1", a2, nil); err != nil || r.Added != 2000 {
		b.Fatalf("first import: %+v %v", r, err)
	}
	b.ResetTimer()
	for b.Loop() {
		before := c.Stats().Requests.Load()
		if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Changes() != 0 {
			b.Fatalf("no-change export: %+v %v", r, err)
		}
		if r, err := vandelay.ImportContactsJMAP(ctx, c, "A1", a2, nil); err != nil || r.Changes() != 0 {
			b.Fatalf("no-change import: %+v %v", r, err)
		}
		if n := c.Stats().Requests.Load() - before; n != 2 {
			b.Fatalf("%d requests, want 2", n)
		}
	}
}

// TestExportContactsJMAPDryRun: a dry run counts what it would create and
// writes nothing, at the target or in the archive's mapping.
func TestExportContactsJMAPDryRun(t *testing.T) {
	ctx := context.Background()
	a := openArchive(t)
	syncBook(t, a, []archive.NewItem{vcard("jane.vcf", janeV1), vcard("john.vcf", john)})
	store, url := newCardStore(t)
	c, err := jmap.Discover(ctx, url, &jmap.Options{Auth: jmap.BasicAuth{User: "alice", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", &vandelay.DAVExportOptions{DryRun: true})
		if err != nil || !r.DryRun || r.Collections != 1 || r.Put != 2 {
			t.Fatalf("dry run %d: %+v %v", i, r, err)
		}
	}
	if m := store.take(); len(m) != 4 || m[0] != "AddressBook/get" || m[1] != "ContactCard/get" {
		t.Errorf("dry runs called %q, want only reads", m)
	}
	store.mu.Lock()
	n := len(store.books) + len(store.cards)
	store.mu.Unlock()
	if n != 0 {
		t.Errorf("a dry run wrote %d objects", n)
	}
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Collections != 1 || r.Put != 2 {
		t.Errorf("export after the dry runs: %+v %v", r, err)
	}
}
