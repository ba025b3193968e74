package jscal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// DefaultProdID is the PRODID of an object whose event has no prodId.
const DefaultProdID = "-//mailmig//jscal//EN"

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func obj(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ToICal converts a JSCalendar Event (as a JMAP server serves a
// CalendarEvent) into one iCalendar object: VTIMEZONEs of its custom
// zones, the master VEVENT and one VEVENT per overridden occurrence.
func ToICal(e Event) ([]byte, error) {
	e = Normalize(e)
	if t := str(e, "@type"); t != "" && t != "Event" {
		return nil, fmt.Errorf("a JSCalendar %s is not an event", t)
	}
	if str(e, "uid") == "" {
		return nil, errors.New("event without uid")
	}
	if _, err := time.Parse(localLayout, str(e, "start")); err != nil {
		return nil, fmt.Errorf("event %s: bad start %q", str(e, "uid"), str(e, "start"))
	}
	cal := ical.NewCalendar()
	prod := str(e, "prodId")
	if prod == "" {
		prod = DefaultProdID
	}
	cal.Props.SetText(ical.PropProductID, prod)
	cal.Props.SetText(ical.PropVersion, "2.0")
	if m := str(e, "method"); m != "" {
		cal.Props.SetText(ical.PropMethod, strings.ToUpper(m))
	}
	tzs := obj(e, "timeZones")
	for _, id := range sortedKeys(tzs) {
		if z, ok := tzs[id].(map[string]any); ok {
			cal.Children = append(cal.Children, vtimezone(strings.TrimPrefix(id, "/"), z))
		}
	}
	master, err := vevent(e, "")
	if err != nil {
		return nil, err
	}
	cal.Children = append(cal.Children, master)
	tz := str(e, "timeZone")
	allDay, _ := e["showWithoutTime"].(bool)
	ro := obj(e, "recurrenceOverrides")
	base := Event{}
	for k, v := range e {
		if !notInPatch[k] {
			base[k] = v
		}
	}
	base["uid"] = e["uid"]
	for _, rid := range sortedKeys(ro) {
		patch, _ := ro[rid].(map[string]any)
		if _, err := time.Parse(localLayout, rid); err != nil {
			return nil, fmt.Errorf("event %s: bad recurrence id %q", str(e, "uid"), rid)
		}
		switch {
		case patch["excluded"] == true:
			master.Props.Add(dateProp("EXDATE", rid, tz, allDay))
		case len(patch) == 0:
			master.Props.Add(dateProp("RDATE", rid, tz, allDay))
		default:
			b := Event{}
			for k, v := range base {
				b[k] = v
			}
			b["start"] = rid
			o := applyPatch(b, patch)
			ov, err := vevent(o, rid)
			if err != nil {
				return nil, err
			}
			ov.Props.Set(dateProp("RECURRENCE-ID", rid, tz, allDay))
			cal.Children = append(cal.Children, ov)
		}
	}
	var buf bytes.Buffer
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, fmt.Errorf("write iCalendar: %w", err)
	}
	// What the iCalendar properties do not carry back (a member
	// iCalendar has no property for, a location's time zone, a
	// participant's delegation …) is written as JSPROP properties
	// holding the member's JSON, as the conversion draft does, so that
	// converting back gives the event again.
	back, err := ToEvent(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("read back the written iCalendar: %w", err)
	}
	keys := map[string]bool{}
	for k := range e {
		keys[k] = true
	}
	for k := range back {
		keys[k] = true
	}
	added := false
	for _, k := range sortedMembers(keys) {
		if canon(e[k]) == canon(back[k]) {
			continue
		}
		b, err := json.Marshal(e[k])
		if err != nil {
			continue
		}
		p := textProp("JSPROP", string(b))
		p.Params.Set("JSPTR", k)
		master.Props.Add(p)
		added = true
	}
	if !added {
		return buf.Bytes(), nil
	}
	buf.Reset()
	if err := ical.NewEncoder(&buf).Encode(cal); err != nil {
		return nil, fmt.Errorf("write iCalendar: %w", err)
	}
	return buf.Bytes(), nil
}

func sortedMembers(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// dateProp writes a LocalDateTime of the event's zone tz.
func dateProp(name, local, tz string, allDay bool) *ical.Prop {
	p := ical.NewProp(name)
	t, _ := time.Parse(localLayout, local)
	switch {
	case allDay:
		p.Params.Set("VALUE", "DATE")
		p.Value = t.Format("20060102")
	case tz == "Etc/UTC" || tz == "UTC":
		p.Value = t.Format("20060102T150405Z")
	case tz == "":
		p.Value = t.Format("20060102T150405")
	default:
		p.Params.Set("TZID", strings.TrimPrefix(tz, "/"))
		p.Value = t.Format("20060102T150405")
	}
	return p
}

func utcProp(name, v string) *ical.Prop {
	p := ical.NewProp(name)
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil
	}
	p.Value = t.UTC().Format("20060102T150405Z")
	return p
}

func textProp(name, v string) *ical.Prop {
	p := ical.NewProp(name)
	p.SetText(v)
	return p
}

func vtimezone(tzid string, z map[string]any) *ical.Component {
	c := ical.NewComponent(ical.CompTimezone)
	c.Props.SetText("TZID", tzid)
	for _, kind := range []string{"standard", "daylight"} {
		rules, _ := z[kind].([]any)
		for _, r := range rules {
			rm, ok := r.(map[string]any)
			if !ok {
				continue
			}
			ch := ical.NewComponent(strings.ToUpper(kind))
			if s := str(rm, "start"); s != "" {
				ch.Props.Set(dateProp("DTSTART", s, "", false))
			}
			for _, k := range []string{"offsetFrom", "offsetTo"} {
				p := ical.NewProp("TZ" + strings.ToUpper(k))
				p.Value = str(rm, k)
				ch.Props.Set(p)
			}
			rrs, _ := rm["recurrenceRules"].([]any)
			for _, rr := range rrs {
				if m, ok := rr.(map[string]any); ok {
					p := ical.NewProp("RRULE")
					p.Value = formatRRule(m, "", false)
					ch.Props.Add(p)
				}
			}
			for _, n := range sortedKeys(obj(rm, "names")) {
				ch.Props.Add(textProp("TZNAME", n))
			}
			c.Children = append(c.Children, ch)
		}
	}
	return c
}

func num(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}

// formatRRule writes a RecurrenceRule as an RRULE value; until is a
// LocalDateTime of the event's zone tz, written in UTC for an IANA zone
// as RFC 5545 asks.
func formatRRule(r map[string]any, tz string, allDay bool) string {
	var parts []string
	if f := str(r, "frequency"); f != "" {
		parts = append(parts, "FREQ="+strings.ToUpper(f))
	}
	if s := str(r, "rscale"); s != "" {
		parts = append(parts, "RSCALE="+strings.ToUpper(s))
	}
	if s := str(r, "skip"); s != "" {
		parts = append(parts, "SKIP="+strings.ToUpper(s))
	}
	if n, ok := num(r["interval"]); ok {
		parts = append(parts, "INTERVAL="+strconv.Itoa(n))
	}
	if n, ok := num(r["count"]); ok {
		parts = append(parts, "COUNT="+strconv.Itoa(n))
	}
	if u := str(r, "until"); u != "" {
		if t, err := time.Parse(localLayout, u); err == nil {
			switch {
			case allDay:
				parts = append(parts, "UNTIL="+t.Format("20060102"))
			case tz == "" || strings.HasPrefix(tz, "/"):
				parts = append(parts, "UNTIL="+t.Format("20060102T150405"))
			default:
				if loc, err := time.LoadLocation(tz); err == nil {
					t, _ = time.ParseInLocation(localLayout, u, loc)
				}
				parts = append(parts, "UNTIL="+t.UTC().Format("20060102T150405Z"))
			}
		}
	}
	if days, ok := r["byDay"].([]any); ok {
		var ds []string
		for _, d := range days {
			m, _ := d.(map[string]any)
			s := strings.ToUpper(str(m, "day"))
			if n, ok := num(m["nthOfPeriod"]); ok {
				s = strconv.Itoa(n) + s
			}
			ds = append(ds, s)
		}
		parts = append(parts, "BYDAY="+strings.Join(ds, ","))
	}
	if ms, ok := r["byMonth"].([]any); ok {
		var ss []string
		for _, m := range ms {
			ss = append(ss, fmt.Sprint(m))
		}
		parts = append(parts, "BYMONTH="+strings.Join(ss, ","))
	}
	for _, k := range []string{"BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND", "BYSETPOS"} {
		if ns, ok := r[rruleMembers[k]].([]any); ok {
			var ss []string
			for _, n := range ns {
				if i, ok := num(n); ok {
					ss = append(ss, strconv.Itoa(i))
				}
			}
			parts = append(parts, k+"="+strings.Join(ss, ","))
		}
	}
	if s := str(r, "firstDayOfWeek"); s != "" {
		parts = append(parts, "WKST="+strings.ToUpper(s))
	}
	return strings.Join(parts, ";")
}

// vevent writes one VEVENT from e (rid is the recurrence id of an
// override, whose recurrence members were not copied).
func vevent(e Event, rid string) (*ical.Component, error) {
	c := ical.NewComponent(ical.CompEvent)
	c.Props.SetText(ical.PropUID, str(e, "uid"))
	tz := str(e, "timeZone")
	allDay, _ := e["showWithoutTime"].(bool)
	start := str(e, "start")
	if _, err := time.Parse(localLayout, start); err != nil {
		return nil, fmt.Errorf("event %s: bad start %q", str(e, "uid"), start)
	}
	c.Props.Set(dateProp("DTSTART", start, tz, allDay))
	if d := str(e, "duration"); d != "" && d != "PT0S" {
		p := ical.NewProp("DURATION")
		p.Value = d
		c.Props.Set(p)
	}
	stamp := utcProp("DTSTAMP", str(e, "updated"))
	if stamp == nil {
		// DTSTAMP is required; an event without "updated" gets the
		// epoch, which ToEvent reads back as no "updated" change.
		stamp = ical.NewProp("DTSTAMP")
		stamp.Value = "19700101T000000Z"
	}
	c.Props.Set(stamp)
	if p := utcProp("CREATED", str(e, "created")); p != nil {
		c.Props.Set(p)
	}
	if s := str(e, "title"); s != "" {
		c.Props.Set(textProp("SUMMARY", s))
	}
	if s := str(e, "description"); s != "" {
		c.Props.Set(textProp("DESCRIPTION", s))
	}
	for _, k := range []string{"sequence", "priority"} {
		if n, ok := num(e[k]); ok {
			p := ical.NewProp(strings.ToUpper(k))
			p.Value = strconv.Itoa(n)
			c.Props.Set(p)
		}
	}
	if s := str(e, "status"); s != "" {
		p := ical.NewProp("STATUS")
		p.Value = strings.ToUpper(s)
		c.Props.Set(p)
	}
	if str(e, "freeBusyStatus") == "free" {
		p := ical.NewProp("TRANSP")
		p.Value = "TRANSPARENT"
		c.Props.Set(p)
	}
	if s := map[string]string{"private": "PRIVATE", "secret": "CONFIDENTIAL"}[str(e, "privacy")]; s != "" {
		p := ical.NewProp("CLASS")
		p.Value = s
		c.Props.Set(p)
	}
	if kw := sortedKeys(obj(e, "keywords")); len(kw) > 0 {
		p := ical.NewProp("CATEGORIES")
		p.SetTextList(kw)
		c.Props.Set(p)
	}
	if s := str(e, "color"); s != "" {
		p := ical.NewProp("COLOR")
		p.Value = s
		c.Props.Set(p)
	}
	locs := obj(e, "locations")
	for _, id := range sortedKeys(locs) {
		l, _ := locs[id].(map[string]any)
		if n := str(l, "name"); n != "" && c.Props.Get("LOCATION") == nil {
			c.Props.Set(textProp("LOCATION", n))
		}
		if g := str(l, "coordinates"); strings.HasPrefix(g, "geo:") && c.Props.Get("GEO") == nil {
			if lat, lon, ok := strings.Cut(strings.TrimPrefix(g, "geo:"), ","); ok {
				p := ical.NewProp("GEO")
				p.Value = lat + ";" + lon
				c.Props.Set(p)
			}
		}
	}
	links := obj(e, "links")
	for _, id := range sortedKeys(links) {
		l, _ := links[id].(map[string]any)
		href := str(l, "href")
		if str(l, "rel") == "describedby" {
			p := ical.NewProp("URL")
			p.Value = href
			c.Props.Add(p)
			continue
		}
		p := ical.NewProp("ATTACH")
		if ct := str(l, "contentType"); ct != "" {
			p.Params.Set("FMTTYPE", ct)
		}
		if t := str(l, "title"); t != "" {
			p.Params.Set("FILENAME", t)
		}
		if rest, ok := strings.CutPrefix(href, "data:"); ok {
			if meta, data, ok := strings.Cut(rest, ","); ok && strings.HasSuffix(meta, ";base64") {
				if _, err := base64.StdEncoding.DecodeString(data); err == nil {
					p.Params.Set("ENCODING", "BASE64")
					p.Params.Set("VALUE", "BINARY")
					if p.Params.Get("FMTTYPE") == "" {
						p.Params.Set("FMTTYPE", strings.TrimSuffix(meta, ";base64"))
					}
					p.Value = data
					c.Props.Add(p)
					continue
				}
			}
		}
		p.Value = href
		c.Props.Add(p)
	}
	if rid == "" {
		for _, k := range []string{"recurrenceRules", "excludedRecurrenceRules"} {
			rules, _ := e[k].([]any)
			for _, r := range rules {
				if m, ok := r.(map[string]any); ok {
					p := ical.NewProp(map[string]string{"recurrenceRules": "RRULE", "excludedRecurrenceRules": "EXRULE"}[k])
					p.Value = formatRRule(m, tz, allDay)
					c.Props.Add(p)
				}
			}
		}
	}
	parts := obj(e, "participants")
	for _, id := range sortedKeys(parts) {
		pt, _ := parts[id].(map[string]any)
		roles := obj(pt, "roles")
		addr := str(obj(pt, "sendTo"), "imip")
		if addr == "" && str(pt, "email") != "" {
			addr = "mailto:" + str(pt, "email")
		}
		if addr == "" {
			continue
		}
		if roles["owner"] == true {
			p := ical.NewProp("ORGANIZER")
			if n := str(pt, "name"); n != "" {
				p.Params.Set("CN", n)
			}
			p.Value = addr
			c.Props.Set(p)
		}
		if roles["attendee"] != true && roles["informational"] != true && roles["chair"] != true && roles["optional"] != true {
			continue
		}
		p := ical.NewProp("ATTENDEE")
		if n := str(pt, "name"); n != "" {
			p.Params.Set("CN", n)
		}
		switch {
		case roles["chair"] == true:
			p.Params.Set("ROLE", "CHAIR")
		case roles["optional"] == true:
			p.Params.Set("ROLE", "OPT-PARTICIPANT")
		case roles["informational"] == true && roles["attendee"] != true:
			p.Params.Set("ROLE", "NON-PARTICIPANT")
		}
		if s := str(pt, "participationStatus"); s != "" {
			p.Params.Set("PARTSTAT", strings.ToUpper(s))
		}
		if pt["expectReply"] == true {
			p.Params.Set("RSVP", "TRUE")
		}
		if s := str(pt, "kind"); s != "" {
			p.Params.Set("CUTYPE", strings.ToUpper(s))
		}
		p.Value = addr
		c.Props.Add(p)
	}
	if c.Props.Get("ORGANIZER") == nil && rid == "" {
		if addr := str(obj(e, "replyTo"), "imip"); addr != "" {
			p := ical.NewProp("ORGANIZER")
			p.Value = addr
			c.Props.Set(p)
		}
	}
	alerts := obj(e, "alerts")
	for _, id := range sortedKeys(alerts) {
		a, _ := alerts[id].(map[string]any)
		tr := obj(a, "trigger")
		va := ical.NewComponent(ical.CompAlarm)
		act := ical.NewProp("ACTION")
		act.Value = "DISPLAY"
		if str(a, "action") == "email" {
			act.Value = "EMAIL"
		}
		va.Props.Set(act)
		p := ical.NewProp("TRIGGER")
		switch str(tr, "@type") {
		case "AbsoluteTrigger":
			u := utcProp("TRIGGER", str(tr, "when"))
			if u == nil {
				continue
			}
			p = u
			p.Params.Set("VALUE", "DATE-TIME")
		default:
			off := str(tr, "offset")
			if off == "" {
				continue
			}
			p.Value = off
			if str(tr, "relativeTo") == "end" {
				p.Params.Set("RELATED", "END")
			}
		}
		va.Props.Set(p)
		if act.Value == "DISPLAY" {
			// RFC 5545 requires a DESCRIPTION in a DISPLAY alarm;
			// JSCalendar has none, the title stands in.
			va.Props.Set(textProp("DESCRIPTION", str(e, "title")))
		}
		if ack := utcProp("ACKNOWLEDGED", str(a, "acknowledged")); ack != nil {
			va.Props.Set(ack)
		}
		c.Children = append(c.Children, va)
	}
	if ic := obj(e, "iCalendar"); ic != nil {
		props, _ := ic["properties"].([]any)
		for _, x := range props {
			jp, ok := x.([]any)
			if !ok || len(jp) != 4 {
				continue
			}
			name, _ := jp[0].(string)
			val, _ := jp[3].(string)
			if name == "" || handled[strings.ToUpper(name)] {
				continue
			}
			p := ical.NewProp(strings.ToUpper(name))
			params, _ := jp[1].(map[string]any)
			for _, k := range sortedKeys(params) {
				switch v := params[k].(type) {
				case string:
					p.Params.Add(strings.ToUpper(k), v)
				case []any:
					for _, s := range v {
						if s, ok := s.(string); ok {
							p.Params.Add(strings.ToUpper(k), s)
						}
					}
				}
			}
			p.Value = val
			c.Props.Add(p)
		}
	}
	return c, nil
}
