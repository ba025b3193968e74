package vandelay

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscontact"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// ContactsJMAPSource reads a JMAP account's address books and contact
// cards (RFC 9610) as a [DAVSource]: each AddressBook is a collection
// (href: its id), each ContactCard an item (href: "<id>.vcf") whose bytes
// are the card converted to vCard 4.0 by package jscontact (RFC 9555;
// docs/import.md says what is kept). The cursor is the account's
// ContactCard state, kept with every collection: an incremental run asks
// ContactCard/changes once for all of them and reads only the cards
// created or updated since; cannotCalculateChanges (or a state the server
// no longer knows) falls back to listing every card's id, address books
// and "updated" time, and re-reads only cards whose "updated" differs
// from the archived one (a card without "updated" is re-read).
type ContactsJMAPSource struct {
	desc archive.Source
	open func(ctx context.Context) (*jmap.Client, string, error)

	c    *jmap.Client
	acct string
	hint string
	// deltas caches what changed since a state ("" for the full
	// listing), computed once per run for all collections.
	deltas map[string]*cardDelta
	stats  ContactsJMAPStats
}

// ContactsJMAPStats says how the last import read the source.
type ContactsJMAPStats struct {
	// Full reports that every card was listed (no state, or the server
	// could not calculate the changes).
	Full bool
	// Read counts the cards read whole.
	Read int
}

var _ DAVSource = (*ContactsJMAPSource)(nil)

// NewContactsJMAPSource returns the source of c's account accountID.
func NewContactsJMAPSource(c *jmap.Client, accountID string) *ContactsJMAPSource {
	return &ContactsJMAPSource{
		desc: archive.Source{Kind: "jmap-contacts", Endpoint: c.SessionURL(), Account: accountID},
		open: func(context.Context) (*jmap.Client, string, error) { return c, accountID, nil },
	}
}

// OpenContactsJMAPSource returns a source that connects on first use
// with open (the sources registry's "jmap-contacts" kind); desc is its
// identity in the archive.
func OpenContactsJMAPSource(desc archive.Source, open func(ctx context.Context) (*jmap.Client, string, error)) *ContactsJMAPSource {
	desc.Kind = "jmap-contacts"
	return &ContactsJMAPSource{desc: desc, open: open}
}

// Describe implements DAVSource.
func (s *ContactsJMAPSource) Describe() archive.Source { return s.desc }

// Kind implements DAVSource.
func (s *ContactsJMAPSource) Kind() string { return archive.CollectionAddressBook }

// Close implements DAVSource.
func (s *ContactsJMAPSource) Close() error { return nil }

// Stats returns how the last run read the source.
func (s *ContactsJMAPSource) Stats() ContactsJMAPStats { return s.stats }

// HintCursor passes a state stored in the archive before Collections, so
// that the address books and the changes since are asked in one request
// (a run without changes is that one request).
func (s *ContactsJMAPSource) HintCursor(state string) { s.hint = state }

// cardDelta is what changed in the account since a state.
type cardDelta struct {
	full  bool
	state string
	// cards are the cards read whole, by id.
	cards map[string]jscontact.Card
	// destroyed are the ids destroyed since (delta).
	destroyed []string
	// listed is every card's address books and "updated" (full).
	listed map[string]cardListing
}

type cardListing struct {
	books   map[string]bool
	updated string
}

func (s *ContactsJMAPSource) connect(ctx context.Context) error {
	if s.c != nil {
		return nil
	}
	c, acct, err := s.open(ctx)
	if err != nil {
		return err
	}
	if _, ok := c.Session().Capabilities[CapContacts]; !ok {
		return fmt.Errorf("%w: the JMAP session offers no contacts (%s): nothing to import", ErrUsage, CapContacts)
	}
	s.c, s.acct, s.deltas = c, acct, map[string]*cardDelta{}
	return nil
}

// Collections implements DAVSource: AddressBook/get (with
// ContactCard/changes since the hinted state in the same request).
func (s *ContactsJMAPSource) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	var books struct {
		List []addressBook `json:"list"`
	}
	bget := &jmap.Call{Method: "AddressBook/get", Args: map[string]any{"accountId": s.acct, "ids": nil}, Result: &books}
	calls := []*jmap.Call{bget}
	var ch cardChanges
	if s.hint != "" && s.deltas[s.hint] == nil {
		calls = append(calls, &jmap.Call{Method: "ContactCard/changes", Args: map[string]any{"accountId": s.acct, "sinceState": s.hint}, Result: &ch})
	}
	if err := s.c.Exec(ctx, contactsUsing, calls); err != nil {
		return nil, fmt.Errorf("%w: read the address books: %w", ErrConnect, err)
	}
	if bget.Err != nil {
		return nil, fmt.Errorf("%w: read the address books: %w", ErrConnect, bget.Err)
	}
	if len(calls) == 2 {
		if _, err := s.delta(ctx, s.hint, &ch, calls[1].Err); err != nil {
			return nil, err
		}
	}
	var out []archive.NewCollection
	for _, b := range books.List {
		nc := archive.NewCollection{Href: b.ID, DisplayName: b.Name}
		if b.Description != nil {
			nc.Description = *b.Description
		}
		out = append(out, nc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Href < out[j].Href })
	return out, nil
}

// delta returns what changed since state, computing it once: from the
// ContactCard/changes answer first (nil: asked here) or, when the server
// cannot calculate the changes, from the full listing.
func (s *ContactsJMAPSource) delta(ctx context.Context, since string, first *cardChanges, firstErr *jmap.MethodError) (*cardDelta, error) {
	if d := s.deltas[since]; d != nil {
		return d, nil
	}
	d := &cardDelta{cards: map[string]jscontact.Card{}}
	orig := since
	if since == "" {
		return s.full(ctx, orig, d)
	}
	changed := map[string]bool{}
	ch, merr := first, firstErr
	for i := 0; i < 100000; i++ {
		if ch == nil {
			ch = &cardChanges{}
			call := &jmap.Call{Method: "ContactCard/changes", Args: map[string]any{"accountId": s.acct, "sinceState": since}, Result: ch}
			if err := s.c.Exec(ctx, contactsUsing, []*jmap.Call{call}); err != nil {
				return nil, fmt.Errorf("%w: read the card changes: %w", ErrConnect, err)
			}
			merr = call.Err
		}
		if cannotCalculate(merr) {
			return s.full(ctx, orig, &cardDelta{cards: map[string]jscontact.Card{}})
		}
		if merr != nil {
			return nil, fmt.Errorf("%w: read the card changes: %w", ErrConnect, merr)
		}
		for _, id := range append(ch.Created, ch.Updated...) {
			changed[id] = true
		}
		d.destroyed = append(d.destroyed, ch.Destroyed...)
		d.state = ch.NewState
		if !ch.HasMoreChanges {
			break
		}
		since, ch = ch.NewState, nil
	}
	var ids []string
	for id := range changed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if err := s.read(ctx, d, ids); err != nil {
		return nil, err
	}
	s.deltas[orig] = d
	return d, nil
}

// read reads cards whole into d.
func (s *ContactsJMAPSource) read(ctx context.Context, d *cardDelta, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	cards, _, err := getCards(ctx, s.c, s.acct, ids, nil)
	if err != nil {
		return fmt.Errorf("%w: read cards: %w", ErrConnect, err)
	}
	for id, c := range cards {
		d.cards[id] = c
	}
	s.stats.Read += len(cards)
	return nil
}

// full lists every card's id, address books and "updated" with
// ContactCard/query and ContactCard/get in pages.
func (s *ContactsJMAPSource) full(ctx context.Context, since string, d *cardDelta) (*cardDelta, error) {
	s.stats.Full = true
	d.full, d.listed = true, map[string]cardListing{}
	page := s.c.MaxObjectsInGet()
	if page <= 0 || page > 1000 {
		page = 1000
	}
	for pos := 0; pos < 10000000; pos += page {
		var q struct {
			QueryState string   `json:"queryState"`
			IDs        []string `json:"ids"`
			Total      *int     `json:"total"`
		}
		query := &jmap.Call{Method: "ContactCard/query", Args: map[string]any{"accountId": s.acct, "position": pos, "limit": page, "calculateTotal": true}, Result: &q}
		var g cardGet
		get := &jmap.Call{Method: "ContactCard/get", Args: map[string]any{"accountId": s.acct, "#ids": query.Ref("/ids"),
			"properties": []string{"id", "addressBookIds", "updated"}}, Result: &g}
		if err := s.c.Exec(ctx, contactsUsing, []*jmap.Call{query, get}); err != nil {
			return nil, fmt.Errorf("%w: list the cards: %w", ErrConnect, err)
		}
		if err := jmap.FirstError(query, get); err != nil {
			return nil, fmt.Errorf("%w: list the cards: %w", ErrConnect, err)
		}
		if pos == 0 {
			d.state = g.State
		}
		for _, raw := range g.List {
			var l struct {
				ID             string          `json:"id"`
				AddressBookIDs map[string]bool `json:"addressBookIds"`
				Updated        string          `json:"updated"`
			}
			if err := json.Unmarshal(raw, &l); err != nil || l.ID == "" {
				return nil, fmt.Errorf("%w: list the cards: a card without id", ErrConnect)
			}
			d.listed[l.ID] = cardListing{books: l.AddressBookIDs, updated: l.Updated}
		}
		if len(q.IDs) < page || q.Total != nil && pos+page >= *q.Total {
			break
		}
	}
	s.deltas[since] = d
	return d, nil
}

func cardHref(id string) string { return id + ".vcf" }

// item converts a card into the archive's item: vCard 4.0 bytes.
func cardItem(id string, card jscontact.Card) archive.NewItem {
	c := jscontact.Card{}
	for k, v := range card {
		c[k] = v
	}
	for _, k := range jscontact.ServerSet {
		delete(c, k)
	}
	updated, _ := card["updated"].(string)
	uid, _ := card["uid"].(string)
	body, err := jscontact.ToVCard(c)
	if err != nil {
		// Kept as the JSON the server sent, reported as unparsable.
		return archive.NewItem{Href: cardHref(id), ETag: updated, UID: uid, MediaType: "application/jscontact+json",
			Body: jscontact.Canonical(card), ParseError: err.Error()}
	}
	return archive.NewItem{Href: cardHref(id), ETag: updated, UID: uid, MediaType: "text/vcard", Body: body}
}

// Sync implements DAVSource: the collection's cards changed since the
// cursor's state.
func (s *ContactsJMAPSource) Sync(ctx context.Context, col archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	d, err := s.delta(ctx, cur.SyncToken, nil, nil)
	if err != nil {
		return nil, err
	}
	cs := &archive.CollectionSync{Collection: col, SyncToken: d.state}
	if !d.full {
		for _, id := range d.destroyed {
			cs.Deleted = append(cs.Deleted, cardHref(id))
		}
		for _, id := range sortedIDs(d.cards) {
			card := d.cards[id]
			books, _ := card["addressBookIds"].(map[string]any)
			if books[col.Href] == true {
				cs.Items = append(cs.Items, cardItem(id, card))
			} else {
				// Moved out of this address book (or never in it).
				cs.Deleted = append(cs.Deleted, cardHref(id))
			}
		}
		return cs, nil
	}
	var need []string
	listed := map[string]bool{}
	for id, l := range d.listed {
		if !l.books[col.Href] {
			continue
		}
		listed[cardHref(id)] = true
		if e, ok := cur.ETags[cardHref(id)]; ok && e != "" && e == l.updated {
			continue // unchanged: not read again
		}
		if d.cards[id] == nil {
			need = append(need, id)
		}
	}
	sort.Strings(need)
	if err := s.read(ctx, d, need); err != nil {
		return nil, err
	}
	for id, l := range d.listed {
		if !l.books[col.Href] || d.cards[id] == nil {
			continue
		}
		if e, ok := cur.ETags[cardHref(id)]; ok && e != "" && e == l.updated {
			continue
		}
		cs.Items = append(cs.Items, cardItem(id, d.cards[id]))
	}
	sort.Slice(cs.Items, func(i, j int) bool { return cs.Items[i].Href < cs.Items[j].Href })
	for href := range cur.ETags {
		if !listed[href] {
			cs.Deleted = append(cs.Deleted, href)
		}
	}
	sort.Strings(cs.Deleted)
	return cs, nil
}

func sortedIDs(m map[string]jscontact.Card) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// davCursorHinter is a DAVSource that can ask for the changes since a
// stored cursor together with its collections.
type davCursorHinter interface {
	HintCursor(token string)
}

// hintCursor passes the first sync token the archive holds for src's
// collections to a source that takes one.
func hintCursor(ctx context.Context, a *archive.Archive, src DAVSource) {
	h, ok := src.(davCursorHinter)
	if !ok {
		return
	}
	cols, err := a.DAVCollections(ctx, src.Kind(), false)
	if err != nil {
		return
	}
	for _, c := range cols {
		cur, err := a.DAVCursor(ctx, src.Kind(), src.Describe(), c.Href)
		if err == nil && cur.SyncToken != "" {
			h.HintCursor(cur.SyncToken)
			return
		}
	}
}

// ImportContactsJMAP imports the address books and cards of a JMAP
// account offering urn:ietf:params:jmap:contacts into the archive, each
// card stored as the vCard 4.0 its JSContact converts to (see
// [ContactsJMAPSource]); it is [ImportDAV] with that source.
func ImportContactsJMAP(ctx context.Context, c *jmap.Client, accountID string, a *archive.Archive, opts *ImportOptions) (*DAVImportResult, error) {
	return ImportDAV(ctx, NewContactsJMAPSource(c, accountID), a, opts)
}
