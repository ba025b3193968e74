package corpus

import (
	"archive/zip"
	"io"
	"time"
)

// TakeoutData: the Takeout data fixture (issue 12), written in the layout Google's
// export uses: Takeout/Calendar/<calendar>.ics (one VCALENDAR per
// calendar), Takeout/Contacts/<label>/<label>.vcf, Takeout/Drive/<tree>.
// TakeoutCalendar holds a weekly event in a custom VTIMEZONE with an
// EXDATE and a RECURRENCE-ID override (one object of two components), an
// all-day event, a floating one with an alarm, and a VTODO; TakeoutContacts
// a vCard 3.0 with a folded line and non-ASCII names, one without UID (as
// Google writes them), a 4.0 group; the Drive a nested tree with names
// with spaces, '%', '#', emoji and NFD accents.
const (
	TakeoutCalendar = "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\nVERSION:2.0\r\nCALSCALE:GREGORIAN\r\nX-WR-CALNAME:Privat\r\nX-WR-TIMEZONE:Europe/Berlin\r\n" +
		"BEGIN:VTIMEZONE\r\nTZID:Mitteleuropäische Zeit\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n" +
		"BEGIN:VEVENT\r\nDTSTART;TZID=Mitteleuropäische Zeit:20261207T090000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261207T093000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Mitteleuropäische Zeit:20261214T090000\r\nDTSTAMP:20261201T100000Z\r\nUID:weekly-1@google.com\r\nSUMMARY:Wochenbesprechung\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nDTSTART;TZID=Mitteleuropäische Zeit:20261222T100000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261222T103000\r\nDTSTAMP:20261201T100000Z\r\nUID:weekly-1@google.com\r\nRECURRENCE-ID;TZID=Mitteleuropäische Zeit:20261221T090000\r\nSUMMARY:Wochenbesprechung (verschoben)\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261225\r\nDTSTAMP:20261201T100000Z\r\nUID:heiligabend@google.com\r\nSUMMARY:Heiligabend\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nDTSTART:20261230T180000\r\nDTEND:20261230T200000\r\nDTSTAMP:20261201T100000Z\r\nUID:floating@google.com\r\nSUMMARY:Essen – schwebende Zeit\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Erinnerung\r\nTRIGGER:-PT30M\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
		"BEGIN:VTODO\r\nDTSTAMP:20261201T100000Z\r\nUID:todo-1@google.com\r\nSUMMARY:Geschenke kaufen\r\nEND:VTODO\r\n" +
		"END:VCALENDAR\r\n"
	TakeoutContacts = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Jürgen Müller\r\nN:Müller;Jürgen;;;\r\nEMAIL;TYPE=INTERNET:juergen@example.test\r\nUID:c-juergen\r\n" +
		"NOTE:Ein langer Hinweis\\, der gefaltet werden muss\\, weil er länger ist als fünfundsiebzig \r\n Oktette.\r\nEND:VCARD\r\n" +
		"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Zoë Ñúñez\r\nN:Ñúñez;Zoë;;;\r\nTEL;TYPE=CELL:+34 600 000 000\r\nEND:VCARD\r\n" +
		"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:group-1\r\nKIND:group\r\nFN:Familie\r\nMEMBER:urn:uuid:c-juergen\r\nEND:VCARD\r\n"
)

// TakeoutDrive is the Drive tree of the fixture, by path below Drive/.
var TakeoutDrive = map[string]string{
	"Dokumente/Bericht 2026.txt":        "Jahresbericht – äöü\n",
	"Dokumente/100% #1.md":              "# eins\n",
	"Fotos 🎉/Party 🎉.jpg":               "\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02",
	"Cafe\u0301/Re\u0301sume\u0301.txt": "NFD",
	"Dokumente/tief/tiefer/unten.bin":   "\x00\x00\x00",
}

// WriteTakeoutData writes the fixture as a Takeout zip to w; calendar and
// contacts replace the two files when not "" (a newer Takeout).
func WriteTakeoutData(w io.Writer, calendar, contacts string) error {
	if calendar == "" {
		calendar = TakeoutCalendar
	}
	if contacts == "" {
		contacts = TakeoutContacts
	}
	zw := zip.NewWriter(w)
	mod := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	files := map[string]string{
		"Takeout/Calendar/Privat.ics":                  calendar,
		"Takeout/Contacts/My Contacts/My Contacts.vcf": contacts,
		"Takeout/archive_browser.html":                 "<html></html>",
	}
	for p, b := range TakeoutDrive {
		files["Takeout/Drive/"+p] = b
	}
	for p, b := range files {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: p, Method: zip.Deflate, Modified: mod})
		if err != nil {
			return err
		}
		if _, err := io.WriteString(f, b); err != nil {
			return err
		}
	}
	return zw.Close()
}
