package vandelay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscontact"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// CapContacts is the JMAP capability of address books and contact cards
// (RFC 9610).
const CapContacts = "urn:ietf:params:jmap:contacts"

var contactsUsing = []string{jmap.CapCore, CapContacts}

// addressBook is the JMAP AddressBook object (RFC 9610 2), the members
// the export and import read.
type addressBook struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

// setResponse is a /set response (RFC 8620 5.3).
type setResponse struct {
	OldState     string                    `json:"oldState"`
	NewState     string                    `json:"newState"`
	Created      map[string]map[string]any `json:"created"`
	Updated      map[string]map[string]any `json:"updated"`
	Destroyed    []string                  `json:"destroyed"`
	NotCreated   map[string]*jmap.SetError `json:"notCreated"`
	NotUpdated   map[string]*jmap.SetError `json:"notUpdated"`
	NotDestroyed map[string]*jmap.SetError `json:"notDestroyed"`
}

// cardGet is a ContactCard/get response.
type cardGet struct {
	State    string            `json:"state"`
	List     []json.RawMessage `json:"list"`
	NotFound []string          `json:"notFound"`
}

// cardChanges is a ContactCard/changes response (RFC 8620 5.2).
type cardChanges struct {
	OldState       string   `json:"oldState"`
	NewState       string   `json:"newState"`
	HasMoreChanges bool     `json:"hasMoreChanges"`
	Created        []string `json:"created"`
	Updated        []string `json:"updated"`
	Destroyed      []string `json:"destroyed"`
}

// cannotCalculate reports a /changes error that asks for a full
// comparison: cannotCalculateChanges, or a state the server no longer
// knows (some servers answer invalidArguments).
func cannotCalculate(e *jmap.MethodError) bool {
	return e != nil && (e.Type == jmap.ErrCannotCalcChanges || e.Type == jmap.ErrInvalidArguments)
}

func contactsTargetName(c *jmap.Client, accountID string) string {
	return "jmap-contacts " + c.SessionURL() + " " + accountID
}

// archivedCard converts an archived vCard into the JSContact card the
// export sends (and verify expects), in address book bookID.
func archivedCard(ctx context.Context, a *archive.Archive, it archive.Item, bookID string) (jscontact.Card, error) {
	if it.ParseError != "" {
		return nil, fmt.Errorf("the source's vCard does not parse (%s); it is kept in the archive and can only move over CardDAV", it.ParseError)
	}
	body, err := a.BlobBytes(ctx, it.Hash)
	if err != nil {
		return nil, err
	}
	card, err := jscontact.FromVCard(body)
	if err != nil {
		return nil, fmt.Errorf("not convertible to JSContact: %w", err)
	}
	card["addressBookIds"] = map[string]any{bookID: true}
	return card, nil
}

// getCards reads cards by id in pages of the session's maxObjectsInGet
// (one HTTP request for as many pages as maxCallsInRequest allows).
func getCards(ctx context.Context, c *jmap.Client, accountID string, ids []string, props []string) (map[string]jscontact.Card, string, error) {
	out := map[string]jscontact.Card{}
	page := c.MaxObjectsInGet()
	if page <= 0 {
		page = 500
	}
	var groups [][]*jmap.Call
	var results []*cardGet
	for start := 0; start < len(ids) || start == 0; start += page {
		end := min(start+page, len(ids))
		args := map[string]any{"accountId": accountID, "ids": ids[start:end]}
		if props != nil {
			args["properties"] = props
		}
		r := &cardGet{}
		results = append(results, r)
		groups = append(groups, []*jmap.Call{{Method: "ContactCard/get", Args: args, Result: r}})
		if end == len(ids) {
			break
		}
	}
	if err := c.Exec(ctx, contactsUsing, groups...); err != nil {
		return nil, "", err
	}
	state := ""
	for i, g := range groups {
		if g[0].Err != nil {
			return nil, "", g[0].Err
		}
		for _, raw := range results[i].List {
			card, err := jscontact.Parse(raw)
			if err != nil {
				return nil, "", fmt.Errorf("ContactCard/get: %w", err)
			}
			if id, ok := card["id"].(string); ok {
				out[id] = card
			}
		}
		state = results[i].State
	}
	return out, state, nil
}

// cardExport is one run of [ExportContactsJMAP].
type cardExport struct {
	a    *archive.Archive
	c    *jmap.Client
	acct string
	et   *archive.ExportTarget
	opts *DAVExportOptions
	res  *DAVExportResult
	// state is the ContactCard state the run observed, stored at the end
	// so that the next run asks only for what changed since.
	state string
}

func (x *cardExport) record(ctx context.Context, m archive.Mapping) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.PutMappings(ctx, []archive.Mapping{m})
}

func (x *cardExport) unmap(ctx context.Context, kind string, id int64) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.DeleteMappings(ctx, kind, []int64{id})
}

func (x *cardExport) setState(ctx context.Context, key, v string) error {
	if x.opts.DryRun {
		return nil
	}
	return x.et.SetState(ctx, key, v)
}

func (x *cardExport) refuse(href, text string) {
	if x.res.Refused == nil {
		x.res.Refused = map[string]string{}
	}
	x.res.Refused[href] = text
}

// observe reads the target's address books and, in the same request,
// what happened to its cards since the last export (ContactCard/changes
// from the stored state): the ids destroyed since. Without a usable state
// it asks for the mapped cards by id instead.
func (x *cardExport) observe(ctx context.Context, mapped []string) (map[string]addressBook, map[string]bool, error) {
	stored, err := x.et.State(ctx, "cards-state")
	if err != nil {
		return nil, nil, err
	}
	var books struct {
		List []addressBook `json:"list"`
	}
	bget := &jmap.Call{Method: "AddressBook/get", Args: map[string]any{"accountId": x.acct, "ids": nil}, Result: &books}
	var ch cardChanges
	var st cardGet
	second := &jmap.Call{Method: "ContactCard/get", Args: map[string]any{"accountId": x.acct, "ids": []string{}}, Result: &st}
	if stored != "" {
		second = &jmap.Call{Method: "ContactCard/changes", Args: map[string]any{"accountId": x.acct, "sinceState": stored}, Result: &ch}
	}
	if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{bget, second}); err != nil {
		return nil, nil, fmt.Errorf("read the target's address books: %w", err)
	}
	if bget.Err != nil {
		return nil, nil, fmt.Errorf("read the target's address books: %w", bget.Err)
	}
	out := map[string]addressBook{}
	for _, b := range books.List {
		out[b.ID] = b
	}
	gone := map[string]bool{}
	switch {
	case stored == "" && second.Err == nil:
		x.state = st.State
		return out, gone, nil
	case stored != "" && second.Err == nil:
		for i := 0; ; i++ {
			for _, id := range ch.Destroyed {
				gone[id] = true
			}
			x.state = ch.NewState
			if !ch.HasMoreChanges || i > 10000 {
				return out, gone, nil
			}
			more := &jmap.Call{Method: "ContactCard/changes", Args: map[string]any{"accountId": x.acct, "sinceState": ch.NewState}, Result: &ch}
			ch = cardChanges{}
			if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{more}); err != nil {
				return nil, nil, fmt.Errorf("read the target's card changes: %w", err)
			}
			if more.Err != nil {
				if cannotCalculate(more.Err) {
					break
				}
				return nil, nil, fmt.Errorf("read the target's card changes: %w", more.Err)
			}
		}
	case stored == "" || !cannotCalculate(second.Err):
		return nil, nil, fmt.Errorf("read the target's cards: %w", second.Err)
	}
	// cannotCalculateChanges: which mapped cards are still there.
	have, state, err := getCards(ctx, x.c, x.acct, mapped, []string{"id"})
	if err != nil {
		return nil, nil, fmt.Errorf("list the target's cards: %w", err)
	}
	for _, id := range mapped {
		if have[id] == nil {
			gone[id] = true
		}
	}
	x.state = state
	return out, gone, nil
}

// cardOp is one card the export creates, updates or destroys.
type cardOp struct {
	it   archive.Item
	href string // the source href: how results name the card
	m    archive.Mapping
	card jscontact.Card // what is sent (create, update)
	// ours marks a card found by UID after a killed run: the export made
	// it, so it is updated without the conflict check.
	ours bool
}

// ExportContactsJMAP reconciles the archive's address books onto a JMAP
// target that offers urn:ietf:params:jmap:contacts (RFC 9610), each vCard
// converted to a JSContact card (RFC 9555, package jscontact: what is
// kept and lost is in docs/export.md). Convergent like [ExportDAV]:
//
//   - one AddressBook per source address book, named by its display name
//     (an address book of that name already there is adopted, not made);
//   - a new card is created (the intent recorded first, so that a killed
//     run finds the card by UID and doubles nothing), a changed one
//     updated, one deleted at the source destroyed — the last two only
//     when the target still holds the version the export sent (compared
//     by the SHA-256 of the normalised JSContact): a card the user edited
//     at the target is a conflict, reported and kept;
//   - an exported card deleted at the target is created again;
//   - a card the server refuses (notCreated, notUpdated) is reported with
//     the server's text in Refused and the others go on; so is a vCard
//     that does not convert.
//
// A run without changes is one request: AddressBook/get and
// ContactCard/changes since the state the last run saw. Results name
// cards by their source href. A target without the capability is
// [ErrNoCapability].
func ExportContactsJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string, opts *DAVExportOptions) (*DAVExportResult, error) {
	if opts == nil {
		opts = &DAVExportOptions{}
	}
	if _, ok := c.Session().Capabilities[CapContacts]; !ok {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, CapContacts)
	}
	et, err := a.ExportTarget(ctx, contactsTargetName(c, accountID))
	if err != nil {
		return nil, err
	}
	x := &cardExport{a: a, c: c, acct: accountID, et: et, opts: opts, res: &DAVExportResult{DryRun: opts.DryRun}}
	cmaps, err := et.Mappings(ctx, archive.KindDAVCollection)
	if err != nil {
		return nil, err
	}
	imaps, err := et.Mappings(ctx, archive.KindDAVItem)
	if err != nil {
		return nil, err
	}
	var mapped []string
	for _, m := range imaps {
		if m.RemoteID != "" {
			mapped = append(mapped, m.RemoteID)
		}
	}
	books, gone, err := x.observe(ctx, mapped)
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	for _, b := range books {
		byName[b.Name] = b.ID
	}
	cols, err := a.DAVCollections(ctx, archive.CollectionAddressBook, true)
	if err != nil {
		return nil, err
	}
	var creates, updates, destroys []*cardOp
	var collDestroys []archive.Mapping
	for _, col := range cols {
		cm, cmapped := cmaps[col.ID]
		if col.Deleted && !cmapped {
			continue
		}
		name := col.DisplayName
		if name == "" {
			name = targetName(col.Href)
		}
		recreated := false
		switch {
		case col.Deleted:
		case !cmapped || cm.RemoteID == "":
			if id, ok := byName[name]; ok {
				// Adopted (or made by a run killed before it recorded
				// the id: the intent says Created).
				cm = archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: col.ID, RemoteID: id, Created: cmapped && cm.Created}
				break
			}
			cm = archive.Mapping{Kind: archive.KindDAVCollection, ArchiveID: col.ID, Created: true}
			if err := x.record(ctx, cm); err != nil {
				return x.res, err
			}
			if cm.RemoteID, err = x.createBook(ctx, col, name); err != nil {
				return x.res, err
			}
		case books[cm.RemoteID].ID == "":
			// Exported before and deleted at the target since: made
			// again, its cards are put back below.
			if cm.RemoteID, err = x.createBook(ctx, col, name); err != nil {
				return x.res, err
			}
			recreated = true
		}
		if !col.Deleted {
			cm.ModSeq = col.ModSeq
			if err := x.record(ctx, cm); err != nil {
				return x.res, err
			}
		}
		items, err := a.DAVItems(ctx, col.ID, true)
		if err != nil {
			return x.res, err
		}
		for _, it := range items {
			m, mapped := imaps[it.ID]
			op := &cardOp{it: it, href: it.Href, m: m}
			switch {
			case it.Deleted:
				if !mapped {
					continue
				}
				if m.Created && m.RemoteID != "" && !gone[m.RemoteID] && !recreated {
					destroys = append(destroys, op)
				} else if err := x.unmap(ctx, archive.KindDAVItem, it.ID); err != nil {
					return x.res, err
				}
				continue
			case mapped && m.ModSeq == it.ModSeq && m.RemoteID != "" && !gone[m.RemoteID] && !recreated:
				x.res.Unchanged++
				continue
			}
			if op.card, err = archivedCard(ctx, a, it, cm.RemoteID); err != nil {
				x.refuse(it.Href, err.Error())
				continue
			}
			switch {
			case mapped && m.RemoteID == "":
				// A killed run's intent: the card may have been made.
				id, err := x.findByUID(ctx, op.card, cm.RemoteID)
				if err != nil {
					return x.res, err
				}
				if id == "" {
					creates = append(creates, op)
				} else {
					op.m.RemoteID, op.ours = id, true
					updates = append(updates, op)
				}
			case !mapped || gone[m.RemoteID] || recreated:
				creates = append(creates, op)
			default:
				updates = append(updates, op)
			}
		}
		if col.Deleted && cmapped {
			collDestroys = append(collDestroys, cm)
		}
	}
	if err := x.apply(ctx, creates, updates, destroys); err != nil {
		return x.res, err
	}
	for _, cm := range collDestroys {
		if err := x.destroyBook(ctx, cm); err != nil {
			return x.res, err
		}
	}
	if opts.DryRun {
		return x.res, nil
	}
	if err := saveConflicts(ctx, et, "jmap-contacts-conflicts", x.res.Conflicts); err != nil {
		return x.res, err
	}
	return x.res, et.SetState(ctx, "cards-state", x.state)
}

// createBook makes the AddressBook of a source collection.
func (x *cardExport) createBook(ctx context.Context, col archive.Collection, name string) (string, error) {
	x.res.Collections++
	if x.opts.DryRun {
		return "", nil
	}
	obj := map[string]any{"name": name}
	if col.Description != "" {
		obj["description"] = col.Description
	}
	var sr setResponse
	set := &jmap.Call{Method: "AddressBook/set", Args: map[string]any{"accountId": x.acct, "create": map[string]any{"b" + strconv.FormatInt(col.ID, 10): obj}}, Result: &sr}
	if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{set}); err != nil {
		return "", fmt.Errorf("create address book %q at the target: %w", name, err)
	}
	if set.Err != nil {
		return "", fmt.Errorf("create address book %q at the target: %w", name, set.Err)
	}
	for _, e := range sr.NotCreated {
		return "", fmt.Errorf("the target refused address book %q: %w", name, e)
	}
	for _, o := range sr.Created {
		if id, ok := o["id"].(string); ok {
			return id, nil
		}
	}
	return "", fmt.Errorf("create address book %q at the target: no id in the answer", name)
}

// destroyBook destroys an address book the export made whose source
// collection is gone; one the user still keeps cards in is refused by
// the server (RFC 9610 2.3: addressBookHasContents) and kept.
func (x *cardExport) destroyBook(ctx context.Context, cm archive.Mapping) error {
	if cm.Created && cm.RemoteID != "" && !x.opts.DryRun {
		var sr setResponse
		set := &jmap.Call{Method: "AddressBook/set", Args: map[string]any{"accountId": x.acct, "destroy": []string{cm.RemoteID}}, Result: &sr}
		if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{set}); err != nil {
			return fmt.Errorf("destroy address book %s at the target: %w", cm.RemoteID, err)
		}
		if set.Err != nil {
			return fmt.Errorf("destroy address book %s at the target: %w", cm.RemoteID, set.Err)
		}
	}
	return x.unmap(ctx, archive.KindDAVCollection, cm.ArchiveID)
}

// findByUID looks for the card a killed run may have created.
func (x *cardExport) findByUID(ctx context.Context, card jscontact.Card, bookID string) (string, error) {
	var q struct {
		IDs []string `json:"ids"`
	}
	uid, _ := card["uid"].(string)
	call := &jmap.Call{Method: "ContactCard/query", Args: map[string]any{"accountId": x.acct,
		"filter": map[string]any{"uid": uid, "inAddressBook": bookID}}, Result: &q}
	if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{call}); err != nil {
		return "", fmt.Errorf("look for card %s at the target: %w", uid, err)
	}
	if call.Err != nil {
		return "", fmt.Errorf("look for card %s at the target: %w", uid, call.Err)
	}
	if len(q.IDs) > 0 {
		return q.IDs[0], nil
	}
	return "", nil
}

// apply checks the cards to update or destroy against the version the
// export sent (one ContactCard/get), then sends the changes in
// ContactCard/set calls of at most maxObjectsInSet objects.
func (x *cardExport) apply(ctx context.Context, creates, updates, destroys []*cardOp) error {
	var ids []string
	for _, op := range append(append([]*cardOp{}, updates...), destroys...) {
		ids = append(ids, op.m.RemoteID)
	}
	var got map[string]jscontact.Card
	if len(ids) > 0 {
		var err error
		if got, _, err = getCards(ctx, x.c, x.acct, ids, nil); err != nil {
			return fmt.Errorf("read the target's cards: %w", err)
		}
	}
	type setOp struct {
		op      *cardOp
		kind    byte // 'c', 'u', 'd'
		payload any
	}
	var ops []setOp
	for _, op := range creates {
		if op.m.Kind == "" {
			op.m = archive.Mapping{Kind: archive.KindDAVItem, ArchiveID: op.it.ID, Created: true}
		}
		// The intent first: a run killed after the set finds the card
		// by its UID.
		op.m.RemoteID, op.m.ModSeq = "", 0
		if err := x.record(ctx, op.m); err != nil {
			return err
		}
		ops = append(ops, setOp{op, 'c', op.card})
	}
	for _, op := range updates {
		cur := got[op.m.RemoteID]
		if cur == nil {
			// Deleted at the target since: put back.
			op.m = archive.Mapping{Kind: archive.KindDAVItem, ArchiveID: op.it.ID, Created: true}
			if err := x.record(ctx, op.m); err != nil {
				return err
			}
			ops = append(ops, setOp{op, 'c', op.card})
			continue
		}
		if !op.ours {
			sent, err := x.et.State(ctx, "sent:"+op.m.RemoteID)
			if err != nil {
				return err
			}
			if jscontact.Hash(cur) != sent {
				x.res.Conflicts = append(x.res.Conflicts, op.href)
				continue
			}
		}
		if jscontact.Hash(cur) == jscontact.Hash(op.card) {
			x.res.Unchanged++
			if err := x.sent(ctx, op, cur); err != nil {
				return err
			}
			continue
		}
		// A full replacement as a patch (RFC 8620 5.3): every property
		// of the new card, null for the ones it no longer has.
		patch := map[string]any{}
		for k, v := range op.card {
			patch[k] = v
		}
		for k := range cur {
			if _, ok := op.card[k]; !ok && k != "id" {
				patch[k] = nil
			}
		}
		ops = append(ops, setOp{op, 'u', patch})
	}
	for _, op := range destroys {
		cur := got[op.m.RemoteID]
		if cur == nil {
			if err := x.unmap(ctx, archive.KindDAVItem, op.it.ID); err != nil {
				return err
			}
			continue
		}
		sent, err := x.et.State(ctx, "sent:"+op.m.RemoteID)
		if err != nil {
			return err
		}
		if jscontact.Hash(cur) != sent {
			x.res.Conflicts = append(x.res.Conflicts, op.href)
			if err := x.unmap(ctx, archive.KindDAVItem, op.it.ID); err != nil {
				return err
			}
			continue
		}
		ops = append(ops, setOp{op, 'd', nil})
	}
	if x.opts.DryRun {
		for _, o := range ops {
			switch o.kind {
			case 'c':
				x.res.Put++
			case 'u':
				x.res.Updated++
			case 'd':
				x.res.Deleted++
			}
		}
		return nil
	}
	page := x.c.MaxObjectsInSet()
	if page <= 0 {
		page = 500
	}
	for start := 0; start < len(ops); start += page {
		chunk := ops[start:min(start+page, len(ops))]
		create, update := map[string]any{}, map[string]any{}
		var destroy []string
		byCID := map[string]*cardOp{}
		byID := map[string]*cardOp{}
		for _, o := range chunk {
			switch o.kind {
			case 'c':
				cid := "k" + strconv.FormatInt(o.op.it.ID, 10)
				create[cid] = o.payload
				byCID[cid] = o.op
			case 'u':
				update[o.op.m.RemoteID] = o.payload
				byID[o.op.m.RemoteID] = o.op
			case 'd':
				destroy = append(destroy, o.op.m.RemoteID)
				byID[o.op.m.RemoteID] = o.op
			}
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
		var sr setResponse
		set := &jmap.Call{Method: "ContactCard/set", Args: args, Result: &sr}
		if err := x.c.Exec(ctx, contactsUsing, []*jmap.Call{set}); err != nil {
			return fmt.Errorf("write the target's cards: %w", err)
		}
		if set.Err != nil {
			return fmt.Errorf("write the target's cards: %w", set.Err)
		}
		if sr.OldState == x.state && sr.NewState != "" {
			// Only our own writes happened since the state observed:
			// the next run need not see them again.
			x.state = sr.NewState
		}
		for cid, op := range byCID {
			if e := sr.NotCreated[cid]; e != nil {
				x.refuse(op.href, e.Error())
				if err := x.unmap(ctx, archive.KindDAVItem, op.it.ID); err != nil {
					return err
				}
				continue
			}
			o, ok := sr.Created[cid]
			id, _ := o["id"].(string)
			if !ok || id == "" {
				x.refuse(op.href, "the server answered neither created nor notCreated")
				continue
			}
			x.res.Put++
			op.m.RemoteID = id
			if err := x.sent(ctx, op, merge(op.card, o)); err != nil {
				return err
			}
		}
		for id, op := range byID {
			if e := sr.NotUpdated[id]; e != nil {
				x.refuse(op.href, e.Error())
				continue
			}
			if e := sr.NotDestroyed[id]; e != nil {
				if e.Type != jmap.SetNotFound {
					x.refuse(op.href, e.Error())
					continue
				}
			}
			if op.it.Deleted {
				x.res.Deleted++
				if err := x.unmap(ctx, archive.KindDAVItem, op.it.ID); err != nil {
					return err
				}
				continue
			}
			if _, ok := sr.Updated[id]; !ok {
				x.refuse(op.href, "the server answered neither updated nor notUpdated")
				continue
			}
			x.res.Updated++
			if err := x.sent(ctx, op, merge(op.card, sr.Updated[id])); err != nil {
				return err
			}
		}
	}
	return nil
}

// sent records that the target holds card (as the server answered it)
// for op: the mapping with the item's ModSeq and the card's hash.
func (x *cardExport) sent(ctx context.Context, op *cardOp, card jscontact.Card) error {
	if err := x.setState(ctx, "sent:"+op.m.RemoteID, jscontact.Hash(card)); err != nil {
		return err
	}
	op.m.ModSeq = op.it.ModSeq
	return x.record(ctx, op.m)
}

// merge returns card with the properties a /set response says the
// server set or changed (RFC 8620 5.3).
func merge(card jscontact.Card, server map[string]any) jscontact.Card {
	out := jscontact.Card{}
	for k, v := range card {
		out[k] = v
	}
	for k, v := range server {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return jscontact.Clone(out)
}

// VerifyContactsJMAP compares every live address book of the archive with
// the JMAP target: each card present with the SHA-256 of its normalised
// JSContact (jscontact.Canonical: the server-set id and addressBookIds
// left out) equal to the conversion of the archived vCard, or to what the
// server answered when the export sent that version. Cards the export
// kept as conflicts are reported as such; vCards that do not convert are
// listed as missing with the reason in the export's Refused. Cards the
// target holds beyond the archive's are the user's own.
func VerifyContactsJMAP(ctx context.Context, a *archive.Archive, c *jmap.Client, accountID string) (*DAVVerifyReport, error) {
	v, err := loadJMAPDAVVerify(ctx, a, c, CapContacts, contactsTargetName(c, accountID), "jmap-contacts-conflicts", archive.CollectionAddressBook)
	if err != nil {
		return nil, err
	}
	et, cmaps, imaps, conflicts, cols := v.et, v.cmaps, v.imaps, v.conflicts, v.cols
	var ids []string
	for _, m := range imaps {
		if m.RemoteID != "" {
			ids = append(ids, m.RemoteID)
		}
	}
	// The mappings are a map: sorted, the request is the same on every
	// run (and a recording of it can be checked).
	slices.Sort(ids)
	got, _, err := getCards(ctx, c, accountID, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("read the target's cards: %w", err)
	}
	rep := &DAVVerifyReport{}
	for _, col := range cols {
		items, err := a.DAVItems(ctx, col.ID, false)
		if err != nil {
			return nil, err
		}
		cm := cmaps[col.ID]
		cr := DAVCollectionReport{Source: col.Href, Target: cm.RemoteID, Items: len(items)}
		for _, it := range items {
			m := imaps[it.ID]
			cur := got[m.RemoteID]
			if m.RemoteID == "" || cur == nil {
				rep.Mismatches = append(rep.Mismatches, DAVMismatch{col.Href, it.Href, "missing"})
				continue
			}
			want, err := archivedCard(ctx, a, it, cm.RemoteID)
			h := jscontact.Hash(cur)
			ok := err == nil && h == jscontact.Hash(want)
			if !ok && m.ModSeq == it.ModSeq {
				sent, err := et.State(ctx, "sent:"+m.RemoteID)
				if err != nil {
					return nil, err
				}
				ok = sent == h
			}
			switch {
			case ok:
				cr.Matched++
			case conflicts[it.Href]:
				rep.Conflicts = append(rep.Conflicts, it.Href)
			default:
				rep.Mismatches = append(rep.Mismatches, DAVMismatch{col.Href, it.Href, "content"})
			}
		}
		rep.Collections = append(rep.Collections, cr)
	}
	return rep, nil
}

// jmapDAVVerify is what a verify of contacts or calendars over JMAP reads
// from the archive before asking the target: the export's mappings of
// collections and items, the items it kept as conflicts, and the live
// collections of the kind.
type jmapDAVVerify struct {
	et           *archive.ExportTarget
	cmaps, imaps map[int64]archive.Mapping
	conflicts    map[string]bool
	cols         []archive.Collection
}

// loadJMAPDAVVerify checks that the session offers capability and loads
// the export target's records (conflictsKey: its conflicts state) and
// the archive's collections of collKind.
func loadJMAPDAVVerify(ctx context.Context, a *archive.Archive, c *jmap.Client, capability, target, conflictsKey, collKind string) (*jmapDAVVerify, error) {
	if _, ok := c.Session().Capabilities[capability]; !ok {
		return nil, fmt.Errorf("%w %s", ErrNoCapability, capability)
	}
	v := &jmapDAVVerify{}
	var err error
	if v.et, err = a.ExportTarget(ctx, target); err != nil {
		return nil, err
	}
	if v.cmaps, err = v.et.Mappings(ctx, archive.KindDAVCollection); err != nil {
		return nil, err
	}
	if v.imaps, err = v.et.Mappings(ctx, archive.KindDAVItem); err != nil {
		return nil, err
	}
	if v.conflicts, err = loadConflicts(ctx, v.et, conflictsKey); err != nil {
		return nil, err
	}
	if v.cols, err = a.DAVCollections(ctx, collKind, false); err != nil {
		return nil, err
	}
	return v, nil
}
