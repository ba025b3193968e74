// Package jscal converts calendar objects between iCalendar (RFC 5545)
// and JSCalendar (RFC 8984), the form JMAP Calendars
// (draft-ietf-jmap-calendars) stores as CalendarEvent, following the
// mapping of draft-ietf-calext-jscalendar-icalendar where it defines one.
//
// An Event is a JSON object kept as map[string]any, so that properties
// this package does not know survive a JMAP round trip unchanged and the
// canonical form ([Canonical]) is the JSON with sorted keys.
//
// One iCalendar object (one UID: the master VEVENT and its RECURRENCE-ID
// overrides, with the VTIMEZONEs they use) becomes one Event: RRULE and
// EXRULE become recurrenceRules and excludedRecurrenceRules, EXDATE and
// RDATE entries of recurrenceOverrides, each override VEVENT a patch of
// the master. iCalendar properties without a JSCalendar counterpart are
// kept in the event's "iCalendar" member as jCal (RFC 7265) properties,
// and JSCalendar members without an iCalendar counterpart in JSPROP
// properties whose JSPTR parameter names them, as the conversion draft
// does; docs/export.md lists what each direction keeps and loses.
package jscal
