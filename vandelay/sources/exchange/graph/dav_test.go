package graph_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// items returns the archive's live items of a kind by UID, parsed back.
func items(t *testing.T, a *archive.Archive, kind string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	cols, err := a.DAVCollections(ctx, kind, false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, c := range cols {
		its, err := a.DAVItems(ctx, c.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range its {
			if it.ParseError != "" {
				t.Errorf("item %s: %s", it.Href, it.ParseError)
			}
			b, err := a.BlobBytes(ctx, it.Hash)
			if err != nil {
				t.Fatal(err)
			}
			out[it.UID] = b
		}
	}
	return out
}

// TestGraphContactsCalendars imports contacts (delta, two folders) and a
// calendar (full listing) from the recorded Graph exchanges, checks the
// vCard and iCalendar mapping, then a second run records one deleted
// contact and one deleted event and nothing else.
func TestGraphContactsCalendars(t *testing.T) {
	srv := recorded.New(t, "testdata/graph-dav-run1.txtar")
	var sl sleeps
	a := vandelaytest.OpenArchive(t)
	ctx := context.Background()
	run := func(wantAdded, wantDeleted, wantUnchanged int) {
		t.Helper()
		var added, deleted, unchanged int
		for _, mk := range []func(*graph.Options) (*graph.DAV, error){graph.NewContacts, graph.NewCalendars} {
			src, err := mk(options(srv, &sl))
			if err != nil {
				t.Fatal(err)
			}
			res, err := vandelay.ImportDAV(ctx, src, a, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Failed) > 0 || len(res.Unparsable) > 0 {
				t.Errorf("%s: failed %v, unparsable %v", src.Kind(), res.Failed, res.Unparsable)
			}
			added, deleted, unchanged = added+res.Added, deleted+res.Deleted, unchanged+res.Unchanged
		}
		if added != wantAdded || deleted != wantDeleted || unchanged != wantUnchanged {
			t.Errorf("added %d, deleted %d, unchanged %d; want %d, %d, %d", added, deleted, unchanged, wantAdded, wantDeleted, wantUnchanged)
		}
	}
	run(6, 0, 0)

	cards := items(t, a, archive.CollectionAddressBook)
	card, err := vcard.NewDecoder(strings.NewReader(string(cards["AAMkCon1"]))).Decode()
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		vcard.FieldFormattedName: "Dana Scully", vcard.FieldEmail: "dana@fbi.example", vcard.FieldTitle: "Special Agent",
		vcard.FieldBirthday: "1964-02-23", vcard.FieldNote: "Prefers email.\nNo calls after 9.", vcard.FieldVersion: "3.0",
		vcard.FieldOrganization: "FBI;X-Files, Basement", vcard.FieldCategories: "Work",
	} {
		if got := card.Value(field); got != want {
			t.Errorf("vCard %s = %q, want %q", field, got, want)
		}
	}
	if n := card.Name(); n == nil || n.FamilyName != "Scully" || n.GivenName != "Dana" {
		t.Errorf("vCard N = %+v", n)
	}
	if ad := card.Address(); ad == nil || ad.Locality != "Washington" || ad.PostalCode != "20535" {
		t.Errorf("vCard ADR = %+v", ad)
	}
	if len(cards) != 3 {
		t.Errorf("%d contacts, want 3", len(cards))
	}

	events := items(t, a, archive.CollectionCalendar)
	get := func(uidSuffix string) *ical.Component {
		for uid, b := range events {
			if strings.HasSuffix(uid, uidSuffix) {
				cal, err := ical.NewDecoder(strings.NewReader(string(b))).Decode()
				if err != nil {
					t.Fatal(err)
				}
				return cal.Children[0]
			}
		}
		t.Fatalf("no event %s", uidSuffix)
		return nil
	}
	review := get("vt1")
	for prop, want := range map[string]string{
		ical.PropSummary: "Quarterly review", ical.PropDateTimeStart: "20261210T090000Z", ical.PropDateTimeEnd: "20261210T103000Z",
		ical.PropLocation: "Room 4.12", ical.PropDescription: "Agenda:\n1. Numbers\n2. Plans", ical.PropOrganizer: "mailto:alice@contoso.example",
	} {
		p := review.Props.Get(prop)
		if p == nil {
			t.Errorf("review has no %s", prop)
			continue
		}
		got := p.Value
		if p.ValueType() == ical.ValueText {
			got, _ = p.Text()
		}
		if got != want {
			t.Errorf("review %s = %q, want %q", prop, got, want)
		}
	}
	if at := review.Props.Values(ical.PropAttendee); len(at) != 2 || at[0].Params.Get(ical.ParamParticipationStatus) != "ACCEPTED" ||
		at[1].Params.Get(ical.ParamRole) != "OPT-PARTICIPANT" {
		t.Errorf("review attendees %+v", at)
	}
	if p := get("vt2").Props.Get(ical.PropRecurrenceRule); p == nil || p.Value != "FREQ=WEEKLY;BYDAY=MO,WE,FR;UNTIL=20270630T235959Z" {
		t.Errorf("stand-up RRULE %v", p)
	}
	checkSeries(t, events)
	holiday := get("vt3")
	if p := holiday.Props.Get(ical.PropDateTimeStart); p == nil || p.Value != "20261224" || p.ValueType() != ical.ValueDate {
		t.Errorf("holiday DTSTART %v", p)
	}
	if p := holiday.Props.Get(ical.PropClass); p == nil || p.Value != "PRIVATE" {
		t.Errorf("holiday CLASS %v", p)
	}

	srv.Load("testdata/graph-dav-run2.txtar")
	run(0, 2, 2) // the review and the stand-up listed again, unchanged
}

// checkSeries checks the stand-up series' changed and cancelled
// occurrences (read from its instances): two EXDATEs at the RRULE's
// times, one of them matched across the summer-time shift of the
// instances' original starts, and one override VEVENT with the master's
// UID and the RECURRENCE-ID of the occurrence it replaces.
func checkSeries(t *testing.T, events map[string][]byte) {
	t.Helper()
	var cal *ical.Calendar
	for uid, b := range events {
		if strings.HasSuffix(uid, "vt2") {
			c, err := ical.NewDecoder(strings.NewReader(string(b))).Decode()
			if err != nil {
				t.Fatal(err)
			}
			cal = c
		}
	}
	if cal == nil || len(cal.Children) != 2 {
		t.Fatalf("stand-up: %v, want the master and one override", cal)
	}
	master, over := cal.Children[0], cal.Children[1]
	var ex []string
	for _, p := range master.Props.Values(ical.PropExceptionDates) {
		ex = append(ex, p.Value)
	}
	if want := []string{"20261111T083000Z", "20270402T083000Z"}; !slices.Equal(ex, want) {
		t.Errorf("stand-up EXDATE %v, want %v (cancelled occurrences)", ex, want)
	}
	for prop, want := range map[string]string{
		ical.PropUID: master.Props.Get(ical.PropUID).Value, ical.PropRecurrenceID: "20261113T083000Z",
		ical.PropDateTimeStart: "20261113T100000Z", ical.PropDateTimeEnd: "20261113T101500Z",
		ical.PropSummary: "Team stand-up (moved to 10:00)", ical.PropLocation: "Room 2.01",
	} {
		if p := over.Props.Get(prop); p == nil || p.Value != want {
			t.Errorf("override %s = %v, want %q", prop, p, want)
		}
	}
	if over.Props.Get(ical.PropRecurrenceRule) != nil {
		t.Error("the override carries an RRULE")
	}
}
