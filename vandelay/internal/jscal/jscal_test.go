package jscal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
)

func corpusObject(t testing.TB, name string) []byte {
	for _, objs := range corpus.Calendars(true) {
		for _, o := range objs {
			if o.Name == name {
				return []byte(o.Body)
			}
		}
	}
	t.Fatalf("no corpus object %s", name)
	return nil
}

func get(e any, path string) any {
	for _, seg := range strings.Split(path, "/") {
		m, ok := e.(map[string]any)
		if !ok {
			if l, ok := e.([]any); ok && len(l) > 0 {
				m, _ = l[0].(map[string]any)
			}
		}
		if m == nil {
			return nil
		}
		e = m[strings.ReplaceAll(seg, "~1", "/")]
	}
	return e
}

// TestToEvent checks the members each corpus object becomes, by JSON
// pointer-like path (a list step takes the first element).
func TestToEvent(t *testing.T) {
	pj := participantID("mailto:juergen@example.test")
	pz := participantID("mailto:zoe@example.test")
	tests := []struct {
		object string
		want   map[string]any
	}{
		{"weekly.ics", map[string]any{
			"uid": "weekly-1@example.test", "title": "Wöchentliche Besprechung", "start": "2026-12-07T09:00:00",
			"timeZone": "/Mitteleuropäische Zeit", "duration": "PT30M", "updated": "2026-12-01T10:00:00Z",
			"timeZones/~1Mitteleuropäische Zeit/standard/offsetTo":   "+0100",
			"timeZones/~1Mitteleuropäische Zeit/daylight/names/MESZ": true,
			"recurrenceRules/frequency":                              "weekly", "recurrenceRules/count": float64(10), "recurrenceRules/byDay/day": "mo",
			"recurrenceOverrides/2026-12-14T09:00:00/excluded": true,
			"recurrenceOverrides/2026-12-21T09:00:00/start":    "2026-12-21T11:00:00",
			"recurrenceOverrides/2026-12-21T09:00:00/title":    "Verschoben",
			"recurrenceOverrides/2026-12-21T09:00:00/alerts":   nil,
			"replyTo/imip":                                "mailto:juergen@example.test",
			"participants/" + pj + "/roles/owner":         true,
			"participants/" + pj + "/roles/chair":         true,
			"participants/" + pj + "/name":                "Jürgen",
			"participants/" + pz + "/participationStatus": "accepted",
			"participants/" + pz + "/sendTo/imip":         "mailto:zoe@example.test",
			"alerts/a1/trigger/offset":                    "-PT15M",
			"alerts/a1/trigger/@type":                     "OffsetTrigger",
			"prodId":                                      "-//mailmig//corpus//EN",
		}},
		{"monthly.ics", map[string]any{
			"timeZone": "America/New_York", "duration": "PT1H30M", "title": "Book club, monthly",
			"description": "First Monday; bring the book.\nSecond line.", "updated": "2026-11-30T12:00:00Z", "created": "2026-11-01T08:00:00Z",
			"recurrenceRules/until": "2026-12-31T18:00:00", "recurrenceRules/byDay/nthOfPeriod": float64(1),
			"locations/l1/name": "Library", "locations/l1/coordinates": "geo:40.7128,-74.0060",
			"keywords/Books": true, "keywords/Friends": true, "links/u1/href": "https://example.test/club",
			"status": "tentative", "freeBusyStatus": "free", "privacy": "private", "priority": float64(5), "sequence": float64(2),
			"color": "teal", "alerts/a1/action": "email", "alerts/a1/trigger/when": "2026-01-05T12:00:00Z",
			"iCalendar/properties": []any{[]any{"x-moz-generation", map[string]any{}, "unknown", "3"}},
		}},
		{"allday.ics", map[string]any{"showWithoutTime": true, "start": "2026-12-24T00:00:00", "duration": "P3D", "timeZone": nil, "title": "Weihnachten 🎄"}},
		{"floating.ics", map[string]any{"start": "2026-12-10T08:00:00", "timeZone": nil, "duration": "PT1H"}},
		{"attach.ics", map[string]any{"timeZone": "Etc/UTC", "duration": "PT1H", "links/k1/contentType": "application/pdf", "links/k1/rel": "enclosure",
			"links/k2/href": "https://example.test/agenda.pdf"}},
	}
	for _, tc := range tests {
		t.Run(tc.object, func(t *testing.T) {
			e, err := ToEvent(corpusObject(t, tc.object))
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				if got := get(e, path); canon(got) != canon(want) {
					t.Errorf("%s = %s, want %s", path, canon(got), canon(want))
				}
			}
		})
	}
	e, _ := ToEvent(corpusObject(t, "weekly.ics"))
	if p := get(e, "recurrenceOverrides/2026-12-21T09:00:00").(map[string]any); p == nil {
		t.Error("weekly: no override")
	} else if v, ok := p["alerts"]; !ok || v != nil {
		t.Errorf("weekly: the override has no VALARM, its patch must remove the master's alerts (\"alerts\": null), got %v %v", v, ok)
	}
	e, _ = ToEvent(corpusObject(t, "attach.ics"))
	if h := get(e, "links/k1/href").(string); !strings.HasPrefix(h, "data:application/pdf;base64,UERGLUFuaGFuZy") {
		t.Errorf("inline attachment: href %.60s…, want a data: URL", h)
	}
}

func TestToEventSkips(t *testing.T) {
	_, err := ToEvent(corpusObject(t, "todo.ics"))
	var se *SkipError
	if !errors.As(err, &se) || se.Component != "VTODO" {
		t.Errorf("VTODO: %v, want a SkipError", err)
	}
	if _, err := ToEvent([]byte("not iCalendar")); err == nil || errors.As(err, &se) {
		t.Errorf("garbage: %v, want a parse error", err)
	}
	only := corpus.VCalendar("BEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260101T100000Z\r\nDTSTART:20260101T110000Z\r\nEND:VEVENT\r\n")
	if _, err := ToEvent([]byte(only)); err == nil {
		t.Error("an override without master converted")
	}
}

// TestRoundTripICal: every corpus event converted to JSCalendar, to
// iCalendar and back gives the same JSCalendar (the documented
// normalisation: events compare by their normalised JSCalendar form).
func TestRoundTripICal(t *testing.T) {
	for cal, objs := range corpus.Calendars(true) {
		for _, o := range objs {
			e, err := ToEvent([]byte(o.Body))
			var se *SkipError
			if errors.As(err, &se) {
				continue
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", cal, o.Name, err)
			}
			b, err := ToICal(e)
			if err != nil {
				t.Fatalf("%s/%s: to iCalendar: %v", cal, o.Name, err)
			}
			if strings.Contains(string(b), "JSPROP") {
				t.Errorf("%s/%s: iCalendar from an iCalendar event needs JSPROP:\n%s", cal, o.Name, clip(string(b)))
			}
			back, err := ToEvent(b)
			if err != nil {
				t.Fatalf("%s/%s: read back: %v\n%s", cal, o.Name, err, clip(string(b)))
			}
			if Canonical(back) != Canonical(e) {
				t.Errorf("%s/%s: round trip differs:\n got %s\nwant %s\n%s", cal, o.Name, clip(Canonical(back)), clip(Canonical(e)), clip(string(b)))
			}
		}
	}
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

// rfc8984Examples are events in the shape of RFC 8984 section 6's
// examples (simple, all-day yearly, with an end time zone, floating
// with a location, recurring with overrides, with participants), as a
// JMAP server serves them (with its id and calendarIds).
var rfc8984Examples = []string{
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-02T18:23:04Z","title":"Some event","start":"2020-01-15T13:00:00","timeZone":"America/New_York","duration":"PT1H","id":"ev1","calendarIds":{"c1":true}}`,
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-02T18:23:04Z","title":"April Fool's Day","showWithoutTime":true,"start":"1900-04-01T00:00:00","duration":"P1D","recurrenceRules":[{"@type":"RecurrenceRule","frequency":"yearly"}]}`,
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-02T18:23:04Z","title":"Flight XY51 to Tokyo","start":"2020-04-01T09:00:00","timeZone":"Europe/Berlin","duration":"PT10H30M","locations":{"1":{"@type":"Location","rel":"start","name":"Frankfurt Airport (FRA)"},"2":{"@type":"Location","rel":"end","name":"Narita International Airport (NRT)","timeZone":"Asia/Tokyo"}}}`,
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-02T18:23:04Z","title":"Yoga","start":"2020-01-01T07:00:00","duration":"PT30M","recurrenceRules":[{"@type":"RecurrenceRule","frequency":"daily"}]}`,
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-02T18:23:04Z","title":"Calculus I","start":"2020-01-08T09:00:00","timeZone":"Europe/London","duration":"PT1H30M","locations":{"mlab":{"@type":"Location","title":"Math lab room 1","description":"Math Lab I, Department of Mathematics"}},"recurrenceRules":[{"@type":"RecurrenceRule","frequency":"weekly","until":"2020-06-24T09:00:00"}],"recurrenceOverrides":{"2020-01-07T14:00:00":{"title":"Introduction to Calculus I (optional)"},"2020-04-01T09:00:00":{"excluded":true},"2020-06-25T09:00:00":{"title":"Calculus I Exam","start":"2020-06-25T10:00:00","duration":"PT2H","locations":{"auditorium":{"@type":"Location","title":"Big Auditorium","description":"Big Auditorium, Other Road"}}}}}`,
	`{"@type":"Event","uid":"a8df6573-0474-496d-8496-033ad45d7fea","updated":"2020-01-09T14:32:01Z","title":"FooBar team meeting","start":"2020-01-15T09:00:00","timeZone":"Africa/Johannesburg","duration":"PT1H","virtualLocations":{"0":{"@type":"VirtualLocation","name":"ChatMe meeting room","uri":"https://chatme.example.com?id=1234567&pw=a8a24627b63d"}},"replyTo":{"imip":"mailto:f245f875-7f63-4a5e-a2c8@schedule.example.com"},"participants":{"dG9tQGZvb2Jhci5xlLmNvbQ":{"@type":"Participant","name":"Tom Tool","email":"tom@foobar.example.com","sendTo":{"imip":"mailto:calendar@tom.foobar.example.com"},"participationStatus":"accepted","roles":{"attendee":true}},"em9lQGZvb2GFtcGxlLmNvbQ":{"@type":"Participant","name":"Zoe Zelda","email":"zoe@foobar.example.com","sendTo":{"imip":"mailto:zoe@foobar.example.com"},"participationStatus":"accepted","roles":{"owner":true,"attendee":true,"chair":true}}}}`,
}

// TestRoundTripJSCalendar: an event a JMAP source serves, converted to
// iCalendar and back, is the same event after [Normalize] (members
// iCalendar has no property for travel as JSPROP).
func TestRoundTripJSCalendar(t *testing.T) {
	for i, s := range rfc8984Examples {
		var e Event
		if err := json.Unmarshal([]byte(s), &e); err != nil {
			t.Fatal(err)
		}
		b, err := ToICal(e)
		if err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
		back, err := ToEvent(b)
		if err != nil {
			t.Fatalf("example %d: read back: %v\n%s", i, err, b)
		}
		if Canonical(back) != Canonical(e) {
			t.Errorf("example %d: round trip differs:\n got %s\nwant %s\n%s", i, Canonical(back), Canonical(e), b)
		}
	}
	var e Event
	json.Unmarshal([]byte(rfc8984Examples[0]), &e)
	b, _ := ToICal(e)
	for _, want := range []string{"DTSTART;TZID=America/New_York:20200115T130000", "DURATION:PT1H", "SUMMARY:Some event", "DTSTAMP:20200102T182304Z"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("simple event: no %q in\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "JSPROP") || strings.Contains(string(b), "ev1") {
		t.Errorf("simple event: JMAP members or JSPROP written:\n%s", b)
	}
}

func TestToICalRefuses(t *testing.T) {
	for _, s := range []string{`{"@type":"Task","uid":"t","start":"2020-01-01T00:00:00"}`, `{"@type":"Event","start":"2020-01-01T00:00:00"}`, `{"@type":"Event","uid":"x","start":"soon"}`} {
		var e Event
		json.Unmarshal([]byte(s), &e)
		if _, err := ToICal(e); err == nil {
			t.Errorf("%s: converted", s)
		}
	}
}

func FuzzToEvent(f *testing.F) {
	for _, objs := range corpus.Calendars(false) {
		for _, o := range objs {
			f.Add([]byte(o.Body))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ToEvent(b)
		if err != nil {
			return
		}
		ical, err := ToICal(e)
		if err != nil {
			return
		}
		back, err := ToEvent(ical)
		if err != nil {
			t.Fatalf("written iCalendar does not read back: %v\n%s", err, ical)
		}
		_ = back
	})
}

func FuzzToICal(f *testing.F) {
	for _, s := range rfc8984Examples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if json.Unmarshal(b, &e) != nil || e == nil {
			return
		}
		ical, err := ToICal(e)
		if err != nil {
			return
		}
		if _, err := ToEvent(ical); err != nil {
			t.Fatalf("written iCalendar does not read back: %v\n%s", err, ical)
		}
	})
}
