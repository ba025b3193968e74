package corpus

import (
	"encoding/base64"
	"strings"
)

// CalendarObject is one iCalendar object resource of the calendar
// corpus: the bytes a CalDAV source serves for one UID.
type CalendarObject struct {
	Name string // file name below its calendar ("weekly.ics")
	Body string
}

// calVTimezone is a VTIMEZONE with a non-IANA name, as Outlook and
// Google write them.
const calVTimezone = "BEGIN:VTIMEZONE\r\nTZID:Mitteleuropäische Zeit\r\nBEGIN:STANDARD\r\nDTSTART:16011028T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:MEZ\r\nEND:STANDARD\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:16010325T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:MESZ\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"

// VCalendar wraps components into a VCALENDAR object.
func VCalendar(body string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//corpus//EN\r\n" + body + "END:VCALENDAR\r\n"
}

// Calendars is the issue-12 calendar corpus by calendar name: a
// recurring event with exceptions (RRULE, EXDATE, a RECURRENCE-ID
// override) in a non-IANA VTIMEZONE with organizer, attendees and an
// alarm; an IANA-zoned event with UNTIL, categories, a URL, an absolute
// alarm and an X- property; an all-day and a floating event; a VTODO;
// attachments inline (ATTACH;VALUE=BINARY) and by URL. Big adds an event
// of about 2 MB (an inline attachment) to "work".
func Calendars(big bool) map[string][]CalendarObject {
	attach := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("PDF-Anhang ", 2000)))
	cals := map[string][]CalendarObject{
		"calendar": {
			{"weekly.ics", VCalendar(calVTimezone +
				"BEGIN:VEVENT\r\nUID:weekly-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;TZID=Mitteleuropäische Zeit:20261207T090000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261207T093000\r\n" +
				"SUMMARY:Wöchentliche Besprechung\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10\r\nEXDATE;TZID=Mitteleuropäische Zeit:20261214T090000\r\n" +
				"ORGANIZER;CN=Jürgen:mailto:juergen@example.test\r\nATTENDEE;CN=Zoë;PARTSTAT=ACCEPTED:mailto:zoe@example.test\r\n" +
				"ATTENDEE;CN=Jürgen;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:juergen@example.test\r\n" +
				"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Erinnerung\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
				"BEGIN:VEVENT\r\nUID:weekly-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nRECURRENCE-ID;TZID=Mitteleuropäische Zeit:20261221T090000\r\n" +
				"DTSTART;TZID=Mitteleuropäische Zeit:20261221T110000\r\nDTEND;TZID=Mitteleuropäische Zeit:20261221T113000\r\nSUMMARY:Verschoben\r\n" +
				"ORGANIZER;CN=Jürgen:mailto:juergen@example.test\r\nATTENDEE;CN=Zoë;PARTSTAT=DECLINED:mailto:zoe@example.test\r\n" +
				"ATTENDEE;CN=Jürgen;ROLE=CHAIR;PARTSTAT=ACCEPTED:mailto:juergen@example.test\r\nEND:VEVENT\r\n")},
			{"monthly.ics", VCalendar("BEGIN:VEVENT\r\nUID:monthly-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nCREATED:20261101T080000Z\r\nLAST-MODIFIED:20261130T120000Z\r\n" +
				"DTSTART;TZID=America/New_York:20260105T180000\r\nDURATION:PT1H30M\r\nRRULE:FREQ=MONTHLY;BYDAY=1MO;UNTIL=20261231T230000Z\r\n" +
				"SUMMARY:Book club\\, monthly\r\nDESCRIPTION:First Monday\\; bring the book.\\nSecond line.\r\nLOCATION:Library\r\nGEO:40.7128;-74.0060\r\n" +
				"CATEGORIES:Books,Friends\r\nURL:https://example.test/club\r\nSTATUS:TENTATIVE\r\nTRANSP:TRANSPARENT\r\nCLASS:PRIVATE\r\nPRIORITY:5\r\nSEQUENCE:2\r\n" +
				"X-MOZ-GENERATION:3\r\nCOLOR:teal\r\n" +
				"BEGIN:VALARM\r\nACTION:EMAIL\r\nSUMMARY:Book club\r\nDESCRIPTION:Reminder\r\nATTENDEE:mailto:zoe@example.test\r\nTRIGGER;VALUE=DATE-TIME:20260105T120000Z\r\nEND:VALARM\r\n" +
				"END:VEVENT\r\n")},
			{"allday.ics", VCalendar("BEGIN:VEVENT\r\nUID:allday-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261227\r\nSUMMARY:Weihnachten 🎄\r\nEND:VEVENT\r\n")},
			{"floating.ics", VCalendar("BEGIN:VEVENT\r\nUID:floating-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261210T080000\r\nDURATION:PT1H\r\nSUMMARY:Frühstück (floating)\r\nEND:VEVENT\r\n")},
		},
		"work": {
			{"todo.ics", VCalendar("BEGIN:VTODO\r\nUID:todo-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDUE;VALUE=DATE:20261231\r\nSUMMARY:Steuererklärung abgeben\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\n")},
			{"attach.ics", VCalendar("BEGIN:VEVENT\r\nUID:attach-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261211T120000Z\r\nDTEND:20261211T130000Z\r\nSUMMARY:Mit Anhängen\r\n" +
				"ATTACH;FMTTYPE=application/pdf;ENCODING=BASE64;VALUE=BINARY:" + attach + "\r\nATTACH:https://example.test/agenda.pdf\r\nEND:VEVENT\r\n")},
		},
	}
	if big {
		data := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("Großer Anhang 0123456789abcdef\n", 2<<20/31)))
		cals["work"] = append(cals["work"], CalendarObject{"big.ics", VCalendar("BEGIN:VEVENT\r\nUID:big-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261212T120000Z\r\nDURATION:PT2H\r\nSUMMARY:Großes Ereignis (2 MB)\r\n" +
			"ATTACH;FMTTYPE=application/octet-stream;ENCODING=BASE64;VALUE=BINARY:" + data + "\r\nEND:VEVENT\r\n")})
	}
	return cals
}
