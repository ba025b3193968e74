package dav_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscal"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// TestCalDAVRadicaleToJMAPCalendars is the real-server leg of the JMAP
// Calendars export: the calendar corpus is loaded into the real
// Radicale, imported over CalDAV (the archive keeps what Radicale
// serves, which it re-serialised), converted by vandelay/internal/jscal
// and exported onto the recorded JMAP Calendars target (no server here
// offers urn:ietf:params:jmap:calendars). The recording checks every
// event the client sends; each one is also checked here to be the
// conversion of what Radicale served, and verify matches them all.
func TestCalDAVRadicaleToJMAPCalendars(t *testing.T) {
	e := newKindEnv(t, archive.CollectionCalendar)
	mustDo(t, http.StatusCreated, "MKCALENDAR", e.s.Radicale.HomeURL(e.acct.Email)+"work/", e.acct.Email, e.acct.Password, mkcalendarWork, "Content-Type", "application/xml")
	n := 0
	for cal, objs := range corpus.Calendars(false) {
		for _, o := range objs {
			e.put(t, cal, o.Name, o.Body)
			n++
		}
	}
	if r := e.importOnce(t); r.Added != n || len(r.Unparsable) != 0 {
		t.Fatalf("import from Radicale: %+v, want %d added", r, n)
	}
	fx := "../../testdata/jmapcal/"
	srv := recorded.New(t, fx+"session.txtar", fx+"radicale-export.txtar")
	c, err := jmap.Discover(e.ctx, srv.URL+"/.well-known/jmap", &jmap.Options{Auth: jmap.BasicAuth{User: "alice@example.test", Password: "pw"}, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vandelay.ExportCalendarsJMAP(e.ctx, e.a, c, "a1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Collections != 2 || r.Put != n-1 || len(r.Refused) != 1 || len(r.Conflicts) != 0 {
		t.Fatalf("export: %+v, want 2 calendars, %d events and the VTODO skipped", r, n-1)
	}

	// What the recording received is what the converter makes of
	// Radicale's bytes.
	sent := map[string]jscal.Event{}
	ex, err := recorded.ParseFile(fx + "radicale-export.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ex {
		var req struct {
			MethodCalls [][]json.RawMessage `json:"methodCalls"`
		}
		json.Unmarshal(x.Body, &req)
		for _, call := range req.MethodCalls {
			var args struct {
				Create map[string]jscal.Event `json:"create"`
			}
			json.Unmarshal(call[1], &args)
			for _, ev := range args.Create {
				if uid, _ := ev["uid"].(string); uid != "" {
					sent[uid] = ev
				}
			}
		}
	}
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionCalendar, false)
	for _, col := range cols {
		items, _ := e.a.DAVItems(e.ctx, col.ID, false)
		for _, it := range items {
			served := mustDo(t, 200, "GET", strings.TrimSuffix(e.s.Radicale.URL, "/")+it.Href, e.acct.Email, e.acct.Password, "")
			want, err := jscal.ToEvent([]byte(served))
			if it.UID == "todo-1@example.test" {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", it.Href, err)
			}
			if got := sent[it.UID]; jscal.Canonical(got) != jscal.Canonical(want) {
				t.Errorf("%s: sent\n%s\nwant the conversion of what Radicale serves\n%s", it.Href, jscal.Canonical(got), jscal.Canonical(want))
			}
		}
	}
	if len(sent) != n-1 {
		t.Errorf("the recording holds %d created events, want %d", len(sent), n-1)
	}

	srv.Load(fx+"session.txtar", fx+"radicale-verify.txtar")
	rep, err := vandelay.VerifyCalendarsJMAP(e.ctx, e.a, c, "a1")
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, cr := range rep.Collections {
		matched += cr.Matched
	}
	if len(rep.Mismatches)+len(rep.Conflicts) != 0 || matched != n-1 {
		t.Errorf("verify: %+v", rep)
	}
}
