package vandelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscal"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// The JMAP Calendars paths are checked against recorded exchanges
// (internal/recorded): no server of the harness offers
// urn:ietf:params:jmap:calendars. The fixtures in testdata/jmapcal were
// written from draft-ietf-jmap-calendars' and RFC 8620's method
// examples (Calendar/get, CalendarEvent/get, /changes, /set with
// created, notCreated and cannotCalculateChanges) and RFC 8984's
// example events; the recorded server checks every request body the
// client sends.

// simpleEvent is RFC 8984 6.1's simple event written as iCalendar.
var simpleEvent = corpus.VCalendar("BEGIN:VEVENT\r\nUID:a8df6573-0474-496d-8496-033ad45d7fea\r\nDTSTAMP:20200102T182304Z\r\nDTSTART;TZID=America/New_York:20200115T130000\r\nDURATION:PT1H\r\nSUMMARY:Some event\r\nEND:VEVENT\r\n")

// refusedEvent is an event the recorded server refuses (its uid is
// taken by another calendar of the account).
var refusedEvent = corpus.VCalendar("BEGIN:VEVENT\r\nUID:taken@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261215T090000Z\r\nDURATION:PT1H\r\nSUMMARY:Doppelt\r\nEND:VEVENT\r\n")

var calSource = archive.Source{Kind: "caldav", Endpoint: "https://dav.example.test", Account: "alice@example.test"}

func corpusBody(t *testing.T, name string) string {
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

func syncCal(t *testing.T, a *archive.Archive, c archive.NewCollection, items map[string]string, deleted ...string) {
	t.Helper()
	cs := &archive.CollectionSync{Collection: c, Deleted: deleted}
	for _, name := range sortedNames(items) {
		cs.Items = append(cs.Items, archive.NewItem{Href: c.Href + name, ETag: `"` + archive.Hash([]byte(items[name]))[:8] + `"`, MediaType: "text/calendar", Body: []byte(items[name])})
	}
	if _, err := a.SyncDAVCollection(context.Background(), archive.CollectionCalendar, calSource, cs, false); err != nil {
		t.Fatal(err)
	}
}

func sortedNames(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func jmapClient(t *testing.T, srv *recorded.Server) *jmap.Client {
	t.Helper()
	c, err := jmap.Discover(context.Background(), srv.URL+"/.well-known/jmap", &jmap.Options{Auth: jmap.BasicAuth{User: "alice@example.test", Password: "pw"}, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	kalender = archive.NewCollection{Href: "/dav/alice/calendar/", DisplayName: "Kalender", Color: "#FF0000FF", Components: []string{"VEVENT"}}
	arbeit   = archive.NewCollection{Href: "/dav/alice/work/", DisplayName: "Arbeit", Description: "Termine der Firma", Components: []string{"VEVENT", "VTODO"}}
)

// TestExportCalendarsJMAP: a first export creates both calendars and
// their events (the VTODO listed as skipped, the event the server
// refuses reported with the server's text); a re-run sends no write; an
// edit, a deletion and an addition at the source are carried exactly
// (one update patch, one destroy, one create), while the event the user
// edited at the target is a conflict, kept, and stays one; verify
// matches every other event by its normalised JSCalendar hash (ev4 as
// the server spells it, ev1's creation with the "updated" the server
// set) and reports the refused one missing.
func TestExportCalendarsJMAP(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	syncCal(t, a, kalender, map[string]string{"floating.ics": corpusBody(t, "floating.ics"), "allday.ics": corpusBody(t, "allday.ics"), "simple.ics": simpleEvent})
	syncCal(t, a, arbeit, map[string]string{"todo.ics": corpusBody(t, "todo.ics"), "refused.ics": refusedEvent})

	dir := "testdata/jmapcal/"
	srv := recorded.New(t, dir+"session.txtar", dir+"export-run1.txtar")
	c := jmapClient(t, srv)
	r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Collections != 2 || r.Put != 3 || r.Updated+r.Deleted != 0 || len(r.Conflicts) != 0 || len(r.Refused) != 2 {
		t.Fatalf("first export: %+v", r)
	}
	if !strings.HasPrefix(r.Refused["/dav/alice/work/todo.ics"], "skipped: a VTODO") || !strings.Contains(r.Refused["/dav/alice/work/refused.ics"], "already used by event") {
		t.Errorf("first export refused: %q", r.Refused)
	}

	srv.Load(dir+"session.txtar", dir+"export-run2.txtar")
	if r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); err != nil || r.Changes() != 0 || r.Unchanged != 3 || len(r.Conflicts) != 0 {
		t.Fatalf("no-change export: %+v %v", r, err)
	}

	edited := strings.Replace(corpusBody(t, "floating.ics"), "SUMMARY:Frühstück (floating)", "SUMMARY:Frühstück mit Zoë", 1)
	added := corpus.VCalendar("BEGIN:VEVENT\r\nUID:new-1@example.test\r\nDTSTAMP:20261205T100000Z\r\nDTSTART:20261215T120000Z\r\nDURATION:PT30M\r\nSUMMARY:Neu\r\nEND:VEVENT\r\n")
	syncCal(t, a, kalender, map[string]string{"floating.ics": edited, "new.ics": added, "simple.ics": simpleEvent}, kalender.Href+"allday.ics")
	srv.Load(dir+"session.txtar", dir+"export-run3.txtar")
	r, err = vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Put != 1 || r.Updated != 1 || r.Deleted != 1 || r.Collections != 0 || strings.Join(r.Conflicts, ",") != "ev3" {
		t.Fatalf("export after changes: %+v, want exactly 1 put, 1 updated, 1 deleted and ev3 a conflict", r)
	}

	srv.Load(dir+"session.txtar", dir+"export-run4.txtar", dir+"verify.txtar")
	if r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); err != nil || r.Changes() != 0 || strings.Join(r.Conflicts, ",") != "ev3" {
		t.Fatalf("no-change export after changes: %+v %v", r, err)
	}
	rep, err := vandelay.VerifyCalendarsJMAP(ctx, a, c, "a1")
	if err != nil {
		t.Fatal(err)
	}
	// The event the server refused is honestly missing; the VTODO is
	// not counted (no event).
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Href != arbeit.Href+"refused.ics" || rep.Mismatches[0].Kind != "missing" ||
		strings.Join(rep.Conflicts, ",") != "ev3" || len(rep.Collections) != 2 || rep.Collections[0].Items != 3 || rep.Collections[0].Matched != 2 || rep.Collections[1].Items != 1 {
		t.Errorf("verify: %+v", rep)
	}
}

// TestExportCalendarsJMAPNoCapability: a session without the calendars
// capability is refused before any method call.
func TestExportCalendarsJMAPNoCapability(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := recorded.New(t, "testdata/jmapcal/session-mail-only.txtar")
	c := jmapClient(t, srv)
	if _, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); !errors.Is(err, vandelay.ErrNoCapability) {
		t.Errorf("export: %v, want ErrNoCapability", err)
	}
	if _, err := vandelay.ImportCalendarsJMAP(ctx, c, "a1", a, nil); !errors.Is(err, vandelay.ErrNoCapability) {
		t.Errorf("import: %v, want ErrNoCapability", err)
	}
}

// TestImportCalendarsJMAP: a first import lists the source's events and
// reads them; a no-change run is one small request (Calendar/get,
// CalendarEvent/changes and two empty gets); an addition, an edit and a
// deletion at the source come through /changes exactly; when the server
// answers cannotCalculateChanges the import lists every event's version
// and reads only the one whose version changed. What the archive keeps
// is the iCalendar the converter writes, which converts back to the
// event the source served.
func TestImportCalendarsJMAP(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	dir := "testdata/jmapcal/"
	srv := recorded.New(t, dir+"session.txtar", dir+"import-run1.txtar")
	c := jmapClient(t, srv)
	r, err := vandelay.ImportCalendarsJMAP(ctx, c, "a1", a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Collections != 2 || r.Added != 3 || r.Changes() != 3 || len(r.Unparsable) != 0 {
		t.Fatalf("first import: %+v", r)
	}
	checkImported(t, a, map[string]string{"ev1": "Some event", "ev2": "Calculus I", "ev3": "FooBar team meeting"})

	srv.Load(dir+"session.txtar", dir+"import-run2.txtar")
	if r, err := vandelay.ImportCalendarsJMAP(ctx, c, "a1", a, nil); err != nil || r.Changes() != 0 || r.Collections != 2 {
		t.Fatalf("no-change import: %+v %v", r, err)
	}

	srv.Load(dir+"session.txtar", dir+"import-run3.txtar")
	r, err = vandelay.ImportCalendarsJMAP(ctx, c, "a1", a, nil)
	if err != nil || r.Added != 1 || r.Changed != 1 || r.Deleted != 1 {
		t.Fatalf("import after changes: %+v %v, want exactly 1 added, 1 changed, 1 deleted", r, err)
	}
	checkImported(t, a, map[string]string{"ev1": "Some event (later)", "ev3": "FooBar team meeting", "ev4": "April Fool's Day"})

	srv.Load(dir+"session.txtar", dir+"import-run4.txtar")
	r, err = vandelay.ImportCalendarsJMAP(ctx, c, "a1", a, nil)
	if err != nil || r.Added != 0 || r.Changed != 1 || r.Deleted != 1 {
		t.Fatalf("import after cannotCalculateChanges: %+v %v, want exactly 1 changed, 1 deleted", r, err)
	}
	checkImported(t, a, map[string]string{"ev1": "Some event (later)", "ev3": "FooBar team meeting (moved)"})

	// The archived iCalendar converts back to the event as served (the
	// participants, virtual location and reply-to of RFC 8984's example
	// included).
	ex, err := recorded.ParseFile(dir + "import-run4.txtar")
	if err != nil {
		t.Fatal(err)
	}
	var served struct {
		MethodResponses [][]json.RawMessage `json:"methodResponses"`
	}
	for _, e := range ex {
		if e.Name == "read-changed" {
			json.Unmarshal(e.RespBody, &served)
		}
	}
	var get struct {
		List []jscal.Event `json:"list"`
	}
	json.Unmarshal(served.MethodResponses[0][1], &get)
	item := archivedItem(t, a, "ev3")
	back, err := jscal.ToEvent(item)
	if err != nil || len(get.List) != 1 || jscal.Canonical(back) != jscal.Canonical(get.List[0]) {
		t.Errorf("ev3 read back from the archive (%v):\n got %s\nwant %s", err, jscal.Canonical(back), jscal.Canonical(get.List[0]))
	}
}

func archivedItem(t *testing.T, a *archive.Archive, href string) []byte {
	t.Helper()
	ctx := context.Background()
	cols, _ := a.DAVCollections(ctx, archive.CollectionCalendar, false)
	for _, col := range cols {
		items, _ := a.DAVItems(ctx, col.ID, false)
		for _, it := range items {
			if it.Href == href {
				b, err := a.BlobBytes(ctx, it.Hash)
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
		}
	}
	t.Fatalf("no archived item %s", href)
	return nil
}

// checkImported checks the archive's live events by id: each title, and
// that the stored iCalendar converts back.
func checkImported(t *testing.T, a *archive.Archive, want map[string]string) {
	t.Helper()
	ctx := context.Background()
	cols, err := a.DAVCollections(ctx, archive.CollectionCalendar, false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, col := range cols {
		items, _ := a.DAVItems(ctx, col.ID, false)
		for _, it := range items {
			body, err := a.BlobBytes(ctx, it.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if it.MediaType != "text/calendar" || it.ParseError != "" || !strings.HasPrefix(string(body), "BEGIN:VCALENDAR\r\n") {
				t.Errorf("%s%s: %s %q", col.Href, it.Href, it.MediaType, it.ParseError)
			}
			got[it.Href] = summary(string(body))
		}
	}
	if len(got) != len(want) {
		t.Errorf("archive holds %v, want %v", got, want)
	}
	for id, title := range want {
		if got[id] != title {
			t.Errorf("event %s: title %q, want %q", id, got[id], title)
		}
	}
}

func summary(ics string) string {
	for _, l := range strings.Split(ics, "\r\n") {
		if s, ok := strings.CutPrefix(l, "SUMMARY:"); ok {
			return strings.ReplaceAll(s, "\\,", ",")
		}
	}
	return ""
}

// TestExportCalendarsJMAPInterrupted: the server applies a
// CalendarEvent/set but its answer never arrives (cut off), so the
// export stops with the creations' intents recorded and no ids. The
// re-run finds each event by its uid (CalendarEvent/query), sees it is
// what it would send and adopts it: nothing is created twice. A later
// run answered cannotCalculateChanges compares every event and writes
// nothing.
func TestExportCalendarsJMAPInterrupted(t *testing.T) {
	ctx := context.Background()
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	syncCal(t, a, kalender, map[string]string{"floating.ics": corpusBody(t, "floating.ics"), "simple.ics": simpleEvent})
	dir := "testdata/jmapcal/"
	srv := recorded.New(t, dir+"session.txtar", dir+"interrupted-run1.txtar")
	c := jmapClient(t, srv)
	if r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); err == nil {
		t.Fatalf("export with the answer cut off: %+v, want an error", r)
	}
	srv.Load(dir+"session.txtar", dir+"interrupted-run2.txtar")
	r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil)
	if err != nil || r.Changes() != 0 || r.Unchanged != 2 || len(r.Conflicts)+len(r.Refused) != 0 {
		t.Fatalf("re-run: %+v %v, want both events adopted", r, err)
	}
	srv.Load(dir+"session.txtar", dir+"interrupted-run3.txtar")
	if r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); err != nil || r.Changes() != 0 || r.Unchanged != 2 {
		t.Fatalf("no-change run: %+v %v", r, err)
	}
	// The target no longer knows the stored state: every exported event
	// is read and compared, nothing is written.
	srv.Load(dir+"session.txtar", dir+"interrupted-run4.txtar")
	if r, err := vandelay.ExportCalendarsJMAP(ctx, a, c, "a1", nil); err != nil || r.Changes() != 0 || r.Unchanged != 2 || len(r.Conflicts) != 0 {
		t.Fatalf("run after cannotCalculateChanges: %+v %v", r, err)
	}
}
