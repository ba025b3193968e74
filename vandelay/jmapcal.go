package vandelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscal"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// CapCalendars is the JMAP Calendars capability
// (draft-ietf-jmap-calendars): Calendar and CalendarEvent, whose value
// is a JSCalendar Event (RFC 8984).
const CapCalendars = "urn:ietf:params:jmap:calendars"

var usingCalendars = []string{jmap.CapCore, CapCalendars}

// calendarsTargetName is the export target's identity in the archive.
func calendarsTargetName(c *jmap.Client, accountID string) string {
	return "jmap-calendars " + c.SessionURL() + " " + accountID
}

// jmapCalendar is a Calendar object (draft-ietf-jmap-calendars 4) with
// the members the export sets.
type jmapCalendar struct {
	ID          string  `json:"id,omitempty"`
	Name        string  `json:"name"`
	Color       *string `json:"color"`
	Description *string `json:"description"`
}

// archivedEvent converts an archived calendar object into the event the
// export sends: the normalised JSCalendar. An object that is no event (a
// VTODO) or does not parse gives the reason it is skipped.
func archivedEvent(ctx context.Context, a *archive.Archive, it archive.Item) (jscal.Event, string, error) {
	if it.ParseError != "" {
		return nil, "not converted: the source's object does not parse: " + it.ParseError, nil
	}
	body, err := a.BlobBytes(ctx, it.Hash)
	if err != nil {
		return nil, "", err
	}
	e, err := jscal.ToEvent(body)
	var se *jscal.SkipError
	switch {
	case errors.As(err, &se):
		return nil, "skipped: " + se.Error(), nil
	case err != nil:
		return nil, "not converted: " + err.Error(), nil
	}
	return e, "", nil
}

// sentState is what the export keeps per target event (export state
// "sent:"+id): the hash of the event it sent and the hash of the event
// as the server stored it (with the members the server set).
type sentState struct {
	Want   string `json:"want"`
	Stored string `json:"stored"`
}

func loadSent(ctx context.Context, et *archive.ExportTarget, id string) (sentState, error) {
	var s sentState
	v, err := et.State(ctx, "sent:"+id)
	if err != nil || v == "" {
		return s, err
	}
	return s, json.Unmarshal([]byte(v), &s)
}

// calendarEvents reads the target's events by id, in pages of the
// session's maxObjectsInGet; missing ones are absent from the map.
func calendarEvents(ctx context.Context, c *jmap.Client, accountID string, ids []string) (map[string]jscal.Event, error) {
	out := map[string]jscal.Event{}
	page := c.MaxObjectsInGet()
	if page <= 0 {
		page = 500
	}
	for len(ids) > 0 {
		n := min(page, len(ids))
		var got struct {
			List []jscal.Event `json:"list"`
		}
		call := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": accountID, "ids": ids[:n]}, Result: &got}
		if err := c.Exec(ctx, usingCalendars, []*jmap.Call{call}); err != nil {
			return nil, err
		}
		if err := jmap.FirstError(call); err != nil {
			return nil, err
		}
		for _, e := range got.List {
			if id, _ := e["id"].(string); id != "" {
				out[id] = e
			}
		}
		ids = ids[n:]
	}
	return out, nil
}

// ExportCalendarsJMAP reconciles the archive's calendars onto a JMAP
// account offering [CapCalendars], convergent like [ExportDAV]:
//
//   - a calendar new in the archive is created (Calendar/set: name,
//     color, description), or adopted when the account has one of that
//     name; its properties are updated when they change at the source;
//   - every calendar object is converted to a JSCalendar Event
//     (vandelay/internal/jscal) and created with CalendarEvent/set; a
//     changed one is updated by a patch against what the target holds,
//     a deleted one destroyed — only when the export created it and the
//     target still holds the version the export sent;
//   - an event the user changed at the target since (its normalised
//     hash differs from what the export sent) is a conflict: reported,
//     the target's version kept; an exported event deleted at the
//     target is created again;
//   - an object that is no event (a VTODO: JMAP Tasks are another
//     capability) or does not parse, and an event the server refuses
//     (notCreated/notUpdated, with the server's text), are listed in
//     Refused and the others go on.
//
// Which target events changed is asked with CalendarEvent/changes from
// the state the last export left, so a no-change run reads no event; a
// creation's intent is recorded before the CalendarEvent/set, and a
// re-run after a kill finds an event it created by its uid
// (CalendarEvent/query), so nothing is doubled. A target without the
// capability is [ErrNoCapability].
func ExportCalendarsJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string, opts *DAVExportOptions) (*DAVExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	if _, ok := c.Session().Capabilities[CapCalendars]; !ok {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, CapCalendars)
	}
	x := &calExport{ctx: ctx, a: a, c: c, acct: accountID, opts: opts, res: &DAVExportResult{DryRun: opts.DryRun}}
	var err error
	if x.et, err = a.ExportTarget(ctx, calendarsTargetName(c, accountID)); err != nil {
		return nil, err
	}
	if err := x.run(); err != nil {
		return x.res, err
	}
	return x.res, nil
}

type calExport struct {
	ctx  context.Context
	a    *archive.Archive
	c    *jmap.Client
	acct string
	opts *DAVExportOptions
	et   *archive.ExportTarget
	res  *DAVExportResult

	// changed holds the target events changed or destroyed since the
	// last export (all mapped ones when the server cannot tell).
	changed  map[string]bool
	state    string // CalendarEvent state the changes reach
	setState string // newState of the last CalendarEvent/set
	stale    bool   // a set found another state than the changes reached
}

func (x *calExport) refuse(key, text string) {
	if x.res.Refused == nil {
		x.res.Refused = map[string]string{}
	}
	x.res.Refused[key] = text
}

func (x *calExport) record(ms ...archive.Mapping) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.PutMappings(x.ctx, ms)
}

func (x *calExport) run() error {
	ctx := x.ctx
	cmaps, err := x.et.Mappings(ctx, archive.KindDAVCollection)
	if err != nil {
		return err
	}
	imaps, err := x.et.Mappings(ctx, archive.KindDAVItem)
	if err != nil {
		return err
	}
	since, err := x.et.State(ctx, "event-state")
	if err != nil {
		return err
	}
	prevConflicts, err := loadConflicts(ctx, x.et, "jmap-calendar-conflicts")
	if err != nil {
		return err
	}
	// One request: the calendars and what changed at the target.
	var cals struct {
		List []jmapCalendar `json:"list"`
	}
	var ch jmap.ChangesResponse
	calls := []*jmap.Call{{Method: "Calendar/get", Args: map[string]any{"accountId": x.acct, "ids": nil, "properties": []string{"name", "color", "description"}}, Result: &cals}}
	if since != "" {
		calls = append(calls, &jmap.Call{Method: "CalendarEvent/changes", Args: map[string]any{"accountId": x.acct, "sinceState": since}, Result: &ch})
	} else {
		calls = append(calls, &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": x.acct, "ids": []string{}}, Result: &ch})
	}
	if err := x.c.Exec(ctx, usingCalendars, calls); err != nil {
		return fmt.Errorf("read the target's calendars: %w", err)
	}
	if err := jmap.FirstError(calls[0]); err != nil {
		return fmt.Errorf("read the target's calendars: %w", err)
	}
	x.changed = map[string]bool{}
	full := since == ""
	if since != "" {
		if calls[1].Err != nil && (calls[1].Err.Type == "cannotCalculateChanges" || calls[1].Err.Type == jmap.ErrInvalidArguments) {
			full = true
		} else if err := jmap.FirstError(calls[1]); err != nil {
			return fmt.Errorf("ask the target what changed: %w", err)
		} else {
			for _, id := range append(append(ch.Created, ch.Updated...), ch.Destroyed...) {
				x.changed[id] = true
			}
			for ch.HasMoreChanges {
				next := &jmap.Call{Method: "CalendarEvent/changes", Args: map[string]any{"accountId": x.acct, "sinceState": ch.NewState}, Result: &ch}
				ch = jmap.ChangesResponse{}
				if err := x.c.Exec(ctx, usingCalendars, []*jmap.Call{next}); err != nil {
					return fmt.Errorf("ask the target what changed: %w", err)
				}
				if err := jmap.FirstError(next); err != nil {
					return fmt.Errorf("ask the target what changed: %w", err)
				}
				for _, id := range append(append(ch.Created, ch.Updated...), ch.Destroyed...) {
					x.changed[id] = true
				}
			}
			x.state = ch.NewState
		}
	}
	if full {
		// No state, or one the server no longer knows: every mapped
		// event is read and compared.
		for _, m := range imaps {
			x.changed[m.RemoteID] = true
		}
		var st struct {
			State string `json:"state"`
		}
		g := &jmap.Call{Method: "CalendarEvent/get", Args: map[string]any{"accountId": x.acct, "ids": []string{}}, Result: &st}
		if since != "" {
			if err := x.c.Exec(ctx, usingCalendars, []*jmap.Call{g}); err != nil {
				return fmt.Errorf("read the target's event state: %w", err)
			}
			if err := jmap.FirstError(g); err != nil {
				return fmt.Errorf("read the target's event state: %w", err)
			}
		} else {
			// The state came with the first request's empty get.
			json.Unmarshal(calls[1].Raw, &st)
		}
		x.state = st.State
	}
	for h := range prevConflicts {
		x.changed[h] = true
	}
	byName := map[string]string{}
	there := map[string]jmapCalendar{}
	for _, cal := range cals.List {
		there[cal.ID] = cal
		if _, dup := byName[cal.Name]; !dup {
			byName[cal.Name] = cal.ID
		}
	}
	cols, err := x.a.DAVCollections(ctx, archive.CollectionCalendar, true)
	if err != nil {
		return err
	}
	var destroyCals []archive.Collection
	for _, col := range cols {
		cm, mapped := cmaps[col.ID]
		if col.Deleted && !mapped {
			continue
		}
		if !col.Deleted {
			if cm, err = x.calendar(col, cm, mapped, there, byName); err != nil {
				return err
			}
		}
		if err := x.events(col, cm, imaps); err != nil {
			return err
		}
		if col.Deleted {
			destroyCals = append(destroyCals, col)
		}
	}
	for _, col := range destroyCals {
		cm := cmaps[col.ID]
		if cm.Created && !x.opts.DryRun {
			// onDestroyRemoveEvents false: a calendar still holding the
			// user's own events is refused by the server and kept.
			set := &jmap.Call{Method: "Calendar/set", Args: map[string]any{"accountId": x.acct, "destroy": []string{cm.RemoteID}, "onDestroyRemoveEvents": false}}
			if err := x.c.Exec(ctx, usingCalendars, []*jmap.Call{set}); err != nil {
				return fmt.Errorf("destroy calendar %s at the target: %w", cm.RemoteID, err)
			}
			var sr jmap.SetResponse
			json.Unmarshal(set.Raw, &sr)
			if e := sr.NotDestroyed[cm.RemoteID]; e != nil {
				x.refuse(col.Href, "calendar kept at the target: "+e.Error())
			}
		}
		if !x.opts.DryRun {
			if err := x.et.DeleteMappings(ctx, archive.KindDAVCollection, []int64{col.ID}); err != nil {
				return err
			}
		}
	}
	if x.opts.DryRun {
		return nil
	}
	st := x.state
	if x.setState != "" && !x.stale {
		st = x.setState
	}
	if st != "" {
		if err := x.et.SetState(ctx, "event-state", st); err != nil {
			return err
		}
	}
	sort.Strings(x.res.Conflicts)
	return saveConflicts(ctx, x.et, "jmap-calendar-conflicts", x.res.Conflicts)
}

func optStr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// calendar creates, adopts or updates the target calendar of col and
// returns its mapping.
func (x *calExport) calendar(col archive.Collection, cm archive.Mapping, mapped bool, there map[string]jmapCalendar, byName map[string]string) (archive.Mapping, error) {
	name := col.DisplayName
	if name == "" {
		name = targetName(col.Href)
	}
	want := jmapCalendar{Name: name, Color: optStr(col.Color), Description: optStr(col.Description)}
	_, present := there[cm.RemoteID]
	switch {
	case !mapped && byName[name] != "":
		cm = archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: col.ID, RemoteID: byName[name], ModSeq: col.ModSeq}
		return cm, x.record(cm)
	case !mapped || !present:
		x.res.Collections++
		if x.opts.DryRun {
			return archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: col.ID, RemoteID: "new:" + col.Href, Created: true}, nil
		}
		var sr jmap.SetResponse
		set := &jmap.Call{Method: "Calendar/set", Args: map[string]any{"accountId": x.acct, "create": map[string]any{"cal": want}}, Result: &sr}
		if err := x.c.Exec(x.ctx, usingCalendars, []*jmap.Call{set}); err != nil {
			return cm, fmt.Errorf("create calendar %q at the target: %w", name, err)
		}
		if err := jmap.FirstError(set); err != nil {
			return cm, fmt.Errorf("create calendar %q at the target: %w", name, err)
		}
		if e := sr.NotCreated["cal"]; e != nil {
			return cm, fmt.Errorf("the target refused calendar %q: %s", name, e.Error())
		}
		cm = archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: col.ID, RemoteID: sr.CreatedID("cal"), Created: true, ModSeq: col.ModSeq}
		return cm, x.record(cm)
	case cm.ModSeq < col.ModSeq:
		cur := there[cm.RemoteID]
		if canon(cur.Name) != canon(want.Name) || canon(cur.Color) != canon(want.Color) || canon(cur.Description) != canon(want.Description) {
			x.res.Updated++
			if !x.opts.DryRun {
				set := &jmap.Call{Method: "Calendar/set", Args: map[string]any{"accountId": x.acct, "update": map[string]any{cm.RemoteID: want}}}
				if err := x.c.Exec(x.ctx, usingCalendars, []*jmap.Call{set}); err != nil {
					return cm, fmt.Errorf("update calendar %q at the target: %w", name, err)
				}
				if err := jmap.FirstError(set); err != nil {
					return cm, fmt.Errorf("update calendar %q at the target: %w", name, err)
				}
			}
		}
		cm.ModSeq = col.ModSeq
		return cm, x.record(cm)
	}
	return cm, nil
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// pending is one event of a CalendarEvent/set.
type pending struct {
	it   archive.Item
	m    archive.Mapping
	want jscal.Event
}

// events reconciles the items of one calendar.
func (x *calExport) events(col archive.Collection, cm archive.Mapping, imaps map[int64]archive.Mapping) error {
	ctx := x.ctx
	items, err := x.a.DAVItems(ctx, col.ID, true)
	if err != nil {
		return err
	}
	// What the target holds of the events that may have changed there,
	// and of those whose archive version changed (for the patch).
	var need []string
	for _, it := range items {
		m, ok := imaps[it.ID]
		if ok && m.RemoteID != "" && (x.changed[m.RemoteID] || m.ModSeq < it.ModSeq || it.Deleted || m.ModSeq == 0) {
			need = append(need, m.RemoteID)
		}
	}
	cur := map[string]jscal.Event{}
	if len(need) > 0 {
		if cur, err = calendarEvents(ctx, x.c, x.acct, need); err != nil {
			return fmt.Errorf("read events of %s at the target: %w", col.Href, err)
		}
	}
	var creates, updates []pending
	var destroys []pending
	for _, it := range items {
		m, mapped := imaps[it.ID]
		if it.Deleted {
			if !mapped {
				continue
			}
			e, present := cur[m.RemoteID]
			if m.Created && present && m.RemoteID != "" {
				sent, err := loadSent(ctx, x.et, m.RemoteID)
				if err != nil {
					return err
				}
				if h := jscal.Hash(e); h != sent.Stored && h != sent.Want {
					x.res.Conflicts = append(x.res.Conflicts, m.RemoteID)
					if !x.opts.DryRun {
						if err := x.et.DeleteMappings(ctx, archive.KindDAVItem, []int64{it.ID}); err != nil {
							return err
						}
					}
					continue
				}
				destroys = append(destroys, pending{it: it, m: m})
				continue
			}
			if !x.opts.DryRun {
				if err := x.et.DeleteMappings(ctx, archive.KindDAVItem, []int64{it.ID}); err != nil {
					return err
				}
			}
			continue
		}
		want, why, err := archivedEvent(ctx, x.a, it)
		if err != nil {
			return err
		}
		if why != "" {
			x.refuse(it.Href, why)
			continue
		}
		want["calendarIds"] = map[string]any{cm.RemoteID: true}
		if mapped && m.RemoteID == "" {
			// A killed run's intent: find what it may have created.
			id, err := x.findByUID(jsonStr(want, "uid"))
			if err != nil {
				return err
			}
			if id == "" {
				mapped = false
			} else {
				m.RemoteID = id
				if cur[id] == nil {
					got, err := calendarEvents(ctx, x.c, x.acct, []string{id})
					if err != nil {
						return err
					}
					cur[id] = got[id]
				}
				m.ModSeq = 0
			}
		}
		e, present := cur[m.RemoteID]
		switch {
		case !mapped:
			creates = append(creates, pending{it: it, want: want, m: archive.Mapping{Kind: archive.KindDAVItem, ArchiveID: it.ID, Created: true}})
		case m.ModSeq == 0 && present:
			// Created by a killed run: adopt it when it is what would be
			// sent, else update it.
			if jscal.Hash(e) == jscal.Hash(want) {
				x.res.Unchanged++
				if err := x.setSent(m.RemoteID, want, e); err != nil {
					return err
				}
				m.ModSeq = it.ModSeq
				if err := x.record(m); err != nil {
					return err
				}
				continue
			}
			updates = append(updates, pending{it: it, m: m, want: want})
		case !present && (x.changed[m.RemoteID] || m.ModSeq < it.ModSeq || m.ModSeq == 0):
			// Deleted at the target since: put it back.
			creates = append(creates, pending{it: it, want: want, m: m})
		case !present:
			x.res.Unchanged++
		default:
			sent, err := loadSent(ctx, x.et, m.RemoteID)
			if err != nil {
				return err
			}
			h := jscal.Hash(e)
			if h != sent.Stored && h != sent.Want {
				x.res.Conflicts = append(x.res.Conflicts, m.RemoteID)
				continue
			}
			if m.ModSeq < it.ModSeq && jscal.Hash(want) != sent.Want {
				updates = append(updates, pending{it: it, m: m, want: want})
				continue
			}
			x.res.Unchanged++
			if m.ModSeq < it.ModSeq {
				m.ModSeq = it.ModSeq
				if err := x.record(m); err != nil {
					return err
				}
			}
		}
	}
	return x.set(creates, updates, destroys, cur)
}

func jsonStr(e jscal.Event, k string) string {
	s, _ := e[k].(string)
	return s
}

// findByUID returns the id of the target event with uid, "" when none.
func (x *calExport) findByUID(uid string) (string, error) {
	var q jmap.QueryResponse
	call := &jmap.Call{Method: "CalendarEvent/query", Args: map[string]any{"accountId": x.acct, "filter": map[string]any{"uid": uid}}, Result: &q}
	if err := x.c.Exec(x.ctx, usingCalendars, []*jmap.Call{call}); err != nil {
		return "", fmt.Errorf("look for event %s at the target: %w", uid, err)
	}
	if err := jmap.FirstError(call); err != nil {
		return "", fmt.Errorf("look for event %s at the target: %w", uid, err)
	}
	if len(q.IDs) == 0 {
		return "", nil
	}
	return q.IDs[0], nil
}

// setSent records what the export sent for target event id and what the
// server stored (the sent event with the members the server set).
func (x *calExport) setSent(id string, want, stored jscal.Event) error {
	if x.opts.DryRun {
		return nil
	}
	b, _ := json.Marshal(sentState{Want: jscal.Hash(want), Stored: jscal.Hash(stored)})
	return x.et.SetState(x.ctx, "sent:"+id, string(b))
}

// set sends the creations, updates and destructions of one calendar in
// CalendarEvent/set calls of at most maxObjectsInSet objects.
func (x *calExport) set(creates, updates, destroys []pending, cur map[string]jscal.Event) error {
	ctx := x.ctx
	if x.opts.DryRun {
		x.res.Put += len(creates)
		x.res.Updated += len(updates)
		x.res.Deleted += len(destroys)
		return nil
	}
	max := x.c.MaxObjectsInSet()
	if max <= 0 {
		max = 500
	}
	for len(creates)+len(updates)+len(destroys) > 0 {
		n := 0
		create := map[string]any{}
		update := map[string]any{}
		var destroy []string
		byCID := map[string]pending{}
		byID := map[string]pending{}
		var intents []archive.Mapping
		for len(creates) > 0 && n < max {
			p := creates[0]
			creates = creates[1:]
			// Creation ids count within the call (items come in href
			// order), so a request is the same for the same archive.
			cid := fmt.Sprintf("e%d", len(create)+1)
			create[cid] = p.want
			byCID[cid] = p
			// The intent first (no id, ModSeq 0): a run killed after the
			// set finds the event by its uid.
			if p.m.RemoteID == "" {
				intents = append(intents, p.m)
			}
			n++
		}
		for len(updates) > 0 && n < max {
			p := updates[0]
			updates = updates[1:]
			patch := jscal.Diff(jscal.Normalize(cur[p.m.RemoteID]), jscal.Normalize(p.want))
			patch["calendarIds"] = p.want["calendarIds"]
			update[p.m.RemoteID] = patch
			byID[p.m.RemoteID] = p
			n++
		}
		for len(destroys) > 0 && n < max {
			p := destroys[0]
			destroys = destroys[1:]
			destroy = append(destroy, p.m.RemoteID)
			byID[p.m.RemoteID] = p
			n++
		}
		if err := x.record(intents...); err != nil {
			return err
		}
		args := map[string]any{"accountId": x.acct}
		if len(create) > 0 {
			args["create"] = create
		}
		if len(update) > 0 {
			args["update"] = update
		}
		if len(destroy) > 0 {
			args["destroy"] = destroy
		}
		var sr jmap.SetResponse
		call := &jmap.Call{Method: "CalendarEvent/set", Args: args, Result: &sr}
		if err := x.c.Exec(ctx, usingCalendars, []*jmap.Call{call}); err != nil {
			return fmt.Errorf("write events at the target: %w", err)
		}
		if err := jmap.FirstError(call); err != nil {
			return fmt.Errorf("write events at the target: %w", err)
		}
		if x.state != "" && sr.OldState != x.state {
			x.stale = true // changed by someone else meanwhile
		}
		x.state, x.setState = sr.NewState, sr.NewState
		for _, cid := range sortedKeys(byCID) {
			p := byCID[cid]
			if e := sr.NotCreated[cid]; e != nil || sr.Created[cid] == nil {
				text := "no answer"
				if e != nil {
					text = e.Error()
				}
				x.refuse(p.it.Href, text)
				if p.m.RemoteID == "" {
					if err := x.et.DeleteMappings(ctx, archive.KindDAVItem, []int64{p.it.ID}); err != nil {
						return err
					}
				}
				continue
			}
			var got map[string]any
			json.Unmarshal(sr.Created[cid], &got)
			id, _ := got["id"].(string)
			stored := applyMembers(p.want, got)
			if err := x.setSent(id, p.want, stored); err != nil {
				return err
			}
			p.m.RemoteID, p.m.ModSeq = id, p.it.ModSeq
			if err := x.record(p.m); err != nil {
				return err
			}
			x.res.Put++
		}
		for _, id := range sortedKeys(byID) {
			p := byID[id]
			if p.it.Deleted {
				if e := sr.NotDestroyed[id]; e != nil {
					x.refuse(p.it.Href, e.Error())
					continue
				}
				x.res.Deleted++
				if err := x.et.DeleteMappings(ctx, archive.KindDAVItem, []int64{p.it.ID}); err != nil {
					return err
				}
				continue
			}
			if e := sr.NotUpdated[id]; e != nil {
				x.refuse(p.it.Href, e.Error())
				continue
			}
			var got map[string]any
			if raw := sr.Updated[id]; len(raw) > 0 {
				json.Unmarshal(raw, &got)
			}
			if err := x.setSent(id, p.want, applyMembers(p.want, got)); err != nil {
				return err
			}
			p.m.ModSeq = p.it.ModSeq
			if err := x.record(p.m); err != nil {
				return err
			}
			x.res.Updated++
		}
	}
	return nil
}

// applyMembers returns e with the members a /set response says the
// server set or changed.
func applyMembers(e jscal.Event, got map[string]any) jscal.Event {
	out := jscal.Event{}
	for k, v := range e {
		out[k] = v
	}
	for k, v := range got {
		out[k] = v
	}
	return out
}

// VerifyCalendarsJMAP compares every live calendar of the archive with
// the JMAP target, like [VerifyDAV]: each event present with the same
// content hash of its normalised JSCalendar (jscal.Hash: JMAP's server
// members, nulls and RFC 8984 defaults left out), or with the hash of
// what the server stored when the export sent that version (the members
// the server sets on store). Objects that are no event (VTODO) or did
// not parse are not counted (the export lists them as refused); events
// the last export kept as conflicts are Conflicts, not mismatches.
func VerifyCalendarsJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string) (*DAVVerifyReport, error) {
	v, err := loadJMAPDAVVerify(ctx, a, c, CapCalendars, calendarsTargetName(c, accountID), "jmap-calendar-conflicts", archive.CollectionCalendar)
	if err != nil {
		return nil, err
	}
	et, cmaps, imaps, conflicts, cols := v.et, v.cmaps, v.imaps, v.conflicts, v.cols
	rep := &DAVVerifyReport{}
	for _, col := range cols {
		items, err := a.DAVItems(ctx, col.ID, false)
		if err != nil {
			return nil, err
		}
		cr := DAVCollectionReport{Source: col.Href, Target: cmaps[col.ID].RemoteID}
		var ids []string
		for _, it := range items {
			if m, ok := imaps[it.ID]; ok && m.RemoteID != "" {
				ids = append(ids, m.RemoteID)
			}
		}
		got, err := calendarEvents(ctx, c, accountID, ids)
		if err != nil {
			return nil, fmt.Errorf("read events of %s at the target: %w", col.Href, err)
		}
		for _, it := range items {
			want, why, err := archivedEvent(ctx, a, it)
			if err != nil {
				return nil, err
			}
			if why != "" {
				continue
			}
			cr.Items++
			m := imaps[it.ID]
			e, ok := got[m.RemoteID]
			if !ok {
				rep.Mismatches = append(rep.Mismatches, DAVMismatch{col.Href, it.Href, "missing"})
				continue
			}
			h := jscal.Hash(e)
			sent, err := loadSent(ctx, et, m.RemoteID)
			if err != nil {
				return nil, err
			}
			if h != jscal.Hash(want) && !(h == sent.Stored && sent.Want == jscal.Hash(want)) {
				if conflicts[m.RemoteID] {
					rep.Conflicts = append(rep.Conflicts, m.RemoteID)
				} else {
					rep.Mismatches = append(rep.Mismatches, DAVMismatch{col.Href, m.RemoteID, "content"})
				}
				continue
			}
			cr.Matched++
		}
		rep.Collections = append(rep.Collections, cr)
	}
	return rep, nil
}
