// Package dav imports an account's address books (CardDAV, RFC 6352) or
// calendars (CalDAV, RFC 4791) into the archive.
//
// Discovery: /.well-known/carddav or caldav (RFC 6764), then
// current-user-principal and the home set; every collection below the
// home set of the right type is the user's. Each collection is synced on
// its own: by sync-collection (RFC 6578) with the archived sync-token,
// starting over when the server no longer accepts it, and by CTag plus a
// PROPFIND of the members' ETags on servers without sync-collection.
// Changed items are fetched by multiget in batches of [Batch] and kept
// exactly as served: Radicale re-serialises what it stores, so what it
// serves is the source's truth. An item that does not parse is kept as
// bytes with its parse error. The source is only read, never changed.
package dav

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/davclient"
	"github.com/mailmig/mailmig/vandelay/internal/icalsafe"
)

// The source kinds in the registry and in the archive.
const (
	KindCardDAV = "carddav"
	KindCalDAV  = "caldav"
)

// Batch is the number of hrefs per multiget REPORT.
const Batch = 50

// Options configure [New].
type Options struct {
	// Server is the DAV server: Address host:port, TLS none (with
	// AllowCleartext) for http, anything else for https.
	vandelay.Server
	// Login is the account; Password its password (HTTP Basic).
	vandelay.Login
	// Path is the server's context path. Default: "/" (then
	// /.well-known is asked first).
	Path string
	// CalDAV selects calendars; the default is address books (CardDAV).
	CalDAV bool
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// Source is one account's address books or calendars.
type Source struct {
	o     Options
	c     *davclient.Client
	k     davclient.Kind
	ctags map[string]davclient.Collection
	log   *slog.Logger
}

var _ vandelay.DAVSource = (*Source)(nil)

// URL returns the base URL the options describe.
func URL(s vandelay.Server, path string) string {
	scheme := "https"
	if s.TLS == vandelay.TLSNone {
		scheme = "http"
	}
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + s.Address + path
}

// TLSConfig returns the TLS settings of s, nil for the defaults.
func TLSConfig(s vandelay.Server) *tls.Config {
	if !s.InsecureSkipVerify && s.ServerName == "" {
		return nil
	}
	return &tls.Config{ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify}
}

// New checks the options and returns a source; it connects on use.
func New(o *Options) (*Source, error) {
	if o == nil || o.Address == "" {
		return nil, fmt.Errorf("%w: a DAV source needs a server address (host:port)", vandelay.ErrUsage)
	}
	if o.User == "" {
		return nil, fmt.Errorf("%w: a DAV source needs the account's user name", vandelay.ErrUsage)
	}
	if o.TLS == vandelay.TLSNone && !o.AllowCleartext {
		return nil, fmt.Errorf("%w: refusing to send a password over plain http without AllowCleartext", vandelay.ErrUsage)
	}
	if o.MasterUser != "" || o.Token != "" {
		return nil, fmt.Errorf("%w: DAV sources log in with the user's own password (no master user or token)", vandelay.ErrUsage)
	}
	c, err := davclient.New(URL(o.Server, o.Path), o.User, o.Password, TLSConfig(o.Server))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	k := davclient.CardDAV
	if o.CalDAV {
		k = davclient.CalDAV
	}
	return &Source{o: *o, c: c, k: k, log: vandelay.LoggerOr(o.Logger)}, nil
}

// Describe returns the source's identity.
func (s *Source) Describe() archive.Source {
	kind := KindCardDAV
	if s.o.CalDAV {
		kind = KindCalDAV
	}
	return archive.Source{Kind: kind, Endpoint: URL(s.o.Server, s.o.Path), Account: s.o.User, Login: s.o.User}
}

// Kind returns the archive's collection kind.
func (s *Source) Kind() string {
	if s.o.CalDAV {
		return archive.CollectionCalendar
	}
	return archive.CollectionAddressBook
}

// Collections discovers the home set and lists its collections.
func (s *Source) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	home, err := s.c.HomeSet(ctx, s.k)
	if err != nil {
		return nil, classify(fmt.Errorf("discover %s of %s: %w", s.Kind(), s.o.User, err))
	}
	cols, err := s.c.Collections(ctx, s.k, home)
	if err != nil {
		return nil, fmt.Errorf("list collections of %s: %w", s.o.User, err)
	}
	s.ctags = map[string]davclient.Collection{}
	var out []archive.NewCollection
	for _, c := range cols {
		s.ctags[c.Href] = c
		out = append(out, archive.NewCollection{Href: c.Href, DisplayName: c.DisplayName, Color: c.Color, Description: c.Description, Components: c.Components})
	}
	return out, nil
}

// classify wraps discovery errors in the source error classes: a refused
// login is ErrAuth, a server that cannot be reached ErrConnect.
func classify(err error) error {
	var ne net.Error
	var oe *net.OpError
	switch {
	case davclient.Code(err) == http.StatusUnauthorized || strings.Contains(err.Error(), "401 Unauthorized"):
		return fmt.Errorf("%w: %w", vandelay.ErrAuth, err)
	case errors.As(err, &oe), errors.As(err, &ne):
		return fmt.Errorf("%w: %w", vandelay.ErrConnect, err)
	}
	return err
}

// Sync returns what changed in c since cur.
func (s *Source) Sync(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	info := s.ctags[c.Href]
	cs := &archive.CollectionSync{Collection: c, SyncToken: cur.SyncToken, CTag: info.CTag}
	var want []davclient.Member
	changed, removed, token, err := s.c.SyncCollection(ctx, c.Href, cur.SyncToken)
	if errors.Is(err, davclient.ErrInvalidSyncToken) {
		s.log.Info("sync-token refused, listing the whole collection", "mailbox", c.Href)
		cur = &archive.DAVCursor{ETags: cur.ETags}
		changed, removed, token, err = s.c.SyncCollection(ctx, c.Href, "")
	}
	switch code := davclient.Code(err); {
	case err == nil:
		cs.SyncToken = token
		if cur.SyncToken == "" {
			// A full listing: what the archive holds beyond it is gone.
			removed = gone(cur.ETags, changed)
		}
		for _, m := range changed {
			if m.ETag == "" || cur.ETags[m.Href] != m.ETag {
				want = append(want, m)
			}
		}
		cs.Deleted = removed
	case code == http.StatusNotImplemented || code == http.StatusBadRequest || code == http.StatusMethodNotAllowed ||
		code == http.StatusForbidden && !strings.Contains(err.Error(), "valid-sync-token") && info.SyncToken == "":
		// No sync-collection: the CTag says whether anything changed,
		// the members' ETags what.
		cs.SyncToken = ""
		if info.CTag != "" && info.CTag == cur.CTag {
			return cs, nil
		}
		members, err := s.c.Members(ctx, c.Href)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if cur.ETags[m.Href] != m.ETag || m.ETag == "" {
				want = append(want, m)
			}
		}
		cs.Deleted = gone(cur.ETags, members)
	default:
		return nil, err
	}
	for i := 0; i < len(want); i += Batch {
		batch := want[i:min(i+Batch, len(want))]
		hrefs := make([]string, len(batch))
		for j, m := range batch {
			hrefs[j] = m.Href
		}
		objs, err := s.c.Multiget(ctx, s.k, c.Href, hrefs)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			cs.Items = append(cs.Items, s.item(o))
		}
	}
	return cs, nil
}

func gone(had map[string]string, now []davclient.Member) []string {
	live := map[string]bool{}
	for _, m := range now {
		live[m.Href] = true
	}
	var out []string
	for h := range had {
		if !live[h] {
			out = append(out, h)
		}
	}
	return out
}

func (s *Source) item(o davclient.Object) archive.NewItem {
	it := archive.NewItem{Href: o.Href, ETag: o.ETag, Body: o.Data}
	if s.o.CalDAV {
		it.MediaType = "text/calendar"
		cal, err := icalsafe.Decode(o.Data)
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
	card, err := vcard.NewDecoder(strings.NewReader(string(o.Data))).Decode()
	if err != nil {
		it.ParseError = err.Error()
		return it
	}
	it.UID = card.Value(vcard.FieldUID)
	return it
}

// Close releases idle connections.
func (s *Source) Close() error { return nil }
