package jscal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Event is a JSCalendar Event (RFC 8984 5.1) as a JSON object.
type Event = map[string]any

// jmapMembers are the members JMAP Calendars adds to a CalendarEvent
// (the server's id, the calendars it is in, scheduling and expansion
// state): they are not part of the event's content.
var jmapMembers = []string{"id", "calendarIds", "isDraft", "isOrigin", "blobId", "baseEventId", "utcStart", "utcEnd",
	"mayInviteSelf", "mayInviteOthers", "hideAttendees"}

// defaults are RFC 8984's default values by member name: a member with
// its default is the same as the member absent, and servers differ in
// which they spell out.
var defaults = map[string]any{
	"showWithoutTime":        false,
	"duration":               "PT0S",
	"status":                 "confirmed",
	"freeBusyStatus":         "busy",
	"privacy":                "public",
	"priority":               float64(0),
	"sequence":               float64(0),
	"excluded":               false,
	"useDefaultAlerts":       false,
	"descriptionContentType": "text/plain",
	"relativeTo":             "start",
	"action":                 "display",
	"participationStatus":    "needs-action",
	"expectReply":            false,
	"scheduleAgent":          "server",
	"scheduleForceSend":      false,
	"scheduleSequence":       float64(0),
	"interval":               float64(1),
	"rscale":                 "gregorian",
	"skip":                   "omit",
	"firstDayOfWeek":         "mo",
	"isDraft":                false,
}

// Normalize returns e's content in the form used to compare two events:
// JSON-decoded (numbers float64), without JMAP's server members, null
// values, members equal to their RFC 8984 default and empty objects and
// arrays; in a recurrenceOverrides patch only the members' own values
// are cleaned (an empty patch, an RDATE, is kept, and so are its nulls
// and defaults, which change the master). Two servers' spellings of one
// event normalise to the same value.
func Normalize(e Event) Event {
	b, err := json.Marshal(e)
	if err != nil {
		return Event{}
	}
	var v map[string]any
	if json.Unmarshal(b, &v) != nil {
		return Event{}
	}
	for _, k := range jmapMembers {
		delete(v, k)
	}
	clean(v, "")
	return v
}

func clean(m map[string]any, parent string) {
	for k, v := range m {
		if parent == "recurrenceOverrides" {
			// A patch: its nulls remove a member of the master and its
			// default values replace another value there, so only the
			// members' own values are cleaned.
			if x, ok := v.(map[string]any); ok {
				for pk, pv := range x {
					switch y := pv.(type) {
					case map[string]any:
						clean(y, pk)
					case []any:
						for _, it := range y {
							if o, ok := it.(map[string]any); ok {
								clean(o, pk)
							}
						}
					}
				}
			}
			continue
		}
		switch x := v.(type) {
		case nil:
			delete(m, k)
			continue
		case map[string]any:
			clean(x, k)
			if len(x) == 0 {
				delete(m, k)
				continue
			}
		case []any:
			for _, it := range x {
				if o, ok := it.(map[string]any); ok {
					clean(o, k)
				}
			}
			if len(x) == 0 {
				delete(m, k)
				continue
			}
		}
		if d, ok := defaults[k]; ok && canon(d) == canon(v) {
			delete(m, k)
		}
	}
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Canonical is the normalised event as JSON with sorted keys.
func Canonical(e Event) string { return canon(Normalize(e)) }

// Hash is the SHA-256 of [Canonical], the content hash export and
// verify compare.
func Hash(e Event) string {
	s := sha256.Sum256([]byte(Canonical(e)))
	return hex.EncodeToString(s[:])
}

// Diff returns the PatchObject (RFC 8984 1.4.9, top-level members only)
// that turns from into to: changed or added members with their new
// value, removed ones null. Both are taken as they are (not normalised).
func Diff(from, to Event) map[string]any {
	p := map[string]any{}
	for k, v := range to {
		if o, ok := from[k]; !ok || canon(o) != canon(v) {
			p[k] = v
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			p[k] = nil
		}
	}
	return p
}

// applyPatch applies a PatchObject to a copy of base: keys are JSON
// pointers without the leading "/" (RFC 8984 1.4.9), a null value
// removes.
func applyPatch(base Event, patch map[string]any) Event {
	out := deepCopy(base).(map[string]any)
	for k, v := range patch {
		path := strings.Split(strings.TrimPrefix(k, "/"), "/")
		for i := range path {
			path[i] = strings.ReplaceAll(strings.ReplaceAll(path[i], "~1", "/"), "~0", "~")
		}
		m := out
		for _, seg := range path[:len(path)-1] {
			next, ok := m[seg].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[seg] = next
			}
			m = next
		}
		last := path[len(path)-1]
		if v == nil {
			delete(m, last)
		} else {
			m[last] = deepCopy(v)
		}
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	default:
		return v
	}
}
