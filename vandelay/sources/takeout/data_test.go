package takeout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

func writeData(t *testing.T, dir, cal, cards string) string {
	t.Helper()
	var b bytes.Buffer
	if err := corpus.WriteTakeoutData(&b, cal, cards); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "takeout-20261207.zip")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSplitCalendar: one object per UID, each with the calendar's
// properties and time zone, the override with its master; every
// component line of the input is in exactly one object.
func TestSplitCalendar(t *testing.T) {
	objs := SplitCalendar([]byte(corpus.TakeoutCalendar))
	if len(objs) != 4 {
		t.Fatalf("%d objects, want 4 (weekly+override, all-day, floating, todo)", len(objs))
	}
	for i, o := range objs {
		s := string(o)
		if !strings.HasPrefix(s, "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\n") || !strings.HasSuffix(s, "END:VCALENDAR\r\n") ||
			!strings.Contains(s, "TZID:Mitteleuropäische Zeit\r\n") {
			t.Errorf("object %d: %q", i, s)
		}
	}
	if n := strings.Count(string(objs[0]), "UID:weekly-1@google.com"); n != 2 {
		t.Errorf("weekly event: %d components, want master and override", n)
	}
	for _, l := range strings.SplitAfter(corpus.TakeoutCalendar, "\r\n") {
		if strings.HasPrefix(l, "SUMMARY:") || strings.HasPrefix(l, "TRIGGER:") {
			n := 0
			for _, o := range objs {
				n += strings.Count(string(o), l)
			}
			if n != 1 {
				t.Errorf("%q in %d objects", l, n)
			}
		}
	}
	cards := SplitVCards([]byte(corpus.TakeoutContacts))
	if len(cards) != 3 || !strings.Contains(string(cards[0]), "fünfundsiebzig \r\n Oktette") {
		t.Errorf("vCards: %q", cards)
	}
	if string(WithUID(cards[0])) != string(cards[0]) {
		t.Errorf("a card with UID was changed")
	}
	if w := string(WithUID(cards[1])); !strings.HasPrefix(w, "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:takeout-") || strings.Replace(w, lineValue([]byte(w), "UID"), "", 1) == w ||
		len(w) != len(cards[1])+len("UID:takeout-")+32+2 {
		t.Errorf("a card without UID: %q", w)
	}
}

// TestTakeoutData imports a Takeout's calendars, contacts and Drive into
// the archive, then a newer Takeout with one event changed and one
// contact removed: exactly those changes, nothing on a re-run.
func TestTakeoutData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := writeData(t, dir, "", "")
	a, err := archive.Open(ctx, filepath.Join(dir, "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cal, _ := NewCalendars(&DataOptions{Path: p, User: "u@gmail.com"})
	cards, _ := NewContacts(&DataOptions{Path: p, User: "u@gmail.com"})
	drive, _ := NewDrive(&DataOptions{Path: p, User: "u@gmail.com"})
	r, err := vandelay.ImportDAV(ctx, cal, a, nil)
	if err != nil || r.Collections != 1 || r.Added != 4 || len(r.Unparsable) != 0 {
		t.Fatalf("calendars: %+v %v", r, err)
	}
	r, err = vandelay.ImportDAV(ctx, cards, a, nil)
	if err != nil || r.Collections != 1 || r.Added != 3 || len(r.Unparsable) != 0 {
		t.Fatalf("contacts: %+v %v", r, err)
	}
	cols, _ := a.DAVCollections(ctx, archive.CollectionAddressBook, false)
	if len(cols) != 1 || cols[0].DisplayName != "My Contacts" || cols[0].Href != "/takeout/contacts/My%20Contacts/" {
		t.Errorf("address book: %+v", cols)
	}
	fr, err := vandelay.ImportFiles(ctx, drive, a, nil)
	// 5 files and 5 folders (Dokumente, Dokumente/tief, Dokumente/tief/tiefer, Fotos 🎉, Café).
	if err != nil || fr.Added != 5+5 {
		t.Fatalf("drive: %+v %v", fr, err)
	}
	fcols, _ := a.FileCollections(ctx, false)
	files, _ := a.Files(ctx, fcols[0].ID, false)
	for _, f := range files {
		if f.IsDir {
			continue
		}
		b, _ := a.BlobBytes(ctx, f.Hash)
		if string(b) != corpus.TakeoutDrive[f.Path] {
			t.Errorf("drive %q: %q", f.Path, b)
		}
	}
	// A newer Takeout at the same path: the all-day event renamed, Zoë
	// gone.
	writeData(t, dir, strings.Replace(corpus.TakeoutCalendar, "SUMMARY:Heiligabend", "SUMMARY:Heiligabend bei Oma", 1),
		strings.Replace(corpus.TakeoutContacts, "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Ñúñez\r\nN:Ñúñez;Zoë;;;\r\nTEL;TYPE=CELL:+34 600 000 000\r\nEND:VCARD\r\n", "", 1))
	if r, err := vandelay.ImportDAV(ctx, cal, a, nil); err != nil || r.Changed != 1 || r.Changes() != 1 {
		t.Errorf("newer calendars: %+v %v", r, err)
	}
	if r, err := vandelay.ImportDAV(ctx, cards, a, nil); err != nil || r.Deleted != 1 || r.Changes() != 1 {
		t.Errorf("newer contacts: %+v %v", r, err)
	}
	if fr, err := vandelay.ImportFiles(ctx, drive, a, nil); err != nil || fr.Changes() != 0 {
		t.Errorf("newer drive: %+v %v", fr, err)
	}
	if r, err := vandelay.ImportDAV(ctx, cal, a, nil); err != nil || r.Changes() != 0 {
		t.Errorf("re-run: %+v %v", r, err)
	}
}

// FuzzSplitCalendar: any input splits or yields nothing, never panics,
// and the objects never hold more component lines than the input.
func FuzzSplitCalendar(f *testing.F) {
	f.Add([]byte(corpus.TakeoutCalendar))
	f.Add([]byte(corpus.TakeoutContacts))
	f.Add([]byte("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nEND:VEVENT\nEND:VEVENT\nEND:VCALENDAR"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range SplitCalendar(b) {
			if !bytes.HasPrefix(o, []byte("BEGIN:VCALENDAR")) {
				t.Fatalf("object without BEGIN:VCALENDAR: %q", o)
			}
		}
		for _, c := range SplitVCards(b) {
			if len(c) > len(b) {
				t.Fatalf("a vCard longer than the input")
			}
		}
	})
}

// TestItemMalformedLine: an event with a line that makes go-ical panic
// (a parameter cut off at the line's end) is kept as bytes with its UID
// and a parse error, not a crash of the import.
func TestItemMalformedLine(t *testing.T) {
	body := []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:broken-1\r\nX-BAD;A=\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	s := &DAVSource{calendar: true}
	it := s.item(body)
	if it.ParseError == "" || it.UID != "broken-1" || string(it.Body) != string(body) {
		t.Fatalf("item: parse error %q, UID %q, body kept %v", it.ParseError, it.UID, string(it.Body) == string(body))
	}
}
