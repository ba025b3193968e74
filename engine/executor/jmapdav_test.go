package executor

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// The contacts and calendars entries of the executor's JMAP table are
// checked against the recordings of vandelay's RFC 9610 and JMAP
// Calendars tests (vandelay/testdata/contacts-jmap, jmapcal; every
// request checked): the same archive, driven through exportJMAPData,
// verifyJMAPData and importJMAPData instead of the library calls. Each
// recording is of one account offering one of the two capabilities, so
// each kind is run against its own session; the other kind, which that
// session does not offer, is left to the DAV path (via unset).

const (
	contactsRec = "../../vandelay/testdata/contacts-jmap/"
	calRec      = "../../vandelay/testdata/jmapcal/"
)

// davAndJMAPMigration has a source with CardDAV/CalDAV and a target with
// JMAP and CardDAV/CalDAV: the target's session decides, at the step.
func davAndJMAPMigration() (*plan.Migration, *plan.Account) {
	cd := &plan.Endpoint{Protocol: plan.ProtoCardDAV, URL: "http://127.0.0.1:1/"}
	cl := &plan.Endpoint{Protocol: plan.ProtoCalDAV, URL: "http://127.0.0.1:1/"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "old", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, cd, cl}},
		{Name: "new", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}, cd, cl}},
	}}
	acct := &plan.Account{Address: "john@example.com", From: "old", To: "new", Password: plan.NewSecret("pw"),
		Data: []plan.DataKind{plan.DataMail, plan.DataContacts, plan.DataCalendars}}
	return m, acct
}

func openTestArchive(t *testing.T) *archive.Archive {
	t.Helper()
	a, err := archive.Open(context.Background(), filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func syncColl(t *testing.T, a *archive.Archive, kind string, src archive.Source, c archive.NewCollection, items []archive.NewItem, deleted ...string) {
	t.Helper()
	cs := &archive.CollectionSync{Collection: c, Items: items, Deleted: deleted}
	if _, err := a.SyncDAVCollection(context.Background(), kind, src, cs, false); err != nil {
		t.Fatal(err)
	}
}

var (
	kontakte   = archive.NewCollection{Href: "/dav/jane/kontakte/", DisplayName: "Kontakte", Description: "Privat – Familie & Freunde"}
	carddavSrc = archive.Source{Kind: "carddav", Endpoint: "https://dav.example.test/", Account: "jane"}
	caldavSrc  = archive.Source{Kind: "caldav", Endpoint: "https://dav.example.test", Account: "alice@example.test"}
	kalender   = archive.NewCollection{Href: "/dav/alice/calendar/", DisplayName: "Kalender", Color: "#FF0000FF", Components: []string{"VEVENT"}}
	arbeit     = archive.NewCollection{Href: "/dav/alice/work/", DisplayName: "Arbeit", Description: "Termine der Firma", Components: []string{"VEVENT", "VTODO"}}
)

func card(href, body string) archive.NewItem {
	return archive.NewItem{Href: kontakte.Href + href, ETag: `"` + href + `"`, MediaType: "text/vcard", Body: []byte(strings.ReplaceAll(body, "\n", "\r\n"))}
}

func event(c archive.NewCollection, href, body string) archive.NewItem {
	return archive.NewItem{Href: c.Href + href, ETag: `"` + archive.Hash([]byte(body))[:8] + `"`, MediaType: "text/calendar", Body: []byte(body)}
}

const (
	janeV1 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work:jane_doe@example.com\nEND:VCARD\n"
	janeV2 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work;PREF=1:jane.doe@example.com\nNOTE:Neue Adresse seit Dezember\nEND:VCARD\n"
	janeV3 = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6\nFN:Jane Doe\nN:Doe;Jane;;;\nEMAIL;TYPE=work;PREF=1:jane.doe@example.com\nNOTE:Seit Dezember in Berlin\nEND:VCARD\n"
	john   = "BEGIN:VCARD\nVERSION:3.0\nUID:22B2C7DF-9120-4969-8460-05956FE6B065\nFN:John Q. Public\nN:Public;John;Quinlan;Mr.;Esq.\nTEL;TYPE=CELL,HOME:+1-555-555-5555\nEND:VCARD\n"
	robbie = "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:0b1c2d3e-0000-4000-8000-00000000000f\nKIND:x-robot\nFN:Robbie\nEND:VCARD\n"
)

func discover(t *testing.T, url string) *jmap.Client {
	t.Helper()
	c, err := jmap.Discover(context.Background(), url, &jmap.Options{Auth: jmap.BasicAuth{User: "john@example.com", Password: "pw"}, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestExportJMAPContacts: an account moving mail, contacts and calendars
// onto a target whose session offers urn:ietf:params:jmap:contacts (and
// which has CardDAV and CalDAV endpoints too): the cards go over JMAP
// and via[contacts] is set, so the CardDAV export is skipped; calendars,
// which this session does not offer, are left to CalDAV. Verify finds 0
// mismatches; a re-run changes nothing; the user's edit at the target is
// kept and counted in Counts.Conflicts, by the export and by verify.
func TestExportJMAPContacts(t *testing.T) {
	ctx := context.Background()
	a := openTestArchive(t)
	syncColl(t, a, archive.CollectionAddressBook, carddavSrc, kontakte, []archive.NewItem{card("jane.vcf", janeV1), card("john.vcf", john)})
	srv := recorded.New(t, contactsRec+"session.txtar", contactsRec+"export-1-first.txtar")
	target := &vandelay.Target{Client: discover(t, srv.URL+"/jmap/session"), AccountID: "A13824"}
	m, acct := davAndJMAPMigration()
	x := &Executor{m: m}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	var cnt state.Counts
	via := map[plan.DataKind]bool{}
	// 1 address book and 2 cards.
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 3 || !via[plan.DataContacts] || via[plan.DataCalendars] {
		t.Fatalf("first export: %d changes, via %v, %v", n, via, err)
	}
	if !MovesDAV(m, acct, plan.DataContacts) || !davTo(m.Backend(acct.To), acct, plan.DataContacts) {
		t.Fatal("the target's CardDAV endpoint is not in use: the test would not show the DAV export skipped")
	}

	srv.Load(contactsRec + "export-2-nochange.txtar")
	via = map[plan.DataKind]bool{}
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 0 || !via[plan.DataContacts] {
		t.Fatalf("re-run: %d changes, via %v, %v", n, via, err)
	}
	// The CardDAV export is skipped (its endpoint, 127.0.0.1:1, would
	// refuse); CalDAV has nothing archived and opens nothing either way.
	if n, err := x.exportDAV(ctx, acct, a, log, &cnt, map[plan.DataKind]bool{plan.DataContacts: true, plan.DataCalendars: true}); err != nil || n != 0 {
		t.Fatalf("DAV export with both kinds moved over JMAP: %d, %v", n, err)
	}

	srv.Load("testdata/contacts-jmap-verify.txtar")
	var named []state.Mismatch
	via = map[plan.DataKind]bool{}
	if n, err := x.verifyJMAPData(ctx, acct, a, target, log, &named, &cnt, via); err != nil || n != 0 || len(named) != 0 || !via[plan.DataContacts] {
		t.Fatalf("verify: %d mismatches %v, via %v, %v", n, named, via, err)
	}
	if cnt.Conflicts != 0 {
		t.Fatalf("%d conflicts before any edit at the target", cnt.Conflicts)
	}

	// An edit, a delete and a card the target refuses; then an edit at
	// the source over the user's own edit at the target: a conflict.
	syncColl(t, a, archive.CollectionAddressBook, carddavSrc, kontakte, []archive.NewItem{card("jane.vcf", janeV2), card("robbie.vcf", robbie)}, kontakte.Href+"john.vcf")
	srv.Load(contactsRec + "export-3-edit.txtar")
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 2 || cnt.Conflicts != 0 {
		t.Fatalf("export of an edit and a delete: %d changes, %d conflicts, %v", n, cnt.Conflicts, err)
	}
	syncColl(t, a, archive.CollectionAddressBook, carddavSrc, kontakte, []archive.NewItem{card("jane.vcf", janeV3)})
	srv.Load(contactsRec + "export-4-conflict.txtar")
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 0 || cnt.Conflicts != 1 {
		t.Fatalf("export over the user's edit: %d changes, %d conflicts, %v; want 1 conflict", n, cnt.Conflicts, err)
	}
	// Verify lists the conflict apart; the refused card is the one
	// mismatch (missing), as in the library's test.
	srv.Load(contactsRec + "export-5-verify.txtar")
	named = nil
	n, err := x.verifyJMAPData(ctx, acct, a, target, log, &named, &cnt, via)
	if err != nil || n != 1 || len(named) != 1 || named[0] != (state.Mismatch{Kind: "contacts-missing", Mailbox: kontakte.Href, Item: kontakte.Href + "robbie.vcf"}) || cnt.Conflicts != 2 {
		t.Fatalf("verify after the conflict: %d %+v, %d conflicts, %v", n, named, cnt.Conflicts, err)
	}
}

// TestExportJMAPCalendars: the same account onto a target whose session
// offers urn:ietf:params:jmap:calendars: the events go over JMAP,
// via[calendars] is set (CalDAV skipped) and contacts are left to
// CardDAV; a re-run changes nothing; the user's edit at the target is a
// conflict counted by the export and by verify, not a mismatch; the one
// event the server refused is the one mismatch.
func TestExportJMAPCalendars(t *testing.T) {
	ctx := context.Background()
	a := openTestArchive(t)
	body := func(name string) string {
		for _, objs := range corpus.Calendars(false) {
			for _, o := range objs {
				if o.Name == name {
					return o.Body
				}
			}
		}
		t.Fatalf("no corpus object %s", name)
		return ""
	}
	simple := corpus.VCalendar("BEGIN:VEVENT\r\nUID:a8df6573-0474-496d-8496-033ad45d7fea\r\nDTSTAMP:20200102T182304Z\r\nDTSTART;TZID=America/New_York:20200115T130000\r\nDURATION:PT1H\r\nSUMMARY:Some event\r\nEND:VEVENT\r\n")
	refused := corpus.VCalendar("BEGIN:VEVENT\r\nUID:taken@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261215T090000Z\r\nDURATION:PT1H\r\nSUMMARY:Doppelt\r\nEND:VEVENT\r\n")
	syncColl(t, a, archive.CollectionCalendar, caldavSrc, kalender, []archive.NewItem{
		event(kalender, "allday.ics", body("allday.ics")), event(kalender, "floating.ics", body("floating.ics")), event(kalender, "simple.ics", simple)})
	syncColl(t, a, archive.CollectionCalendar, caldavSrc, arbeit, []archive.NewItem{event(arbeit, "refused.ics", refused), event(arbeit, "todo.ics", body("todo.ics"))})

	srv := recorded.New(t, calRec+"session.txtar", calRec+"export-run1.txtar")
	target := &vandelay.Target{Client: discover(t, srv.URL+"/.well-known/jmap"), AccountID: "a1"}
	m, acct := davAndJMAPMigration()
	x := &Executor{m: m}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cnt state.Counts
	via := map[plan.DataKind]bool{}
	// 2 calendars and 3 events; the VTODO and the refused event logged.
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 5 || !via[plan.DataCalendars] || via[plan.DataContacts] {
		t.Fatalf("first export: %d changes, via %v, %v", n, via, err)
	}
	srv.Load(calRec+"session.txtar", calRec+"export-run2.txtar")
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 0 || cnt.Conflicts != 0 {
		t.Fatalf("re-run: %d changes, %d conflicts, %v", n, cnt.Conflicts, err)
	}

	edited := strings.Replace(body("floating.ics"), "SUMMARY:Frühstück (floating)", "SUMMARY:Frühstück mit Zoë", 1)
	added := corpus.VCalendar("BEGIN:VEVENT\r\nUID:new-1@example.test\r\nDTSTAMP:20261205T100000Z\r\nDTSTART:20261215T120000Z\r\nDURATION:PT30M\r\nSUMMARY:Neu\r\nEND:VEVENT\r\n")
	syncColl(t, a, archive.CollectionCalendar, caldavSrc, kalender, []archive.NewItem{
		event(kalender, "floating.ics", edited), event(kalender, "new.ics", added), event(kalender, "simple.ics", simple)}, kalender.Href+"allday.ics")
	srv.Load(calRec+"session.txtar", calRec+"export-run3.txtar")
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 3 || cnt.Conflicts != 1 {
		t.Fatalf("export after changes: %d changes, %d conflicts, %v; want 3 and 1", n, cnt.Conflicts, err)
	}

	srv.Load(calRec+"session.txtar", calRec+"export-run4.txtar", calRec+"verify.txtar")
	if n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 0 || cnt.Conflicts != 2 {
		t.Fatalf("no-change export after changes: %d changes, %d conflicts, %v", n, cnt.Conflicts, err)
	}
	var named []state.Mismatch
	via = map[plan.DataKind]bool{}
	n, err := x.verifyJMAPData(ctx, acct, a, target, log, &named, &cnt, via)
	if err != nil || n != 1 || len(named) != 1 || named[0].Kind != "calendars-missing" || named[0].Item != arbeit.Href+"refused.ics" ||
		cnt.Conflicts != 3 || !via[plan.DataCalendars] || via[plan.DataContacts] {
		t.Fatalf("verify: %d %+v, %d conflicts, via %v, %v", n, named, cnt.Conflicts, via, err)
	}
}

// jmapSessionSource stands in for the JMAP mail source
// (vandelay/sources/jmap) in importJMAPData: its session's client.
type jmapSessionSource struct {
	c         *jmap.Client
	accountID string
}

func (s jmapSessionSource) DataClient(context.Context) (*jmap.Client, string, error) {
	return s.c, s.accountID, nil
}

func (s jmapSessionSource) Describe() archive.Source {
	return archive.Source{Kind: "jmap", Endpoint: s.c.SessionURL(), Account: s.accountID}
}

// TestImportJMAPContactsCalendars: from a JMAP mail source (its backend's
// only endpoint is jmap) whose session offers RFC 9610 or JMAP
// Calendars, importJMAPData reads the account's cards and events into the
// archive (counted as objects), and a second run is one request that
// changes nothing. A source backend with a CardDAV/CalDAV endpoint (and
// the account's password) is read there instead: no JMAP request.
func TestImportJMAPContactsCalendars(t *testing.T) {
	ctx := context.Background()
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "src", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
		{Name: "srcdav", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP},
			{Protocol: plan.ProtoCardDAV, URL: "http://127.0.0.1:1/"}, {Protocol: plan.ProtoCalDAV, URL: "http://127.0.0.1:1/"}}},
		{Name: "new", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
	}}
	acct := &plan.Account{Address: "john@example.com", From: "src", To: "new",
		Data: []plan.DataKind{plan.DataMail, plan.DataContacts, plan.DataCalendars}}
	x := &Executor{m: m}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	for _, tc := range []struct {
		name, dir, sessionPath, accountID string
		first, second                     string
		coll                              string
		collections, items                int
	}{
		{"contacts", contactsRec, "/jmap/session", "A13824", "import-1-first.txtar", "import-2-nochange.txtar", archive.CollectionAddressBook, 1, 2},
		{"calendars", calRec, "/.well-known/jmap", "a1", "import-run1.txtar", "import-run2.txtar", archive.CollectionCalendar, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := openTestArchive(t)
			srv := recorded.New(t, tc.dir+"session.txtar", tc.dir+tc.first)
			src := jmapSessionSource{c: discover(t, srv.URL+tc.sessionPath), accountID: tc.accountID}
			n, err := x.importJMAPData(ctx, acct, src, a, log)
			if err != nil || n != int64(tc.items) {
				t.Fatalf("first import: %d objects, %v; want %d", n, err, tc.items)
			}
			cols, err := a.DAVCollections(ctx, tc.coll, false)
			if err != nil || len(cols) != tc.collections {
				t.Fatalf("archive holds %d %s collections, %v; want %d", len(cols), tc.coll, err, tc.collections)
			}
			var items int
			for _, c := range cols {
				its, err := a.DAVItems(ctx, c.ID, false)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range its {
					b, err := a.BlobBytes(ctx, it.Hash)
					if err != nil || !bytes.HasPrefix(b, []byte("BEGIN:")) {
						t.Errorf("item %s: %q %v", it.Href, b, err)
					}
					items++
				}
			}
			if items != tc.items {
				t.Errorf("archive holds %d items, want %d", items, tc.items)
			}

			srv.Load(tc.dir + tc.second)
			before := src.c.Stats().Requests.Load()
			if n, err := x.importJMAPData(ctx, acct, src, a, log); err != nil || n != 0 {
				t.Fatalf("second import: %d objects, %v; want none", n, err)
			}
			if r := src.c.Stats().Requests.Load() - before; r != 1 {
				t.Errorf("second import sent %d requests, want 1", r)
			}

			// With DAV endpoints at the source (and the password) the
			// kinds are read there (importDAV); nothing is asked over
			// JMAP (the recording has no exchange left to answer).
			dav := *acct
			dav.From, dav.Password = "srcdav", plan.NewSecret("pw")
			if !jmapMailSource(m.Backend(dav.From)) || !davFrom(m.Backend(dav.From), &dav, plan.DataContacts) {
				t.Fatal("srcdav: want a JMAP mail source with DAV endpoints")
			}
			before = src.c.Stats().Requests.Load()
			if n, err := x.importJMAPData(ctx, &dav, src, a, log); err != nil || n != 0 {
				t.Fatalf("import from a source with DAV endpoints: %d objects, %v", n, err)
			}
			if r := src.c.Stats().Requests.Load() - before; r != 0 {
				t.Errorf("import from a source with DAV endpoints sent %d JMAP requests, want none", r)
			}
		})
	}
}
