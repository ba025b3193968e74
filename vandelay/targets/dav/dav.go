// Package dav exports address books and calendars onto a target's own
// CardDAV or CalDAV endpoints (Cyrus 3.6, whose JMAP offers contacts and
// calendars only in its cyrusimap.org namespace), which take the original
// bytes. See vandelay.ExportDAV for the reconciliation.
package dav

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/davclient"
	srcdav "github.com/mailmig/mailmig/vandelay/sources/dav"
)

// SchedulingHeader is sent as "Scheduling-Enabled: F" with every PUT
// and DELETE of a calendar item. A migration copies events whose
// invitations and replies were sent long ago: it must never invite,
// reply or cancel. Cyrus treats a PUT of an event whose ORGANIZER or an
// ATTENDEE is the account as RFC 6638 implicit scheduling (iMIP to the
// other attendees or to the organizer, SCHEDULE-STATUS=1.1 added to the
// stored event), and a DELETE sends a CANCEL or a declining REPLY.
// Cyrus (3.0 and later, http_caldav.c _scheduling_enabled, checked
// before every sched_request and sched_reply of a PUT or DELETE) skips
// scheduling for a request with this header and stores the bytes as
// sent: nothing to normalise, and the stored event is not marked, so the
// user's later edits schedule as usual. Schedule-Reply: F (RFC 6638
// 8.1) does not help: Cyrus's PUT ignores it and it cannot stop
// requests. A server that does not know the header ignores it; see
// docs/export.md for what an operator configures there.
const SchedulingHeader = "Scheduling-Enabled"

// Options configure [Open].
type Options struct {
	vandelay.Server
	vandelay.Login
	// Path is the server's context path. Default: "/".
	Path string
	// CalDAV selects calendars; the default is address books.
	CalDAV bool
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Target is one account's CardDAV or CalDAV store.
type Target struct {
	o    Options
	c    *davclient.Client
	k    davclient.Kind
	home string
}

var _ vandelay.DAVTarget = (*Target)(nil)

// Open checks the options and returns a target.
func Open(ctx context.Context, o *Options) (*Target, error) {
	if o == nil || o.Address == "" || o.User == "" {
		return nil, fmt.Errorf("%w: a DAV target needs a server address and the account's user name", vandelay.ErrUsage)
	}
	if o.TLS == vandelay.TLSNone && !o.AllowCleartext {
		return nil, fmt.Errorf("%w: refusing to send a password over plain http without AllowCleartext", vandelay.ErrUsage)
	}
	c, err := davclient.New(srcdav.URL(o.Server, o.Path), o.User, o.Password, srcdav.TLSConfig(o.Server))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	k := davclient.CardDAV
	if o.CalDAV {
		k = davclient.CalDAV
		c.WriteHeader = map[string]string{SchedulingHeader: "F"}
	}
	return &Target{o: *o, c: c, k: k}, nil
}

// Name is the target's identity in the export mapping.
func (t *Target) Name() string {
	kind := "carddav"
	if t.o.CalDAV {
		kind = "caldav"
	}
	return kind + " " + srcdav.URL(t.o.Server, t.o.Path) + " " + t.o.User
}

// Home discovers (once) the user's home set.
func (t *Target) Home(ctx context.Context) (string, error) {
	if t.home == "" {
		h, err := t.c.HomeSet(ctx, t.k)
		if err != nil {
			return "", err
		}
		t.home = h
	}
	return t.home, nil
}

// Collections lists the collections below the home set.
func (t *Target) Collections(ctx context.Context) ([]string, error) {
	home, err := t.Home(ctx)
	if err != nil {
		return nil, err
	}
	cols, err := t.c.Collections(ctx, t.k, home)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Href
	}
	return out, nil
}

// MakeCollection creates a collection with c's properties.
func (t *Target) MakeCollection(ctx context.Context, href string, c archive.Collection) error {
	return t.c.MakeCollection(ctx, t.k, href, davclient.Collection{DisplayName: c.DisplayName, Color: c.Color, Description: c.Description, Components: c.Components})
}

// DeleteCollection deletes a collection.
func (t *Target) DeleteCollection(ctx context.Context, href string) error {
	return t.c.Delete(ctx, href, "")
}

// Members returns the items of a collection with their ETags.
func (t *Target) Members(ctx context.Context, collection string) (map[string]string, error) {
	ms, err := t.c.Members(ctx, collection)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, m := range ms {
		out[m.Href] = m.ETag
	}
	return out, nil
}

// Get returns an item's bytes. Cyrus stores a vCard 4.0 as sent but
// serves it as 3.0 unless asked for 4.0 (REAL_PEERS.md §0), so the
// Accept header names the version of the item that was put.
func (t *Target) Get(ctx context.Context, href string, like []byte) ([]byte, error) {
	accept := ""
	if !t.o.CalDAV && bytes.Contains(like, []byte("\nVERSION:4.0")) {
		accept = "text/vcard; version=4.0"
	}
	o, err := t.c.Get(ctx, href, accept)
	if err != nil {
		return nil, err
	}
	return o.Data, nil
}

// Put stores an item.
func (t *Target) Put(ctx context.Context, href, mediaType string, body []byte, ifMatch string) (string, error) {
	etag, err := t.c.Put(ctx, href, mediaType, body, ifMatch)
	var se *davclient.StatusError
	switch {
	case errors.Is(err, davclient.ErrPrecondition):
		return "", fmt.Errorf("%w: %w", vandelay.ErrDAVPrecondition, err)
	case errors.As(err, &se) && se.Code/100 == 4 && se.Code != http.StatusUnauthorized:
		return "", &vandelay.DAVRefusedError{Href: href, Text: fmt.Sprintf("%d %s", se.Code, se.Text)}
	case err != nil:
		return "", err
	}
	if etag == "" {
		// RFC 4791 5.3.4: no strong ETag when the server changed the
		// data on store; ask for the one it has now.
		ms, err := t.c.Members(ctx, parent(href))
		if err == nil {
			for _, m := range ms {
				if m.Href == href {
					etag = m.ETag
				}
			}
		}
	}
	return etag, nil
}

func parent(href string) string {
	for i := len(href) - 1; i > 0; i-- {
		if href[i] == '/' {
			return href[:i+1]
		}
	}
	return "/"
}

// Delete deletes an item if its ETag is still ifMatch.
func (t *Target) Delete(ctx context.Context, href, ifMatch string) error {
	err := t.c.Delete(ctx, href, ifMatch)
	if errors.Is(err, davclient.ErrPrecondition) {
		return fmt.Errorf("%w: %w", vandelay.ErrDAVPrecondition, err)
	}
	return err
}

// Close releases idle connections.
func (t *Target) Close() error { return nil }
