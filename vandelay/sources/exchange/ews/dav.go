package ews

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/icalsafe"
)

// DAV reads a mailbox's calendars or contacts over EWS and hands them to
// the archive like a CalDAV or CardDAV source (vandelay.DAVSource). EWS
// serves a calendar item's MimeContent as iCalendar and a contact's as
// vCard, so the items are the bytes Exchange itself produces, kept
// exactly; the folder's SyncState is the collection's sync token (an
// invalid one reads the folder again and what the archive holds beyond it
// is deleted).
type DAV struct {
	s        *Source
	calendar bool
}

var _ vandelay.DAVSource = (*DAV)(nil)

// NewCalendars returns the mailbox's calendar folders as a DAV source.
func NewCalendars(opts *Options) (*DAV, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &DAV{s: s, calendar: true}, nil
}

// NewContacts returns the mailbox's contact folders as a DAV source.
func NewContacts(opts *Options) (*DAV, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	return &DAV{s: s}, nil
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

func name(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:12])
}

func (d *DAV) kindDir() string {
	if d.calendar {
		return "calendars"
	}
	return "contacts"
}

// Collections implements vandelay.DAVSource: the CalendarFolder or
// ContactsFolder entries of the hierarchy. The folder id is kept in the
// description (EWS folders have none of their own).
func (d *DAV) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	want := "ContactsFolder"
	if d.calendar {
		want = "CalendarFolder"
	}
	fs, err := d.s.folders(ctx, func(o *object) bool { return o.XMLName.Local == want })
	if err != nil {
		return nil, err
	}
	var out []archive.NewCollection
	for _, f := range fs {
		c := archive.NewCollection{Href: "/ews/" + d.kindDir() + "/" + name(f.ID) + "/", DisplayName: f.Name, Description: f.ID}
		if d.calendar {
			c.Components = []string{"VEVENT"}
		}
		out = append(out, c)
	}
	return out, nil
}

// Sync implements vandelay.DAVSource.
func (d *DAV) Sync(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	none := func(string) string { return "" }
	state := ""
	if cur != nil {
		state = cur.SyncToken
	}
	full := state == ""
	items, next, err := d.s.syncFolderItems(ctx, c.Description, state, nil, none)
	if errors.Is(err, errResync) && !full {
		full = true
		items, next, err = d.s.syncFolderItems(ctx, c.Description, "", nil, none)
	}
	if err != nil {
		return nil, err
	}
	ext := ".vcf"
	if d.calendar {
		ext = ".ics"
	}
	href := func(id string) string { return c.Href + name(id) + ext }
	cs := &archive.CollectionSync{Collection: c, SyncToken: next}
	var fetch []string
	live := map[string]bool{}
	for _, it := range items {
		if it.Removed {
			cs.Deleted = append(cs.Deleted, href(it.Key))
			continue
		}
		fetch = append(fetch, it.Key)
	}
	err = d.s.fetch(ctx, fetch, func(id string, body []byte) error {
		live[href(id)] = true
		cs.Items = append(cs.Items, d.item(href(id), body))
		return nil
	})
	if err != nil {
		return nil, err
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

// item keeps the served bytes and reads the UID from them.
func (d *DAV) item(href string, body []byte) archive.NewItem {
	it := archive.NewItem{Href: href, Body: body}
	if d.calendar {
		it.MediaType = "text/calendar"
		cal, err := icalsafe.Decode(body)
		if err != nil {
			it.ParseError = err.Error()
			return it
		}
		for _, ev := range cal.Children {
			if p := ev.Props.Get(ical.PropUID); p != nil {
				it.UID = p.Value
				break
			}
		}
		return it
	}
	it.MediaType = "text/vcard"
	card, err := vcard.NewDecoder(strings.NewReader(string(body))).Decode()
	if err != nil {
		it.ParseError = err.Error()
		return it
	}
	it.UID = card.Value(vcard.FieldUID)
	return it
}
