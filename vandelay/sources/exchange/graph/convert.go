package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
)

// The conversions below turn Graph's JSON into the formats the archive
// and the DAV targets keep. They are deterministic (same JSON, same
// bytes), so that an unchanged contact or event is no change in the
// archive. What has no field in the other format is left out; the list is
// in docs/import.md ("Microsoft Exchange").

type emailAddress struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type physicalAddress struct {
	Street          string `json:"street"`
	City            string `json:"city"`
	State           string `json:"state"`
	PostalCode      string `json:"postalCode"`
	CountryOrRegion string `json:"countryOrRegion"`
}

func (a *physicalAddress) empty() bool {
	return a == nil || *a == physicalAddress{}
}

type contact struct {
	ID               string           `json:"id"`
	DisplayName      string           `json:"displayName"`
	GivenName        string           `json:"givenName"`
	MiddleName       string           `json:"middleName"`
	Surname          string           `json:"surname"`
	Title            string           `json:"title"`
	Generation       string           `json:"generation"`
	NickName         string           `json:"nickName"`
	EmailAddresses   []emailAddress   `json:"emailAddresses"`
	BusinessPhones   []string         `json:"businessPhones"`
	HomePhones       []string         `json:"homePhones"`
	MobilePhone      string           `json:"mobilePhone"`
	CompanyName      string           `json:"companyName"`
	Department       string           `json:"department"`
	JobTitle         string           `json:"jobTitle"`
	Birthday         string           `json:"birthday"`
	HomeAddress      *physicalAddress `json:"homeAddress"`
	BusinessAddress  *physicalAddress `json:"businessAddress"`
	OtherAddress     *physicalAddress `json:"otherAddress"`
	BusinessHomePage string           `json:"businessHomePage"`
	PersonalNotes    string           `json:"personalNotes"`
	Categories       []string         `json:"categories"`
	LastModified     string           `json:"lastModifiedDateTime"`
}

// contactVCard maps a Graph contact to a vCard 3.0 (RFC 2426), the
// version CardDAV servers accept most widely.
func contactVCard(raw []byte) ([]byte, error) {
	var c contact
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("contact JSON: %w", err)
	}
	if c.ID == "" {
		return nil, errors.New("contact without id")
	}
	card := vcard.Card{}
	card.SetValue(vcard.FieldVersion, "3.0")
	card.SetValue(vcard.FieldUID, c.ID)
	fn := c.DisplayName
	if fn == "" {
		fn = strings.TrimSpace(c.GivenName + " " + c.Surname)
	}
	if fn == "" && len(c.EmailAddresses) > 0 {
		fn = c.EmailAddresses[0].Address
	}
	card.SetValue(vcard.FieldFormattedName, fn)
	card.SetName(&vcard.Name{FamilyName: component(c.Surname), GivenName: component(c.GivenName), AdditionalName: component(c.MiddleName),
		HonorificPrefix: component(c.Title), HonorificSuffix: component(c.Generation)})
	if c.NickName != "" {
		card.SetValue(vcard.FieldNickname, c.NickName)
	}
	for _, e := range c.EmailAddresses {
		if e.Address != "" {
			card.Add(vcard.FieldEmail, &vcard.Field{Value: e.Address, Params: vcard.Params{vcard.ParamType: {"INTERNET"}}})
		}
	}
	phone := func(v string, types ...string) {
		if v != "" {
			card.Add(vcard.FieldTelephone, &vcard.Field{Value: v, Params: vcard.Params{vcard.ParamType: types}})
		}
	}
	for _, p := range c.BusinessPhones {
		phone(p, "WORK", "VOICE")
	}
	for _, p := range c.HomePhones {
		phone(p, "HOME", "VOICE")
	}
	phone(c.MobilePhone, "CELL")
	if c.CompanyName != "" || c.Department != "" {
		org := component(c.CompanyName)
		if c.Department != "" {
			org += ";" + component(c.Department)
		}
		card.Set(vcard.FieldOrganization, &vcard.Field{Value: org})
	}
	if c.JobTitle != "" {
		card.SetValue(vcard.FieldTitle, c.JobTitle)
	}
	if t, err := time.Parse(time.RFC3339, c.Birthday); err == nil {
		card.SetValue(vcard.FieldBirthday, t.UTC().Format("2006-01-02"))
	}
	for _, a := range []struct {
		addr *physicalAddress
		typ  string
	}{{c.HomeAddress, "HOME"}, {c.BusinessAddress, "WORK"}, {c.OtherAddress, ""}} {
		if a.addr.empty() {
			continue
		}
		ad := &vcard.Address{StreetAddress: component(a.addr.Street), Locality: component(a.addr.City), Region: component(a.addr.State),
			PostalCode: component(a.addr.PostalCode), Country: component(a.addr.CountryOrRegion), Field: &vcard.Field{Params: vcard.Params{}}}
		if a.typ != "" {
			ad.Params[vcard.ParamType] = []string{a.typ}
		}
		card.AddAddress(ad)
	}
	if c.BusinessHomePage != "" {
		card.SetValue(vcard.FieldURL, c.BusinessHomePage)
	}
	if c.PersonalNotes != "" {
		card.SetValue(vcard.FieldNote, c.PersonalNotes)
	}
	if len(c.Categories) > 0 {
		card.SetCategories(c.Categories)
	}
	if t, err := time.Parse(time.RFC3339, c.LastModified); err == nil {
		card.SetRevision(t.UTC())
	}
	var b bytes.Buffer
	if err := vcard.NewEncoder(&b).Encode(card); err != nil {
		return nil, fmt.Errorf("encode vCard: %w", err)
	}
	return b.Bytes(), nil
}

// component makes a value one component of a structured vCard value
// (N, ADR, ORG). The vCard encoder escapes backslashes, commas and line
// breaks but has no escape for ";" inside a component, so a ";" becomes
// "," (documented as lossy in docs/import.md).
func component(s string) string { return strings.ReplaceAll(s, ";", ",") }

type dateTimeTZ struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

type attendee struct {
	Type         string       `json:"type"`
	EmailAddress emailAddress `json:"emailAddress"`
	Status       struct {
		Response string `json:"response"`
	} `json:"status"`
}

type event struct {
	ID                    string     `json:"id"`
	ICalUID               string     `json:"iCalUId"`
	Subject               string     `json:"subject"`
	Start                 dateTimeTZ `json:"start"`
	End                   dateTimeTZ `json:"end"`
	OriginalStartTimeZone string     `json:"originalStartTimeZone"`
	IsAllDay              bool       `json:"isAllDay"`
	IsCancelled           bool       `json:"isCancelled"`
	ShowAs                string     `json:"showAs"`
	Sensitivity           string     `json:"sensitivity"`
	Type                  string     `json:"type"`
	Location              struct {
		DisplayName string `json:"displayName"`
	} `json:"location"`
	Body struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	Organizer struct {
		EmailAddress emailAddress `json:"emailAddress"`
	} `json:"organizer"`
	Attendees  []attendee  `json:"attendees"`
	Categories []string    `json:"categories"`
	Recurrence *recurrence `json:"recurrence"`
	// OriginalStart is an occurrence's or exception's start as the series
	// has it (before an exception moved it), in UTC.
	OriginalStart string `json:"originalStart"`
	Created       string `json:"createdDateTime"`
	LastModified  string `json:"lastModifiedDateTime"`
}

type recurrence struct {
	Pattern struct {
		Type           string   `json:"type"`
		Interval       int      `json:"interval"`
		Month          int      `json:"month"`
		DayOfMonth     int      `json:"dayOfMonth"`
		DaysOfWeek     []string `json:"daysOfWeek"`
		FirstDayOfWeek string   `json:"firstDayOfWeek"`
		Index          string   `json:"index"`
	} `json:"pattern"`
	Range struct {
		Type                string `json:"type"`
		StartDate           string `json:"startDate"`
		EndDate             string `json:"endDate"`
		NumberOfOccurrences int    `json:"numberOfOccurrences"`
	} `json:"range"`
}

// graphTime parses Graph's dateTime (fractional seconds, no zone; the
// zone is UTC because the request prefers outlook.timezone="UTC").
func graphTime(d dateTimeTZ) (time.Time, error) {
	if d.TimeZone != "" && d.TimeZone != "UTC" {
		return time.Time{}, fmt.Errorf("time zone %q, want UTC", d.TimeZone)
	}
	return time.Parse("2006-01-02T15:04:05.9999999", d.DateTime)
}

var weekdays = map[string]string{"sunday": "SU", "monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR", "saturday": "SA"}
var indexes = map[string]string{"first": "1", "second": "2", "third": "3", "fourth": "4", "last": "-1"}

// rrule maps Graph's recurrence pattern and range to an RRULE (RFC 5545
// 3.3.10).
func rrule(r *recurrence) (string, error) {
	p := r.Pattern
	var parts []string
	days := func() string {
		var ds []string
		for _, d := range p.DaysOfWeek {
			w, ok := weekdays[strings.ToLower(d)]
			if !ok {
				return ""
			}
			ds = append(ds, w)
		}
		return strings.Join(ds, ",")
	}
	switch p.Type {
	case "daily":
		parts = append(parts, "FREQ=DAILY")
	case "weekly":
		parts = append(parts, "FREQ=WEEKLY", "BYDAY="+days())
		if w, ok := weekdays[strings.ToLower(p.FirstDayOfWeek)]; ok && w != "MO" {
			parts = append(parts, "WKST="+w)
		}
	case "absoluteMonthly":
		parts = append(parts, "FREQ=MONTHLY", fmt.Sprintf("BYMONTHDAY=%d", p.DayOfMonth))
	case "relativeMonthly":
		parts = append(parts, "FREQ=MONTHLY", "BYDAY="+days(), "BYSETPOS="+indexes[strings.ToLower(p.Index)])
	case "absoluteYearly":
		parts = append(parts, "FREQ=YEARLY", fmt.Sprintf("BYMONTH=%d", p.Month), fmt.Sprintf("BYMONTHDAY=%d", p.DayOfMonth))
	case "relativeYearly":
		parts = append(parts, "FREQ=YEARLY", fmt.Sprintf("BYMONTH=%d", p.Month), "BYDAY="+days(), "BYSETPOS="+indexes[strings.ToLower(p.Index)])
	default:
		return "", fmt.Errorf("recurrence type %q", p.Type)
	}
	for _, x := range parts {
		if strings.HasSuffix(x, "=") {
			return "", fmt.Errorf("recurrence %q without its days or index", p.Type)
		}
	}
	if p.Interval > 1 {
		parts = append(parts, fmt.Sprintf("INTERVAL=%d", p.Interval))
	}
	switch r.Range.Type {
	case "endDate":
		end, err := time.Parse("2006-01-02", r.Range.EndDate)
		if err != nil {
			return "", fmt.Errorf("recurrence end date %q", r.Range.EndDate)
		}
		// UNTIL is inclusive: the end of the end date, in UTC.
		parts = append(parts, "UNTIL="+end.Add(24*time.Hour-time.Second).Format("20060102T150405Z"))
	case "numbered":
		parts = append(parts, fmt.Sprintf("COUNT=%d", r.Range.NumberOfOccurrences))
	case "noEnd", "":
	default:
		return "", fmt.Errorf("recurrence range %q", r.Range.Type)
	}
	return strings.Join(parts, ";"), nil
}

var partstat = map[string]string{"accepted": "ACCEPTED", "declined": "DECLINED", "tentativelyAccepted": "TENTATIVE",
	"none": "NEEDS-ACTION", "notResponded": "NEEDS-ACTION", "organizer": "ACCEPTED"}
var roles = map[string]string{"required": "REQ-PARTICIPANT", "optional": "OPT-PARTICIPANT", "resource": "NON-PARTICIPANT"}

// series is what the instances of a series master within a window say
// (dav.go reads them): the original starts of the occurrences that are
// there (plain and changed), and the changed ones in full.
type series struct {
	From, To   time.Time
	Present    []time.Time
	Exceptions [][]byte
}

// occurrenceSlack is how far an instance's originalStart may lie from the
// occurrence the RRULE computes: the RRULE is written in UTC from the
// master's start, while Exchange expands the series in its own time zone,
// so across a daylight-saving change the two differ by up to an hour.
// Graph's patterns repeat daily at most, so a few hours cannot reach the
// neighbouring occurrence.
const occurrenceSlack = 3 * time.Hour

// eventICal maps a Graph event (a single event or a series master) to an
// iCalendar object and returns its UID. With ser (a series master), the
// occurrences the RRULE computes within the window that have no instance
// become EXDATEs (cancelled occurrences), and each changed occurrence
// (an exception) becomes a VEVENT with the master's UID and a
// RECURRENCE-ID naming the occurrence it replaces (RFC 5545 3.8.4.4).
func eventICal(raw []byte, ser *series) ([]byte, string, error) {
	var e event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, "", fmt.Errorf("event JSON: %w", err)
	}
	uid := e.ICalUID
	if uid == "" {
		uid = e.ID
	}
	if uid == "" {
		return nil, "", errors.New("event without id")
	}
	ev, err := vevent(&e, uid)
	if err != nil {
		return nil, uid, err
	}
	cal := ical.NewCalendar()
	cal.Props.SetText(ical.PropVersion, "2.0")
	cal.Props.SetText(ical.PropProductID, "-//mailmig//Microsoft Graph//EN")
	cal.Children = append(cal.Children, ev.Component)
	if ser != nil && e.Recurrence != nil {
		overrides, err := occurrences(ev, &e, uid, ser)
		if err != nil {
			return nil, uid, err
		}
		cal.Children = append(cal.Children, overrides...)
	}
	var b bytes.Buffer
	if err := ical.NewEncoder(&b).Encode(cal); err != nil {
		return nil, uid, fmt.Errorf("encode iCalendar: %w", err)
	}
	return b.Bytes(), uid, nil
}

// occurrences adds the EXDATEs to the master ev and returns the
// exceptions' VEVENTs.
func occurrences(ev *ical.Event, master *event, uid string, ser *series) ([]*ical.Component, error) {
	set, err := ev.RecurrenceSet(time.UTC)
	if err != nil || set == nil {
		return nil, fmt.Errorf("series %q: expand the recurrence: %v", uid, err)
	}
	expected := set.Between(ser.From, ser.To, true)
	// match finds the computed occurrence an original start belongs to.
	match := func(orig time.Time) (time.Time, bool) {
		for _, t := range expected {
			if d := t.Sub(orig); d > -occurrenceSlack && d < occurrenceSlack {
				return t, true
			}
		}
		return time.Time{}, false
	}
	present := map[time.Time]bool{}
	for _, o := range ser.Present {
		if t, ok := match(o); ok {
			present[t] = true
		}
	}
	setTime := func(props ical.Props, name string, t time.Time) {
		p := ical.NewProp(name)
		if master.IsAllDay {
			p.SetDate(t)
		} else {
			p.SetDateTime(t.UTC())
		}
		props.Add(p)
	}
	for _, t := range expected {
		if !present[t] {
			setTime(ev.Props, ical.PropExceptionDates, t)
		}
	}
	var out []*ical.Component
	for _, raw := range ser.Exceptions {
		var x event
		if err := json.Unmarshal(raw, &x); err != nil {
			return nil, fmt.Errorf("series %q: exception JSON: %w", uid, err)
		}
		orig, err := time.Parse(time.RFC3339Nano, x.OriginalStart)
		if err != nil {
			return nil, fmt.Errorf("series %q: exception %q: originalStart %q", uid, x.ID, x.OriginalStart)
		}
		if t, ok := match(orig); ok {
			orig = t
		}
		x.Recurrence = nil
		xe, err := vevent(&x, uid)
		if err != nil {
			return nil, fmt.Errorf("series %q: exception %q: %w", uid, x.ID, err)
		}
		setTime(xe.Props, ical.PropRecurrenceID, orig)
		out = append(out, xe.Component)
	}
	return out, nil
}

// vevent maps one Graph event to a VEVENT with the given UID.
func vevent(e *event, uid string) (*ical.Event, error) {
	start, err := graphTime(e.Start)
	if err != nil {
		return nil, fmt.Errorf("event start: %w", err)
	}
	end, err := graphTime(e.End)
	if err != nil {
		return nil, fmt.Errorf("event end: %w", err)
	}
	ev := ical.NewEvent()
	ev.Props.SetText(ical.PropUID, uid)
	stamp := start
	if t, err := time.Parse(time.RFC3339Nano, e.LastModified); err == nil {
		stamp = t
		ev.Props.SetDateTime(ical.PropLastModified, t.UTC().Truncate(time.Second))
	}
	ev.Props.SetDateTime(ical.PropDateTimeStamp, stamp.UTC().Truncate(time.Second))
	if t, err := time.Parse(time.RFC3339Nano, e.Created); err == nil {
		ev.Props.SetDateTime(ical.PropCreated, t.UTC().Truncate(time.Second))
	}
	if e.IsAllDay {
		ev.Props.SetDate(ical.PropDateTimeStart, start)
		ev.Props.SetDate(ical.PropDateTimeEnd, end)
	} else {
		ev.Props.SetDateTime(ical.PropDateTimeStart, start.UTC())
		ev.Props.SetDateTime(ical.PropDateTimeEnd, end.UTC())
	}
	if e.OriginalStartTimeZone != "" {
		ev.Props.SetText("X-MS-TZID", e.OriginalStartTimeZone)
	}
	if e.Subject != "" {
		ev.Props.SetText(ical.PropSummary, e.Subject)
	}
	if e.Location.DisplayName != "" {
		ev.Props.SetText(ical.PropLocation, e.Location.DisplayName)
	}
	if e.Body.Content != "" && strings.EqualFold(e.Body.ContentType, "text") {
		ev.Props.SetText(ical.PropDescription, strings.ReplaceAll(e.Body.Content, "\r\n", "\n"))
	}
	if e.ShowAs == "free" {
		ev.Props.SetText(ical.PropTransparency, "TRANSPARENT")
	} else {
		ev.Props.SetText(ical.PropTransparency, "OPAQUE")
	}
	switch e.Sensitivity {
	case "private", "confidential":
		ev.Props.SetText(ical.PropClass, strings.ToUpper(e.Sensitivity))
	}
	if e.IsCancelled {
		ev.Props.SetText(ical.PropStatus, "CANCELLED")
	}
	if a := e.Organizer.EmailAddress.Address; a != "" {
		p := ical.NewProp(ical.PropOrganizer)
		p.Value = "mailto:" + a
		if n := e.Organizer.EmailAddress.Name; n != "" {
			p.Params.Set(ical.ParamCommonName, n)
		}
		ev.Props.Add(p)
	}
	for _, at := range e.Attendees {
		if at.EmailAddress.Address == "" {
			continue
		}
		p := ical.NewProp(ical.PropAttendee)
		p.Value = "mailto:" + at.EmailAddress.Address
		if n := at.EmailAddress.Name; n != "" {
			p.Params.Set(ical.ParamCommonName, n)
		}
		if r, ok := roles[at.Type]; ok {
			p.Params.Set(ical.ParamRole, r)
		}
		if s, ok := partstat[at.Status.Response]; ok {
			p.Params.Set(ical.ParamParticipationStatus, s)
		}
		ev.Props.Add(p)
	}
	if len(e.Categories) > 0 {
		p := ical.NewProp(ical.PropCategories)
		p.SetTextList(e.Categories)
		ev.Props.Add(p)
	}
	if e.Recurrence != nil {
		rule, err := rrule(e.Recurrence)
		if err != nil {
			return nil, err
		}
		p := ical.NewProp(ical.PropRecurrenceRule)
		p.SetValueType(ical.ValueRecurrence)
		p.Value = rule
		ev.Props.Add(p)
	}
	return ev, nil
}
