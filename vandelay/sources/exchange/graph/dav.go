package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/internal/httpx"
)

// DAV reads a mailbox's contacts or calendars through Graph and hands
// them to the archive as vCard or iCalendar items, like a CardDAV or
// CalDAV source (vandelay.DAVSource), so that they export the same way.
//
// Contacts follow contactFolders/{id}/contacts/delta: the delta link is
// the collection's sync token and a 410 reads the folder again. Calendars
// are read in full each run (calendars/{id}/events, series masters with
// their recurrence): Graph's calendar delta only exists as
// calendarView/delta, which needs a fixed time window and returns each
// occurrence expanded, losing the series; a full listing keeps the series
// and costs one page per 100 events, and the archive keeps only what
// changed (it compares items by hash). The conversions are in vcard.go
// and ical.go; docs/import.md lists the mapping.
type DAV struct {
	s        *Source
	calendar bool
}

var _ vandelay.DAVSource = (*DAV)(nil)

// NewContacts returns the contacts of the mailbox as a DAV source.
func NewContacts(opts *Options) (*DAV, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &DAV{s: s}, nil
}

// NewCalendars returns the calendars of the mailbox as a DAV source.
func NewCalendars(opts *Options) (*DAV, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &DAV{s: s, calendar: true}, nil
}

// Describe implements vandelay.DAVSource.
func (d *DAV) Describe() archive.Source { return d.s.Describe() }

// Kind implements vandelay.DAVSource.
func (d *DAV) Kind() string {
	if d.calendar {
		return archive.CollectionCalendar
	}
	return archive.CollectionAddressBook
}

// Close implements vandelay.DAVSource.
func (d *DAV) Close() error { return nil }

// name is a short stable name for a Graph id (ids are long and hold
// characters some DAV servers refuse in a path).
func name(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:12])
}

type davFolder struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Name        string `json:"name"`
	HexColor    string `json:"hexColor"`
}

type davFolderPage struct {
	Value    []davFolder `json:"value"`
	NextLink string      `json:"@odata.nextLink"`
}

// Collections implements vandelay.DAVSource: the default contacts folder
// and every contactFolder, or every calendar. Hrefs are
// /graph/{contacts|calendars}/{name}/ so that exported collections get a
// safe name.
func (d *DAV) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	var out []archive.NewCollection
	if d.calendar {
		next := d.s.base + "/calendars?$top=100"
		for pages := 0; next != ""; pages++ {
			if pages >= maxPages {
				return nil, errors.New("calendar listing does not end")
			}
			var p davFolderPage
			if err := d.s.get(ctx, next, &p); err != nil {
				return nil, fmt.Errorf("list calendars: %w", err)
			}
			for _, f := range p.Value {
				out = append(out, archive.NewCollection{Href: "/graph/calendars/" + name(f.ID) + "/", DisplayName: f.Name,
					Color: f.HexColor, Components: []string{"VEVENT"}, Description: f.ID})
			}
			next = p.NextLink
		}
		return out, nil
	}
	// The default folder has no entry of its own in contactFolders.
	out = append(out, archive.NewCollection{Href: "/graph/contacts/default/", DisplayName: "Contacts", Description: ""})
	next := d.s.base + "/contactFolders?$top=100"
	for pages := 0; next != ""; pages++ {
		if pages >= maxPages {
			return nil, errors.New("contact folder listing does not end")
		}
		var p davFolderPage
		if err := d.s.get(ctx, next, &p); err != nil {
			return nil, fmt.Errorf("list contact folders: %w", err)
		}
		for _, f := range p.Value {
			out = append(out, archive.NewCollection{Href: "/graph/contacts/" + name(f.ID) + "/", DisplayName: f.DisplayName, Description: f.ID})
		}
		next = p.NextLink
	}
	return out, nil
}

// graphID is the Graph id of a collection (kept in Description, which
// Graph folders do not otherwise have; empty for the default contacts).
func graphID(c archive.NewCollection) string { return c.Description }

// Sync implements vandelay.DAVSource.
func (d *DAV) Sync(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	if d.calendar {
		return d.syncCalendar(ctx, c, cur)
	}
	folder := d.s.base + "/contacts/delta"
	if id := graphID(c); id != "" {
		folder = d.s.base + "/contactFolders/" + url.PathEscape(id) + "/contacts/delta"
	}
	full := cur == nil || cur.SyncToken == ""
	var items []rawItem
	var link string
	var err error
	if !full {
		items, link, err = d.collect(ctx, cur.SyncToken, true)
		if errors.Is(err, errResync) {
			full = true
		} else if err != nil {
			return nil, err
		}
	}
	if full {
		if items, link, err = d.collect(ctx, folder, true); err != nil {
			return nil, err
		}
	}
	cs := &archive.CollectionSync{Collection: c, SyncToken: link}
	live := map[string]bool{}
	for _, it := range items {
		href := c.Href + name(it.id) + ".vcf"
		if it.removed {
			cs.Deleted = append(cs.Deleted, href)
			continue
		}
		live[href] = true
		body, err := contactVCard(it.raw)
		ni := archive.NewItem{Href: href, UID: it.id, MediaType: "text/vcard", Body: body}
		if err != nil {
			ni.ParseError, ni.Body = err.Error(), it.raw
		}
		cs.Items = append(cs.Items, ni)
	}
	if full && cur != nil {
		for h := range cur.ETags {
			if !live[h] {
				cs.Deleted = append(cs.Deleted, h)
			}
		}
	}
	return cs, nil
}

// syncCalendar lists a calendar's events (series masters and single
// events) and reports the ones the archive lacks as deleted.
func (d *DAV) syncCalendar(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	u := d.s.base + "/calendars/" + url.PathEscape(graphID(c)) + "/events?$top=100"
	items, _, err := d.collect(ctx, u, false)
	if err != nil {
		return nil, err
	}
	cs := &archive.CollectionSync{Collection: c}
	live := map[string]bool{}
	for _, it := range items {
		href := c.Href + name(it.id) + ".ics"
		live[href] = true
		ser, err := d.series(ctx, it.raw)
		if err != nil {
			return nil, err
		}
		body, uid, err := eventICal(it.raw, ser)
		ni := archive.NewItem{Href: href, UID: uid, MediaType: "text/calendar", Body: body}
		if err != nil {
			ni.ParseError, ni.Body = err.Error(), it.raw
		}
		cs.Items = append(cs.Items, ni)
	}
	if cur != nil {
		for h := range cur.ETags {
			if !live[h] {
				cs.Deleted = append(cs.Deleted, h)
			}
		}
	}
	return cs, nil
}

// SeriesHorizon is how far past the run a series without an end date
// (or with a number of occurrences) is read for changed and cancelled
// occurrences: Graph lists a series' instances only within a window.
// Occurrences beyond it follow the RRULE unchanged.
const SeriesHorizon = 366 * 24 * time.Hour

// series reads a series master's instances (events/{id}/instances, which
// needs a window: from the day before the series starts to the day after
// it ends, or to SeriesHorizon past now) with only their ids, types and
// original starts, then each exception in full. nil for other events.
func (d *DAV) series(ctx context.Context, raw []byte) (*series, error) {
	var m struct {
		ID         string `json:"id"`
		Type       string `json:"type"`
		Recurrence *struct {
			Range struct {
				Type      string `json:"type"`
				StartDate string `json:"startDate"`
				EndDate   string `json:"endDate"`
			} `json:"range"`
		} `json:"recurrence"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m.Type != "seriesMaster" || m.Recurrence == nil || m.ID == "" {
		return nil, nil // eventICal reports an unreadable event
	}
	from, err := time.Parse("2006-01-02", m.Recurrence.Range.StartDate)
	if err != nil {
		return nil, nil
	}
	from = from.Add(-24 * time.Hour)
	now := time.Now
	if d.s.cfg.Now != nil {
		now = d.s.cfg.Now
	}
	to := now().UTC().Truncate(24 * time.Hour).Add(SeriesHorizon)
	if end, err := time.Parse("2006-01-02", m.Recurrence.Range.EndDate); err == nil && m.Recurrence.Range.Type == "endDate" {
		to = end.Add(48 * time.Hour)
	}
	q := url.Values{"startDateTime": {from.Format(time.RFC3339)}, "endDateTime": {to.Format(time.RFC3339)},
		"$select": {"id,type,originalStart"}, "$top": {"100"}}
	u := d.s.base + "/events/" + url.PathEscape(m.ID) + "/instances?" + q.Encode()
	insts, _, err := d.collect(ctx, u, false)
	if err != nil {
		return nil, fmt.Errorf("instances of series %s: %w", m.ID, err)
	}
	// The last day of the window is left out of the comparison: an
	// occurrence there may be cut by the window on one side only.
	ser := &series{From: from, To: to.Add(-24 * time.Hour)}
	for _, it := range insts {
		var in struct {
			Type          string `json:"type"`
			OriginalStart string `json:"originalStart"`
		}
		if err := json.Unmarshal(it.raw, &in); err != nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, in.OriginalStart)
		if err != nil {
			continue
		}
		ser.Present = append(ser.Present, t)
		if in.Type == "exception" {
			var full jsonRaw
			if err := d.s.get(ctx, d.s.base+"/events/"+url.PathEscape(it.id), &full, calendarPrefer...); err != nil {
				return nil, fmt.Errorf("changed occurrence %s: %w", it.id, err)
			}
			ser.Exceptions = append(ser.Exceptions, full)
		}
	}
	return ser, nil
}

// calendarPrefer: times in UTC and bodies as text make the iCalendar
// simple and stable; the event's own time zone is kept in X-MS-TZID.
var calendarPrefer = []string{`outlook.timezone="UTC"`, `outlook.body-content-type="text"`}

type rawItem struct {
	id      string
	removed bool
	raw     []byte
}

// collect follows a listing or delta chain and returns each entry's raw
// JSON. With delta set the chain must end in a deltaLink.
func (d *DAV) collect(ctx context.Context, u string, delta bool) ([]rawItem, string, error) {
	var out []rawItem
	next := u
	prefer := []string{fmt.Sprintf("odata.maxpagesize=%d", d.s.cfg.PageSize)}
	if d.calendar {
		prefer = append(prefer, calendarPrefer...)
	}
	for pages := 0; pages < maxPages; pages++ {
		var p struct {
			Value     []jsonRaw `json:"value"`
			NextLink  string    `json:"@odata.nextLink"`
			DeltaLink string    `json:"@odata.deltaLink"`
		}
		err := d.s.get(ctx, next, &p, prefer...)
		if httpx.IsStatus(err, http.StatusGone) {
			return nil, "", errResync
		}
		if err != nil {
			return nil, "", err
		}
		for _, v := range p.Value {
			id, removed := v.idRemoved()
			if id != "" {
				out = append(out, rawItem{id: id, removed: removed, raw: v})
			}
		}
		switch {
		case p.NextLink != "":
			next = p.NextLink
		case delta && p.DeltaLink == "":
			return nil, "", fmt.Errorf("delta page of %s has neither nextLink nor deltaLink", redactURL(next))
		default:
			return out, p.DeltaLink, nil
		}
	}
	return nil, "", fmt.Errorf("listing of %s does not end", redactURL(u))
}

// jsonRaw is one entry of a page, kept raw for the converters.
type jsonRaw []byte

func (j *jsonRaw) UnmarshalJSON(b []byte) error {
	*j = append((*j)[:0], b...)
	return nil
}

func (j jsonRaw) idRemoved() (string, bool) {
	var v struct {
		ID      string         `json:"id"`
		Removed map[string]any `json:"@removed"`
	}
	if err := json.Unmarshal(j, &v); err != nil {
		return "", false
	}
	return v.ID, v.Removed != nil
}
