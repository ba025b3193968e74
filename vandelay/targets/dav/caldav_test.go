package dav_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

const vtimezone = "BEGIN:VTIMEZONE\r\nTZID:Mitteleuropäische Zeit\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"

func cal(body string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//test//EN\r\n" + body + "END:VCALENDAR\r\n"
}

// calCorpus is the calendar corpus: a recurring event with
// exceptions (RRULE, EXDATE, a RECURRENCE-ID override) in a non-IANA
// VTIMEZONE with attendees, organizer and an alarm; an all-day and a
// floating event; a VTODO; an inline binary attachment and one by URL.
func calCorpus() map[string]map[string]string {
	attach := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("PDF-Anhang ", 2000)))
	return map[string]map[string]string{
		"calendar": {
			"weekly.ics": cal(vtimezone +
				"BEGIN:VEVENT\r\nUID:weekly-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;TZID=Mitteleuropäische Zeit:20261207T090000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261207T093000\r\n" +
				"SUMMARY:Wöchentliche Besprechung\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Mitteleuropäische Zeit:20261214T090000\r\n" +
				"ORGANIZER;CN=Jürgen:mailto:juergen@example.test\r\nATTENDEE;CN=Zoë;PARTSTAT=ACCEPTED:mailto:zoe@example.test\r\n" +
				"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Erinnerung\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
				"BEGIN:VEVENT\r\nUID:weekly-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nRECURRENCE-ID;TZID=Mitteleuropäische Zeit:20261221T090000\r\n" +
				"DTSTART;TZID=Mitteleuropäische Zeit:20261221T110000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261221T113000\r\nSUMMARY:Verschoben\r\nEND:VEVENT\r\n"),
			"allday.ics":   cal("BEGIN:VEVENT\r\nUID:allday-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261227\r\nSUMMARY:Weihnachten 🎄\r\nEND:VEVENT\r\n"),
			"floating.ics": cal("BEGIN:VEVENT\r\nUID:floating-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261210T080000\r\nDURATION:PT1H\r\nSUMMARY:Frühstück (floating)\r\nEND:VEVENT\r\n"),
		},
		"work": {
			"todo.ics": cal("BEGIN:VTODO\r\nUID:todo-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDUE;VALUE=DATE:20261231\r\nSUMMARY:Steuererklärung abgeben\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\n"),
			"attach.ics": cal("BEGIN:VEVENT\r\nUID:attach-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261211T120000Z\r\nDTEND:20261211T130000Z\r\nSUMMARY:Mit Anhängen\r\n" +
				"ATTACH;FMTTYPE=application/pdf;ENCODING=BASE64;VALUE=BINARY:" + attach + "\r\nATTACH:https://example.test/agenda.pdf\r\nEND:VEVENT\r\n"),
		},
	}
}

const mkcalendarWork = `<?xml version="1.0"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>
<D:displayname>Arbeit</D:displayname>
<C:calendar-description>Termine der Firma</C:calendar-description>
<A:calendar-color>#3366CCFF</A:calendar-color>
<C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
</D:prop></D:set></C:mkcalendar>`

// TestCalDAVRadicaleToCyrus moves two calendars from Radicale through the
// archive onto Cyrus's CalDAV, then carries exactly an add, an edit and a
// delete made at the source.
func TestCalDAVRadicaleToCyrus(t *testing.T) {
	e := newKindEnv(t, archive.CollectionCalendar)
	mustDo(t, http.StatusCreated, "MKCALENDAR", e.s.Radicale.HomeURL(e.acct.Email)+"work/", e.acct.Email, e.acct.Password, mkcalendarWork, "Content-Type", "application/xml")
	corpus := calCorpus()
	for c, items := range corpus {
		for name, body := range items {
			e.put(t, c, name, body)
		}
	}
	r := e.importOnce(t)
	if r.Collections != 2 || r.Added != 5 || r.Changes() != 5 || len(r.Failed)+len(r.Unparsable) != 0 {
		t.Fatalf("first import: %+v, want 2 collections, 5 added", r)
	}
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionCalendar, false)
	for _, c := range cols {
		items, _ := e.a.DAVItems(e.ctx, c.ID, false)
		for _, it := range items {
			served := mustDo(t, 200, "GET", strings.TrimSuffix(e.s.Radicale.URL, "/")+it.Href, e.acct.Email, e.acct.Password, "")
			if archive.Hash([]byte(served)) != it.Hash || it.UID == "" {
				t.Errorf("archive %s: differs from what the source serves (or no UID: %q)", it.Href, it.UID)
			}
		}
		if strings.HasSuffix(c.Href, "/work/") && (c.DisplayName != "Arbeit" || c.Description != "Termine der Firma" || c.Color != "#3366CCFF" || strings.Join(c.Components, ",") != "VEVENT,VTODO") {
			t.Errorf("work calendar properties: %+v", c)
		}
	}
	first := e.exportOnce(t)
	if first.Collections != 2 || first.Put != 5 || len(first.Conflicts)+len(first.Refused) != 0 {
		t.Fatalf("first export: %+v", first)
	}
	rep := e.verify(t, "first export")
	for _, c := range rep.Collections {
		if c.Items != c.Matched {
			t.Errorf("verify %s: %d items, %d matched", c.Source, c.Items, c.Matched)
		}
	}
	e.differing(t, vandelay.ICalRules)
	for i, rule := range vandelay.ICalRules {
		others := append(append([]vandelay.VCardRule{}, vandelay.ICalRules[:i]...), vandelay.ICalRules[i+1:]...)
		if e.differing(t, others) == 0 {
			t.Errorf("rule %q: no item differs without it", rule.Name)
		}
	}
	if n := e.exportOnce(t); n.Changes() != 0 || n.Unchanged != 5 {
		t.Errorf("no-change export: %+v", n)
	}
	if n := e.importOnce(t); n.Changes() != 0 {
		t.Errorf("no-change import: %+v", n)
	}
	e.put(t, "calendar", "new.ics", cal("BEGIN:VEVENT\r\nUID:new-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261215T120000Z\r\nDURATION:PT30M\r\nSUMMARY:Neu\r\nEND:VEVENT\r\n"))
	e.put(t, "work", "todo.ics", strings.Replace(corpus["work"]["todo.ics"], "STATUS:NEEDS-ACTION", "STATUS:COMPLETED", 1))
	mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+"calendar/floating.ics", e.acct.Email, e.acct.Password, "")
	if r := e.importOnce(t); r.Added != 1 || r.Changed != 1 || r.Deleted != 1 {
		t.Errorf("import after changes: %+v, want exactly 1 added, 1 changed, 1 deleted", r)
	}
	if x := e.exportOnce(t); x.Put != 1 || x.Updated != 1 || x.Deleted != 1 || x.Collections != 0 || len(x.Conflicts) != 0 {
		t.Errorf("export after changes: %+v, want exactly 1 put, 1 updated, 1 deleted", x)
	}
	e.verify(t, "after changes")
	if n := e.exportOnce(t); n.Changes() != 0 || len(n.Conflicts) != 0 {
		t.Errorf("no-change export after changes: %+v", n)
	}
}
