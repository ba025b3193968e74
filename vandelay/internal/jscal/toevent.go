package jscal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA names are recognised the same on every machine

	"github.com/emersion/go-ical"

	"github.com/mailmig/mailmig/vandelay/internal/icalsafe"
)

// MaxObjectSize bounds the iCalendar object ToEvent parses (a 2 MB event
// with an inline attachment fits).
const MaxObjectSize = 16 << 20

// SkipError reports an object without an event that the calendars
// capability cannot hold (a VTODO is a JMAP Task, a separate
// capability; a VJOURNAL has no JMAP form).
type SkipError struct{ Component string }

func (e *SkipError) Error() string {
	return fmt.Sprintf("a %s is not an event: the JMAP calendars capability holds events only", e.Component)
}

const localLayout = "2006-01-02T15:04:05"

// handled are the VEVENT properties mapped to JSCalendar members; all
// others are kept as jCal in the "iCalendar" member.
var handled = map[string]bool{
	"UID": true, "SUMMARY": true, "DESCRIPTION": true, "DTSTART": true, "DTEND": true, "DURATION": true,
	"DTSTAMP": true, "LAST-MODIFIED": true, "CREATED": true, "SEQUENCE": true, "PRIORITY": true, "STATUS": true,
	"TRANSP": true, "CLASS": true, "CATEGORIES": true, "COLOR": true, "LOCATION": true, "GEO": true, "URL": true,
	"RRULE": true, "EXRULE": true, "EXDATE": true, "RDATE": true, "RECURRENCE-ID": true, "ORGANIZER": true,
	"ATTENDEE": true, "ATTACH": true, "JSPROP": true,
}

// when is an iCalendar DATE or DATE-TIME value.
type when struct {
	local string // LocalDateTime
	tzid  string // TZID parameter, "" floating
	utc   bool
	date  bool
}

func parseWhen(p *ical.Prop) (when, error) {
	v := strings.TrimSpace(p.Value)
	w := when{tzid: p.Params.Get("TZID")}
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	switch {
	case len(v) == 8:
		t, err := time.Parse("20060102", v)
		if err != nil {
			return w, fmt.Errorf("%s: bad date %q", p.Name, p.Value)
		}
		w.local, w.date, w.tzid = t.Format(localLayout), true, ""
	case len(v) == 16 && v[15] == 'Z':
		v = v[:15]
		w.utc, w.tzid = true, ""
		fallthrough
	case len(v) == 15:
		t, err := time.Parse("20060102T150405", v)
		if err != nil {
			return w, fmt.Errorf("%s: bad date-time %q", p.Name, p.Value)
		}
		w.local = t.Format(localLayout)
	default:
		return w, fmt.Errorf("%s: bad date-time %q", p.Name, p.Value)
	}
	return w, nil
}

// whens parses every value of a list property (EXDATE, RDATE).
func whens(p ical.Prop) []when {
	var out []when
	for _, v := range strings.Split(p.Value, ",") {
		q := p
		q.Value = v
		if strings.Contains(v, "/") { // a PERIOD: its start
			q.Value = v[:strings.IndexByte(v, '/')]
		}
		if w, err := parseWhen(&q); err == nil {
			out = append(out, w)
		}
	}
	return out
}

// conv holds one object's time zones while it is converted.
type conv struct {
	vtz       map[string]*ical.Component
	timeZones map[string]any
	jsprops   []ical.Prop // the master's JSPROP properties, applied last
}

// zone maps a TZID to the JSCalendar timeZone: the IANA name itself, or
// "/"+TZID, a custom zone defined in timeZones from the VTIMEZONE.
func (c *conv) zone(tzid string) string {
	if tzid == "" {
		return ""
	}
	if isIANA(tzid) {
		return tzid
	}
	id := "/" + tzid
	if comp, ok := c.vtz[tzid]; ok && c.timeZones[id] == nil {
		c.timeZones[id] = customZone(tzid, comp)
	}
	return id
}

func isIANA(tzid string) bool {
	if tzid == "" || tzid == "Local" || strings.HasPrefix(tzid, "/") {
		return false
	}
	_, err := time.LoadLocation(tzid)
	return err == nil
}

// inZone returns w as a LocalDateTime in the event's zone tz (a UTC
// value is converted when tz is an IANA zone; in a custom zone the UTC
// wall time is kept, a documented loss).
func inZone(w when, tz string) string {
	if !w.utc || tz == "" || tz == "Etc/UTC" || tz == "UTC" {
		return w.local
	}
	if loc, err := time.LoadLocation(tz); err == nil {
		t, _ := time.ParseInLocation(localLayout, w.local, time.UTC)
		return t.In(loc).Format(localLayout)
	}
	return w.local
}

func customZone(tzid string, comp *ical.Component) map[string]any {
	z := map[string]any{"@type": "TimeZone", "tzId": tzid}
	for _, ch := range comp.Children {
		kind := strings.ToLower(ch.Name)
		if kind != "standard" && kind != "daylight" {
			continue
		}
		r := map[string]any{"@type": "TimeZoneRule"}
		if p := ch.Props.Get("DTSTART"); p != nil {
			if w, err := parseWhen(p); err == nil {
				r["start"] = w.local
			}
		}
		if p := ch.Props.Get("TZOFFSETFROM"); p != nil {
			r["offsetFrom"] = p.Value
		}
		if p := ch.Props.Get("TZOFFSETTO"); p != nil {
			r["offsetTo"] = p.Value
		}
		var rules []any
		for _, p := range ch.Props.Values("RRULE") {
			rules = append(rules, parseRRule(p.Value, "", w0))
		}
		if len(rules) > 0 {
			r["recurrenceRules"] = rules
		}
		names := map[string]any{}
		for _, p := range ch.Props.Values("TZNAME") {
			if t, err := p.Text(); err == nil && t != "" {
				names[t] = true
			}
		}
		if len(names) > 0 {
			r["names"] = names
		}
		list, _ := z[kind].([]any)
		z[kind] = append(list, r)
	}
	return z
}

var w0 = func(w when) string { return w.local }

// parseRRule turns an RRULE value into a RecurrenceRule (RFC 8984
// 4.3.3); UNTIL is converted by until into the event's zone.
func parseRRule(v, _ string, until func(when) string) map[string]any {
	r := map[string]any{"@type": "RecurrenceRule"}
	for _, part := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(part, "=")
		k = strings.ToUpper(strings.TrimSpace(k))
		switch k {
		case "FREQ":
			r["frequency"] = strings.ToLower(val)
		case "INTERVAL":
			if n, err := strconv.Atoi(val); err == nil {
				r["interval"] = n
			}
		case "RSCALE":
			r["rscale"] = strings.ToLower(val)
		case "SKIP":
			r["skip"] = strings.ToLower(val)
		case "WKST":
			r["firstDayOfWeek"] = strings.ToLower(val)
		case "COUNT":
			if n, err := strconv.Atoi(val); err == nil {
				r["count"] = n
			}
		case "UNTIL":
			p := ical.NewProp("UNTIL")
			p.Value = val
			if w, err := parseWhen(p); err == nil {
				r["until"] = until(w)
			}
		case "BYDAY":
			var days []any
			for _, d := range strings.Split(val, ",") {
				d = strings.TrimSpace(d)
				if len(d) < 2 {
					continue
				}
				nd := map[string]any{"@type": "NDay", "day": strings.ToLower(d[len(d)-2:])}
				if n, err := strconv.Atoi(d[:len(d)-2]); err == nil {
					nd["nthOfPeriod"] = n
				}
				days = append(days, nd)
			}
			r["byDay"] = days
		case "BYMONTH":
			var ms []any
			for _, m := range strings.Split(val, ",") {
				ms = append(ms, m)
			}
			r["byMonth"] = ms
		case "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND", "BYSETPOS":
			var ns []any
			for _, s := range strings.Split(val, ",") {
				if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
					ns = append(ns, n)
				}
			}
			r[rruleMembers[k]] = ns
		}
	}
	return r
}

var rruleMembers = map[string]string{"BYMONTHDAY": "byMonthDay", "BYYEARDAY": "byYearDay", "BYWEEKNO": "byWeekNo",
	"BYHOUR": "byHour", "BYMINUTE": "byMinute", "BYSECOND": "bySecond", "BYSETPOS": "bySetPosition"}

// ToEvent converts one iCalendar object (one UID: the master VEVENT, its
// overrides and their VTIMEZONEs) into a JSCalendar Event. An object
// without a VEVENT is a *[SkipError]; one that does not parse an error.
func ToEvent(body []byte) (Event, error) {
	if len(body) > MaxObjectSize {
		return nil, fmt.Errorf("calendar object of %d bytes is larger than %d", len(body), MaxObjectSize)
	}
	cal, err := decode(body)
	if err != nil {
		return nil, fmt.Errorf("parse iCalendar: %w", err)
	}
	c := &conv{vtz: map[string]*ical.Component{}, timeZones: map[string]any{}}
	var master *ical.Component
	var overrides []*ical.Component
	other := ""
	for _, ch := range cal.Children {
		switch ch.Name {
		case ical.CompTimezone:
			if p := ch.Props.Get("TZID"); p != nil {
				c.vtz[p.Value] = ch
			}
		case ical.CompEvent:
			if ch.Props.Get("RECURRENCE-ID") != nil {
				overrides = append(overrides, ch)
			} else if master == nil {
				master = ch
			}
		default:
			if other == "" {
				other = ch.Name
			}
		}
	}
	if master == nil {
		if len(overrides) == 0 {
			if other == "" {
				other = "calendar without components"
			}
			return nil, &SkipError{Component: other}
		}
		return nil, errors.New("only overrides of a recurring event (RECURRENCE-ID) and no master VEVENT")
	}
	e, err := c.event(master, false)
	if err != nil {
		return nil, err
	}
	if p := cal.Props.Get("PRODID"); p != nil && p.Value != DefaultProdID {
		e["prodId"] = p.Value
	}
	if p := cal.Props.Get("METHOD"); p != nil {
		e["method"] = strings.ToLower(p.Value)
	}
	tz, _ := e["timeZone"].(string)
	ro, _ := e["recurrenceOverrides"].(map[string]any)
	if ro == nil {
		ro = map[string]any{}
	}
	for _, ov := range overrides {
		w, err := parseWhen(ov.Props.Get("RECURRENCE-ID"))
		if err != nil {
			return nil, err
		}
		rid := inZone(w, tz)
		o, err := c.event(ov, true)
		if err != nil {
			return nil, err
		}
		base := Event{}
		for k, v := range e {
			if !notInPatch[k] {
				base[k] = v
			}
		}
		base["start"] = rid
		for k := range o {
			if notInPatch[k] {
				delete(o, k)
			}
		}
		ro[rid] = Diff(Normalize(base), Normalize(o))
	}
	if len(ro) > 0 {
		e["recurrenceOverrides"] = ro
	}
	if len(c.timeZones) > 0 {
		e["timeZones"] = c.timeZones
	}
	for i := range c.jsprops {
		applyJSProp(e, &c.jsprops[i])
	}
	return Normalize(e), nil
}

// notInPatch are the members a recurrenceOverrides patch must not hold
// (RFC 8984 4.3.5).
var notInPatch = map[string]bool{"@type": true, "excludedRecurrenceRules": true, "method": true, "privacy": true, "prodId": true,
	"recurrenceId": true, "recurrenceIdTimeZone": true, "recurrenceOverrides": true, "recurrenceRules": true, "relatedTo": true,
	"replyTo": true, "sentBy": true, "timeZones": true, "uid": true}

func text(p *ical.Prop) string {
	if p == nil {
		return ""
	}
	t, err := p.Text()
	if err != nil {
		return p.Value
	}
	return t
}

func utcDate(p *ical.Prop) (string, bool) {
	if p == nil {
		return "", false
	}
	w, err := parseWhen(p)
	if err != nil {
		return "", false
	}
	return w.local + "Z", true
}

func participantID(addr string) string {
	s := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(addr))))
	return "p" + hex.EncodeToString(s[:4])
}

// event converts one VEVENT (the master, or an override whose JSPROPs
// are ignored: the master's carry the whole event).
func (c *conv) event(comp *ical.Component, override bool) (Event, error) {
	e := Event{"@type": "Event"}
	uid := comp.Props.Get("UID")
	if uid == nil || uid.Value == "" {
		return nil, errors.New("VEVENT without UID")
	}
	e["uid"] = uid.Value
	if p := comp.Props.Get("SUMMARY"); p != nil {
		e["title"] = text(p)
	}
	if p := comp.Props.Get("DESCRIPTION"); p != nil {
		e["description"] = text(p)
	}
	dtstart := comp.Props.Get("DTSTART")
	if dtstart == nil {
		return nil, errors.New("VEVENT without DTSTART")
	}
	start, err := parseWhen(dtstart)
	if err != nil {
		return nil, err
	}
	tz := ""
	switch {
	case start.date:
		e["showWithoutTime"] = true
	case start.utc:
		tz = "Etc/UTC"
	default:
		tz = c.zone(start.tzid)
	}
	if tz != "" {
		e["timeZone"] = tz
	}
	e["start"] = start.local
	if p := comp.Props.Get("DURATION"); p != nil {
		e["duration"] = strings.ToUpper(strings.TrimSpace(p.Value))
	} else if p := comp.Props.Get("DTEND"); p != nil {
		end, err := parseWhen(p)
		if err != nil {
			return nil, err
		}
		endLocal := end.local
		if end.utc && !start.utc {
			endLocal = inZone(end, tz)
		}
		if d := duration(start.local, endLocal); d != "" {
			e["duration"] = d
		}
	} else if start.date {
		e["duration"] = "P1D"
	}
	if p := comp.Props.Get("LAST-MODIFIED"); p != nil {
		if s, ok := utcDate(p); ok {
			e["updated"] = s
		}
	} else if s, ok := utcDate(comp.Props.Get("DTSTAMP")); ok {
		e["updated"] = s
	}
	if s, ok := utcDate(comp.Props.Get("CREATED")); ok {
		e["created"] = s
	}
	for _, k := range []string{"SEQUENCE", "PRIORITY"} {
		if p := comp.Props.Get(k); p != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(p.Value)); err == nil {
				e[strings.ToLower(k)] = n
			}
		}
	}
	if p := comp.Props.Get("STATUS"); p != nil {
		e["status"] = strings.ToLower(p.Value)
	}
	if p := comp.Props.Get("TRANSP"); p != nil && strings.EqualFold(p.Value, "TRANSPARENT") {
		e["freeBusyStatus"] = "free"
	}
	if p := comp.Props.Get("CLASS"); p != nil {
		switch strings.ToUpper(p.Value) {
		case "PRIVATE":
			e["privacy"] = "private"
		case "CONFIDENTIAL":
			e["privacy"] = "secret"
		}
	}
	kw := map[string]any{}
	for _, p := range comp.Props.Values("CATEGORIES") {
		l, _ := p.TextList()
		for _, k := range l {
			if k != "" {
				kw[k] = true
			}
		}
	}
	if len(kw) > 0 {
		e["keywords"] = kw
	}
	if p := comp.Props.Get("COLOR"); p != nil {
		e["color"] = p.Value
	}
	loc := map[string]any{"@type": "Location"}
	if p := comp.Props.Get("LOCATION"); p != nil {
		loc["name"] = text(p)
	}
	if p := comp.Props.Get("GEO"); p != nil {
		if lat, lon, ok := strings.Cut(p.Value, ";"); ok {
			loc["coordinates"] = "geo:" + strings.TrimSpace(lat) + "," + strings.TrimSpace(lon)
		}
	}
	if len(loc) > 1 {
		e["locations"] = map[string]any{"l1": loc}
	}
	links := map[string]any{}
	for i, p := range comp.Props.Values("ATTACH") {
		l := map[string]any{"@type": "Link", "rel": "enclosure"}
		ct := p.Params.Get("FMTTYPE")
		if ct != "" {
			l["contentType"] = ct
		}
		if strings.EqualFold(p.Params.Get("VALUE"), "BINARY") || strings.EqualFold(p.Params.Get("ENCODING"), "BASE64") {
			if ct == "" {
				ct = "application/octet-stream"
			}
			l["href"] = "data:" + ct + ";base64," + strings.TrimSpace(p.Value)
		} else {
			l["href"] = p.Value
		}
		if fn := p.Params.Get("FILENAME"); fn != "" {
			l["title"] = fn
		}
		links["k"+strconv.Itoa(i+1)] = l
	}
	for i, p := range comp.Props.Values("URL") {
		links["u"+strconv.Itoa(i+1)] = map[string]any{"@type": "Link", "href": p.Value, "rel": "describedby"}
	}
	if len(links) > 0 {
		e["links"] = links
	}
	untilConv := func(w when) string { return inZone(w, tz) }
	var rr, xr []any
	for _, p := range comp.Props.Values("RRULE") {
		rr = append(rr, parseRRule(p.Value, tz, untilConv))
	}
	for _, p := range comp.Props.Values("EXRULE") {
		xr = append(xr, parseRRule(p.Value, tz, untilConv))
	}
	if len(rr) > 0 {
		e["recurrenceRules"] = rr
	}
	if len(xr) > 0 {
		e["excludedRecurrenceRules"] = xr
	}
	ro := map[string]any{}
	for _, p := range comp.Props.Values("RDATE") {
		for _, w := range whens(p) {
			ro[inZone(w, tz)] = map[string]any{}
		}
	}
	for _, p := range comp.Props.Values("EXDATE") {
		for _, w := range whens(p) {
			ro[inZone(w, tz)] = map[string]any{"excluded": true}
		}
	}
	if len(ro) > 0 {
		e["recurrenceOverrides"] = ro
	}
	parts := map[string]any{}
	if p := comp.Props.Get("ORGANIZER"); p != nil {
		e["replyTo"] = map[string]any{"imip": p.Value}
		pt := participant(p)
		pt["roles"] = map[string]any{"owner": true}
		parts[participantID(p.Value)] = pt
	}
	for _, p := range comp.Props.Values("ATTENDEE") {
		pt := participant(&p)
		roles := map[string]any{"attendee": true}
		switch strings.ToUpper(p.Params.Get("ROLE")) {
		case "CHAIR":
			roles["chair"] = true
		case "OPT-PARTICIPANT":
			roles["optional"] = true
		case "NON-PARTICIPANT":
			roles = map[string]any{"informational": true}
		}
		if s := p.Params.Get("PARTSTAT"); s != "" {
			pt["participationStatus"] = strings.ToLower(s)
		}
		if strings.EqualFold(p.Params.Get("RSVP"), "TRUE") {
			pt["expectReply"] = true
		}
		if s := p.Params.Get("CUTYPE"); s != "" {
			pt["kind"] = strings.ToLower(s)
		}
		id := participantID(p.Value)
		if old, ok := parts[id].(map[string]any); ok {
			for r := range roles {
				old["roles"].(map[string]any)[r] = true
			}
			for k, v := range pt {
				if k != "roles" {
					old[k] = v
				}
			}
			continue
		}
		pt["roles"] = roles
		parts[id] = pt
	}
	if len(parts) > 0 {
		e["participants"] = parts
	}
	alerts := map[string]any{}
	n := 0
	for _, ch := range comp.Children {
		if ch.Name != ical.CompAlarm {
			continue
		}
		n++
		if a := alert(ch); a != nil {
			alerts["a"+strconv.Itoa(n)] = a
		}
	}
	if len(alerts) > 0 {
		e["alerts"] = alerts
	}
	var props []any
	names := make([]string, 0, len(comp.Props))
	for k := range comp.Props {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "JSPROP" {
			if !override {
				c.jsprops = append(c.jsprops, comp.Props[k]...)
			}
			continue
		}
		if handled[k] {
			continue
		}
		for _, p := range comp.Props[k] {
			props = append(props, jcal(p))
		}
	}
	if len(props) > 0 {
		e["iCalendar"] = map[string]any{"@type": "ICalComponent", "name": "vevent", "properties": props}
	}
	return e, nil
}

// jcal is a property in jCal form (RFC 7265 3.4): name, parameters,
// type and the value as the object had it (type "unknown": the raw
// text, written back unchanged).
func jcal(p ical.Prop) []any {
	params := map[string]any{}
	for k, v := range p.Params {
		if len(v) == 1 {
			params[strings.ToLower(k)] = v[0]
		} else {
			l := make([]any, len(v))
			for i, s := range v {
				l[i] = s
			}
			params[strings.ToLower(k)] = l
		}
	}
	return []any{strings.ToLower(p.Name), params, "unknown", p.Value}
}

func participant(p *ical.Prop) map[string]any {
	pt := map[string]any{"@type": "Participant", "sendTo": map[string]any{"imip": p.Value}}
	if cn := p.Params.Get("CN"); cn != "" {
		pt["name"] = cn
	}
	if strings.HasPrefix(strings.ToLower(p.Value), "mailto:") {
		pt["email"] = p.Value[len("mailto:"):]
	}
	return pt
}

func alert(ch *ical.Component) map[string]any {
	a := map[string]any{"@type": "Alert"}
	if p := ch.Props.Get("ACTION"); p != nil && strings.EqualFold(p.Value, "EMAIL") {
		a["action"] = "email"
	}
	p := ch.Props.Get("TRIGGER")
	if p == nil {
		return nil
	}
	if strings.EqualFold(p.Params.Get("VALUE"), "DATE-TIME") {
		s, ok := utcDate(p)
		if !ok {
			return nil
		}
		a["trigger"] = map[string]any{"@type": "AbsoluteTrigger", "when": s}
	} else {
		t := map[string]any{"@type": "OffsetTrigger", "offset": strings.ToUpper(strings.TrimSpace(p.Value))}
		if strings.EqualFold(p.Params.Get("RELATED"), "END") {
			t["relativeTo"] = "end"
		}
		a["trigger"] = t
	}
	if s, ok := utcDate(ch.Props.Get("ACKNOWLEDGED")); ok {
		a["acknowledged"] = s
	}
	return a
}

// applyJSProp sets the member a JSPROP property carries (written by
// [ToICal] for a JSCalendar member iCalendar has no property for).
func applyJSProp(e Event, p *ical.Prop) {
	ptr := p.Params.Get("JSPTR")
	if ptr == "" {
		return
	}
	var v any
	if err := jsonUnmarshal([]byte(text(p)), &v); err != nil {
		return
	}
	out := applyPatch(e, map[string]any{ptr: v})
	for k := range e {
		delete(e, k)
	}
	for k, x := range out {
		e[k] = x
	}
}

// duration is end − start of two LocalDateTimes as a JSCalendar
// Duration ("" when not positive).
func duration(start, end string) string {
	s, err1 := time.Parse(localLayout, start)
	t, err2 := time.Parse(localLayout, end)
	if err1 != nil || err2 != nil || !t.After(s) {
		return ""
	}
	return FormatDuration(t.Sub(s))
}

// FormatDuration writes d as an RFC 8984 Duration: days, then hours,
// minutes and seconds ("P1DT2H30M").
func FormatDuration(d time.Duration) string {
	secs := int64(d / time.Second)
	days := secs / 86400
	secs %= 86400
	var b strings.Builder
	b.WriteString("P")
	if days > 0 {
		fmt.Fprintf(&b, "%dD", days)
	}
	if secs > 0 {
		b.WriteString("T")
		if h := secs / 3600; h > 0 {
			fmt.Fprintf(&b, "%dH", h)
		}
		if m := secs % 3600 / 60; m > 0 {
			fmt.Fprintf(&b, "%dM", m)
		}
		if s := secs % 60; s > 0 {
			fmt.Fprintf(&b, "%dS", s)
		}
	}
	if b.Len() == 1 {
		return "PT0S"
	}
	return b.String()
}

// decode parses an iCalendar stream; go-ical's panic on a malformed
// line is an error (icalsafe).
func decode(body []byte) (*ical.Calendar, error) { return icalsafe.Decode(body) }
