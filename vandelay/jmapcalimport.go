package vandelay

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscal"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// KindJMAPCalendars is the source kind of calendars read over JMAP
// Calendars (the archive's source identity and the registry's kind).
const KindJMAPCalendars = "jmap-calendars"

// calendarsSource is the archive identity of one JMAP account's
// calendars.
func calendarsSource(c *jmap.Client, accountID string) archive.Source {
	return archive.Source{Kind: KindJMAPCalendars, Endpoint: c.SessionURL(), Account: accountID}
}

// eventVersion is what the import keeps as an event's ETag: its
// "updated" and "sequence", which a JMAP server changes with every edit,
// so that a full comparison (cannotCalculateChanges) reads only the
// events whose version differs.
func eventVersion(e map[string]any) string {
	u, _ := e["updated"].(string)
	s := "0"
	if n, ok := e["sequence"].(float64); ok {
		s = strconv.FormatFloat(n, 'f', -1, 64)
	}
	return u + "/" + s
}

type calImport struct {
	ctx  context.Context
	c    *jmap.Client
	acct string
	// per calendar id: what this run found
	syncs map[string]*archive.CollectionSync
}

func (x *calImport) add(calID string, e jscal.Event) {
	cs := x.syncs[calID]
	if cs == nil {
		return // a calendar Calendar/get did not list
	}
	id, _ := e["id"].(string)
	uid, _ := e["uid"].(string)
	it := archive.NewItem{Href: id, ETag: eventVersion(e), UID: uid, MediaType: "text/calendar"}
	body, err := jscal.ToICal(e)
	if err != nil {
		// Kept as the source's JSON, reported as unparsable.
		body, _ = json.Marshal(e)
		it.MediaType, it.ParseError = "application/jscalendar+json", err.Error()
	}
	it.Body = body
	cs.Items = append(cs.Items, it)
}

// place files one fetched event under each of its calendars and marks it
// deleted in the others (it may have moved).
func (x *calImport) place(e jscal.Event) {
	id, _ := e["id"].(string)
	in, _ := e["calendarIds"].(map[string]any)
	for calID, cs := range x.syncs {
		if in[calID] == true {
			x.add(calID, e)
		} else {
			cs.Deleted = append(cs.Deleted, id)
		}
	}
}

// ImportCalendarsJMAP syncs the calendars of a JMAP account offering
// [CapCalendars] into the archive, like [ImportDAV] does for CalDAV: one
// collection per Calendar (href: the calendar's id; name, color,
// description), one item per CalendarEvent (href: the event's id), stored
// as the iCalendar bytes vandelay/internal/jscal writes for it (an event
// that does not convert is kept as its JSON and listed in Unparsable).
//
// The CalendarEvent state is kept as every collection's sync token. A
// run with a token asks Calendar/get, CalendarEvent/changes and the
// changed events in one request, so a no-change run is one small
// request. Without a token (the first run, a killed run that left the
// calendars at different states) or when the server answers
// cannotCalculateChanges, every event's id, calendars, "updated" and
// "sequence" are listed (CalendarEvent/query in pages) and only the
// events whose version differs from the archived one are read. A source
// without the capability is [ErrNoCapability].
func ImportCalendarsJMAP(ctx context.Context, c *jmap.Client, accountID string, a *archive.Archive, opts *ImportOptions) (*DAVImportResult, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	if _, ok := c.Session().Capabilities[CapCalendars]; !ok {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, CapCalendars)
	}
	src := calendarsSource(c, accountID)
	x := &calImport{ctx: ctx, c: c, acct: accountID, syncs: map[string]*archive.CollectionSync{}}
	// The stored state: the same token on every calendar of this source.
	cols, err := a.DAVCollections(ctx, archive.CollectionCalendar, false)
	if err != nil {
		return nil, err
	}
	known := map[string]map[string]string{} // calendar id → event id → version
	since, consistent := "", true
	for _, col := range cols {
		if id, err := a.CollectionID(ctx, archive.CollectionCalendar, src, col.Href); err != nil || id != col.ID {
			continue
		}
		cur, err := a.DAVCursor(ctx, archive.CollectionCalendar, src, col.Href)
		if err != nil {
			return nil, err
		}
		known[col.Href] = cur.ETags
		if since == "" && len(known) == 1 {
			since = cur.SyncToken
		} else if cur.SyncToken != since {
			consistent = false
		}
	}
	if !consistent {
		since = ""
	}
	var cals struct {
		List []struct {
			ID          string  `json:"id"`
			Name        string  `json:"name"`
			Color       *string `json:"color"`
			Description *string `json:"description"`
		} `json:"list"`
	}
	calGet := &jmap.Call{Method: "Calendar/get", Args: map[string]any{"accountId": accountID, "ids": nil, "properties": []string{"name", "color", "description"}}, Result: &cals}
	calls := []*jmap.Call{calGet}
	var ch jmap.ChangesResponse
	var created, updated struct {
		List []jscal.Event `json:"list"`
	}
	if since != "" {
		changes := &jmap.Call{Method: "CalendarEvent/changes", Args: map[string]any{"accountId": accountID, "sinceState": since, "maxChanges": c.MaxObjectsInGet()}, Result: &ch}
		getC := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": accountID, "#ids": changes.Ref("/created")}, Result: &created}
		getU := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": accountID, "#ids": changes.Ref("/updated")}, Result: &updated}
		calls = append(calls, changes, getC, getU)
	}
	if err := c.Exec(ctx, usingCalendars, calls); err != nil {
		return nil, fmt.Errorf("read the source's calendars: %w", err)
	}
	if err := jmap.FirstError(calGet); err != nil {
		return nil, fmt.Errorf("read the source's calendars: %w", err)
	}
	res := &DAVImportResult{DryRun: opts.DryRun}
	var live []string
	for _, cal := range cals.List {
		nc := archive.NewCollection{Href: cal.ID, DisplayName: cal.Name, Components: []string{"VEVENT"}}
		if cal.Color != nil {
			nc.Color = *cal.Color
		}
		if cal.Description != nil {
			nc.Description = *cal.Description
		}
		x.syncs[cal.ID] = &archive.CollectionSync{Collection: nc}
		live = append(live, cal.ID)
	}
	full := since == ""
	state := ""
	if !full {
		if ch2 := calls[1]; ch2.Err != nil && (ch2.Err.Type == "cannotCalculateChanges" || ch2.Err.Type == jmap.ErrInvalidArguments) {
			full = true
		} else if err := jmap.FirstError(calls[1:]...); err != nil {
			return nil, fmt.Errorf("ask the source what changed: %w", err)
		}
	}
	if !full {
		for {
			for _, e := range append(created.List, updated.List...) {
				x.place(e)
			}
			for _, id := range ch.Destroyed {
				for _, cs := range x.syncs {
					cs.Deleted = append(cs.Deleted, id)
				}
			}
			state = ch.NewState
			if !ch.HasMoreChanges {
				break
			}
			created.List, updated.List = nil, nil
			ch = jmap.ChangesResponse{}
			changes := &jmap.Call{Method: "CalendarEvent/changes", Args: map[string]any{"accountId": accountID, "sinceState": state, "maxChanges": c.MaxObjectsInGet()}, Result: &ch}
			getC := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": accountID, "#ids": changes.Ref("/created")}, Result: &created}
			getU := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": accountID, "#ids": changes.Ref("/updated")}, Result: &updated}
			if err := c.Exec(ctx, usingCalendars, []*jmap.Call{changes, getC, getU}); err != nil {
				return nil, fmt.Errorf("ask the source what changed: %w", err)
			}
			if err := jmap.FirstError(changes, getC, getU); err != nil {
				return nil, fmt.Errorf("ask the source what changed: %w", err)
			}
		}
	} else if state, err = x.fullDiff(known); err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(x.syncs))
	for id := range x.syncs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cs := x.syncs[id]
		cs.SyncToken = state
		for _, it := range cs.Items {
			if it.ParseError != "" {
				res.Unparsable = append(res.Unparsable, it.Href)
			}
		}
		r, err := a.SyncDAVCollection(ctx, archive.CollectionCalendar, src, cs, opts.DryRun)
		if err != nil {
			return res, err
		}
		res.Collections++
		res.Added += r.Added
		res.Changed += r.Changed
		res.Deleted += r.Deleted
		res.Unchanged += r.Unchanged
	}
	if !opts.DryRun {
		n, err := a.RetireDAVCollections(ctx, archive.CollectionCalendar, src, live)
		if err != nil {
			return res, err
		}
		res.Retired = n
	}
	return res, nil
}

// fullDiff lists every event's id, calendars and version in pages
// (CalendarEvent/query + a CalendarEvent/get of those properties in one
// request), reads in full only the events new or of another version than
// known, and marks the archived events no longer listed deleted. It
// returns the CalendarEvent state the listing started at.
func (x *calImport) fullDiff(known map[string]map[string]string) (string, error) {
	ctx, c := x.ctx, x.c
	limit := c.MaxObjectsInGet()
	if limit <= 0 {
		limit = 500
	}
	seen := map[string]map[string]bool{}
	var need []string
	state := ""
	for pos := 0; ; {
		var q jmap.QueryResponse
		var got struct {
			State string        `json:"state"`
			List  []jscal.Event `json:"list"`
		}
		query := &jmap.Call{Method: "CalendarEvent/query", Args: map[string]any{"accountId": x.acct, "position": pos, "limit": limit, "calculateTotal": true}, Result: &q}
		get := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": x.acct, "#ids": query.Ref("/ids"), "properties": []string{"calendarIds", "updated", "sequence"}}, Result: &got}
		if err := c.Exec(ctx, usingCalendars, []*jmap.Call{query, get}); err != nil {
			return "", fmt.Errorf("list the source's events: %w", err)
		}
		if err := jmap.FirstError(query, get); err != nil {
			return "", fmt.Errorf("list the source's events: %w", err)
		}
		if state == "" {
			// The state before any event of the listing was read: a
			// change made during the listing is asked again next run.
			state = got.State
		}
		for _, e := range got.List {
			id, _ := e["id"].(string)
			in, _ := e["calendarIds"].(map[string]any)
			ver := eventVersion(e)
			fetch := false
			for calID := range in {
				if seen[calID] == nil {
					seen[calID] = map[string]bool{}
				}
				seen[calID][id] = true
				if v, ok := known[calID][id]; !ok || v != ver {
					fetch = true
				}
			}
			if fetch {
				need = append(need, id)
			}
		}
		pos += len(q.IDs)
		if len(q.IDs) == 0 || (q.Total != nil && pos >= *q.Total) {
			break
		}
	}
	for calID, cs := range x.syncs {
		for id := range known[calID] {
			if !seen[calID][id] {
				cs.Deleted = append(cs.Deleted, id)
			}
		}
	}
	evs, err := calendarEvents(ctx, c, x.acct, need)
	if err != nil {
		return "", fmt.Errorf("read the source's events: %w", err)
	}
	for _, id := range need {
		if e, ok := evs[id]; ok {
			x.place(e)
		}
	}
	return state, nil
}
