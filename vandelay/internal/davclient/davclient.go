// Package davclient is the small CalDAV/CardDAV client the DAV source and
// target share. Discovery (RFC 6764 /.well-known, current-user-principal,
// the home set) goes through emersion/go-webdav v0.7.0; everything that
// must keep an item's bytes is written here over net/http, because
// go-webdav decodes address and calendar data into go-vcard/go-ical values
// (MultiGet, Put, Get), which re-serialises them, and v0.7.0 has
// sync-collection (RFC 6578) for CardDAV only, where it also drops the
// 404 propstat of deleted members on some servers. So: one PROPFIND of the
// home set for the collections' properties, one sync-collection REPORT for
// both kinds, multiget REPORTs that keep the address-data/calendar-data
// text exactly, and PUT/DELETE/GET/MKCOL with preconditions.
package davclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/emersion/go-webdav"
	"github.com/emersion/go-webdav/caldav"
	"github.com/emersion/go-webdav/carddav"
)

// Kind is the DAV flavour: CardDAV or CalDAV.
type Kind int

// The kinds.
const (
	CardDAV Kind = iota
	CalDAV
)

// Namespaces.
const (
	nsDAV     = "DAV:"
	nsCardDAV = "urn:ietf:params:xml:ns:carddav"
	nsCalDAV  = "urn:ietf:params:xml:ns:caldav"
	nsApple   = "http://apple.com/ns/ical/"
	nsCS      = "http://calendarserver.org/ns/"
)

// MaxBody bounds a multistatus answer and one item (a 2 MB event with
// base64 attachments fits many times).
const MaxBody = 256 << 20

// Client speaks to one DAV server as one user. It is safe for use by one
// goroutine at a time.
type Client struct {
	base       *url.URL
	user, pass string
	hc         *http.Client
	// WriteHeader is sent with every PUT and DELETE of an item (the
	// CalDAV target's Scheduling-Enabled: F).
	WriteHeader map[string]string
}

// New returns a client for the server at rawURL (scheme, host and an
// optional context path); tc configures TLS (nil: the defaults).
func New(rawURL, user, pass string, tc *tls.Config) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("dav url %q: want http(s)://host[:port][/path]", rawURL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	hc := &http.Client{}
	if tc != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		hc.Transport = tr
	}
	return &Client{base: u, user: user, pass: pass, hc: hc}, nil
}

// Do sends req with the user's credentials (webdav.HTTPClient).
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	req.SetBasicAuth(c.user, c.pass)
	return c.hc.Do(req)
}

// URL resolves an href against the server.
func (c *Client) URL(href string) string {
	r, err := c.base.Parse(href)
	if err != nil {
		return c.base.String() + strings.TrimPrefix(href, "/")
	}
	return r.String()
}

// StatusError is an HTTP answer other than the expected one.
type StatusError struct {
	Method, Href string
	Code         int
	Text         string
}

func (e *StatusError) Error() string {
	t := strings.TrimSpace(e.Text)
	if len(t) > 200 {
		t = t[:200]
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Href, e.Code, http.StatusText(e.Code), t)
}

// Code returns the HTTP status of err when it is a *StatusError, else 0.
func Code(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func (c *Client) request(ctx context.Context, method, href string, body []byte, hdr map[string]string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL(href), r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return c.Do(req)
}

func (c *Client) xmlRequest(ctx context.Context, method, href, depth, body string) (*multistatus, error) {
	hdr := map[string]string{"Content-Type": "application/xml; charset=utf-8"}
	if depth != "" {
		hdr["Depth"] = depth
	}
	resp, err := c.request(ctx, method, href, []byte(xml.Header+body), hdr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, href, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, href, err)
	}
	if resp.StatusCode != http.StatusMultiStatus {
		return nil, &StatusError{method, href, resp.StatusCode, string(b)}
	}
	ms, err := ParseMultistatus(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, href, err)
	}
	return ms, nil
}

// HomeSet discovers the user's address-book (CardDAV) or calendar (CalDAV)
// home: /.well-known/carddav or /.well-known/caldav (RFC 6764 5, redirects
// followed), then current-user-principal (RFC 5397) and the home set
// (RFC 6352 7.1.1, RFC 4791 6.2.1), by go-webdav.
func (c *Client) HomeSet(ctx context.Context, k Kind) (string, error) {
	wk := "/.well-known/carddav"
	if k == CalDAV {
		wk = "/.well-known/caldav"
	}
	start := c.base.String()
	if c.base.Path == "/" {
		// Servers answer the well-known URL with a redirect to their
		// context path (RFC 6764 5); one without it (404) is asked at its
		// root. Only the first redirect counts: Radicale sends "/" on to
		// its web interface.
		req, err := http.NewRequestWithContext(ctx, "PROPFIND", c.URL(wk), strings.NewReader(xml.Header+`<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>`))
		if err != nil {
			return "", err
		}
		req.Header.Set("Depth", "0")
		req.Header.Set("Content-Type", "application/xml; charset=utf-8")
		req.SetBasicAuth(c.user, c.pass)
		hc := *c.hc
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
				if u, err := c.base.Parse(loc); err == nil {
					u.User = nil
					start = u.String()
				}
			}
		}
	}
	wc, err := webdav.NewClient(c, start)
	if err != nil {
		return "", err
	}
	principal, err := wc.FindCurrentUserPrincipal(ctx)
	if err != nil {
		return "", fmt.Errorf("find current-user-principal: %w", err)
	}
	var home string
	if k == CalDAV {
		cc, err := caldav.NewClient(c, start)
		if err != nil {
			return "", err
		}
		home, err = cc.FindCalendarHomeSet(ctx, principal)
		if err != nil {
			return "", fmt.Errorf("find calendar-home-set: %w", err)
		}
	} else {
		cc, err := carddav.NewClient(c, start)
		if err != nil {
			return "", err
		}
		home, err = cc.FindAddressBookHomeSet(ctx, principal)
		if err != nil {
			return "", fmt.Errorf("find addressbook-home-set: %w", err)
		}
	}
	return home, nil
}

// Collection is one address book or calendar of a home set.
type Collection struct {
	Href        string
	DisplayName string
	Color       string
	Description string
	Components  []string // CalDAV supported-calendar-component-set
	SyncToken   string
	CTag        string
}

// Collections lists the address books (CardDAV) or calendars (CalDAV)
// directly below home with one PROPFIND Depth 1 (RFC 4918 9.1).
func (c *Client) Collections(ctx context.Context, k Kind, home string) ([]Collection, error) {
	ms, err := c.xmlRequest(ctx, "PROPFIND", home, "1", `<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:A="http://apple.com/ns/ical/" xmlns:CS="http://calendarserver.org/ns/"><D:prop>
<D:resourcetype/><D:displayname/><D:sync-token/><CS:getctag/><A:calendar-color/><CR:addressbook-description/><C:calendar-description/><C:supported-calendar-component-set/>
</D:prop></D:propfind>`)
	if err != nil {
		return nil, err
	}
	want := xml.Name{Space: nsCardDAV, Local: "addressbook"}
	if k == CalDAV {
		want = xml.Name{Space: nsCalDAV, Local: "calendar"}
	}
	var out []Collection
	for _, r := range ms.Responses {
		p := r.okProp()
		if p == nil || !p.ResourceType.has(want) {
			continue
		}
		col := Collection{Href: r.Href, DisplayName: p.DisplayName, Color: p.Color, SyncToken: p.SyncToken, CTag: p.CTag,
			Description: p.AddressBookDescription}
		if k == CalDAV {
			col.Description = p.CalendarDescription
		}
		for _, cp := range p.Comps {
			col.Components = append(col.Components, cp.Name)
		}
		out = append(out, col)
	}
	return out, nil
}

// Member is an item of a collection as a listing names it.
type Member struct {
	Href string
	ETag string
}

// ErrInvalidSyncToken reports that the server no longer accepts the
// token (RFC 6578 3.2: 403 or 409 with DAV:valid-sync-token); the caller
// starts over with an empty token.
var ErrInvalidSyncToken = errors.New("sync-token no longer valid")

// SyncCollection asks for the members changed and removed since token
// ("" for all), RFC 6578 3.2. Removed members come as 404 responses.
func (c *Client) SyncCollection(ctx context.Context, href, token string) (changed []Member, removed []string, newToken string, err error) {
	body := `<D:sync-collection xmlns:D="DAV:"><D:sync-token>` + xmlEscape(token) + `</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>`
	ms, err := c.xmlRequest(ctx, "REPORT", href, "", body)
	if err != nil {
		var se *StatusError
		if token != "" && errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Code == http.StatusConflict) && strings.Contains(se.Text, "valid-sync-token") {
			return nil, nil, "", ErrInvalidSyncToken
		}
		return nil, nil, "", err
	}
	self := path.Clean(href)
	for _, r := range ms.Responses {
		if path.Clean(r.Href) == self {
			continue
		}
		if r.Status.code() == http.StatusNotFound {
			removed = append(removed, r.Href)
			continue
		}
		if p := r.okProp(); p != nil {
			if p.ResourceType.has(xml.Name{Space: nsDAV, Local: "collection"}) {
				continue
			}
			changed = append(changed, Member{r.Href, p.ETag})
		}
	}
	return changed, removed, ms.SyncToken, nil
}

// Members lists every item of a collection with its ETag (PROPFIND Depth
// 1), the fallback for servers without sync-collection.
func (c *Client) Members(ctx context.Context, href string) ([]Member, error) {
	ms, err := c.xmlRequest(ctx, "PROPFIND", href, "1", `<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop></D:propfind>`)
	if err != nil {
		return nil, err
	}
	self := path.Clean(href)
	var out []Member
	for _, r := range ms.Responses {
		p := r.okProp()
		if p == nil || path.Clean(r.Href) == self || p.ResourceType.has(xml.Name{Space: nsDAV, Local: "collection"}) {
			continue
		}
		out = append(out, Member{r.Href, p.ETag})
	}
	return out, nil
}

// Object is an item's bytes as the server served them.
type Object struct {
	Href string
	ETag string
	Data []byte
}

// Multiget fetches hrefs of one collection with one addressbook-multiget
// (RFC 6352 8.7) or calendar-multiget (RFC 4791 7.9) REPORT. The data is
// the element's text exactly (XML unescaped, nothing else). Hrefs the
// server answers 404 for are left out (deleted since the listing).
func (c *Client) Multiget(ctx context.Context, k Kind, collection string, hrefs []string) ([]Object, error) {
	var b strings.Builder
	if k == CalDAV {
		b.WriteString(`<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>`)
	} else {
		b.WriteString(`<C:addressbook-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><C:address-data/></D:prop>`)
	}
	for _, h := range hrefs {
		b.WriteString("<D:href>" + xmlEscape(h) + "</D:href>")
	}
	if k == CalDAV {
		b.WriteString(`</C:calendar-multiget>`)
	} else {
		b.WriteString(`</C:addressbook-multiget>`)
	}
	ms, err := c.xmlRequest(ctx, "REPORT", collection, "1", b.String())
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, r := range ms.Responses {
		p := r.okProp()
		if p == nil {
			continue
		}
		data := p.AddressData
		if k == CalDAV {
			data = p.CalendarData
		}
		if data == nil {
			continue
		}
		out = append(out, Object{Href: r.Href, ETag: p.ETag, Data: []byte(*data)})
	}
	return out, nil
}

// Get fetches one item's bytes; accept is sent as Accept when not "".
func (c *Client) Get(ctx context.Context, href, accept string) (*Object, error) {
	hdr := map[string]string{}
	if accept != "" {
		hdr["Accept"] = accept
	}
	resp, err := c.request(ctx, http.MethodGet, href, nil, hdr)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", href, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", href, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{"GET", href, resp.StatusCode, string(b)}
	}
	return &Object{Href: href, ETag: resp.Header.Get("ETag"), Data: b}, nil
}

// ErrPrecondition reports a 412 on a conditional PUT or DELETE: the item
// exists (If-None-Match: *) or changed (If-Match) at the server.
var ErrPrecondition = errors.New("precondition failed: the item changed at the server")

// Put stores body at href. With ifMatch "" it creates (If-None-Match: *),
// otherwise it replaces the version with that ETag (RFC 7232). It returns
// the new ETag when the server sends one.
func (c *Client) Put(ctx context.Context, href, mediaType string, body []byte, ifMatch string) (string, error) {
	hdr := map[string]string{"Content-Type": mediaType + "; charset=utf-8"}
	for k, v := range c.WriteHeader {
		hdr[k] = v
	}
	if ifMatch == "" {
		hdr["If-None-Match"] = "*"
	} else {
		hdr["If-Match"] = ifMatch
	}
	resp, err := c.request(ctx, http.MethodPut, href, body, hdr)
	if err != nil {
		return "", fmt.Errorf("PUT %s: %w", href, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusPreconditionFailed:
		return "", fmt.Errorf("PUT %s: %w", href, ErrPrecondition)
	case resp.StatusCode/100 != 2:
		return "", &StatusError{"PUT", href, resp.StatusCode, string(b)}
	}
	return resp.Header.Get("ETag"), nil
}

// Delete removes href if its ETag is still ifMatch ("" deletes whatever
// is there). A 404 is success.
func (c *Client) Delete(ctx context.Context, href, ifMatch string) error {
	hdr := map[string]string{}
	for k, v := range c.WriteHeader {
		hdr[k] = v
	}
	if ifMatch != "" {
		hdr["If-Match"] = ifMatch
	}
	resp, err := c.request(ctx, http.MethodDelete, href, nil, hdr)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", href, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("DELETE %s: %w", href, ErrPrecondition)
	}
	return &StatusError{"DELETE", href, resp.StatusCode, string(b)}
}

// MakeCollection creates an address book (extended MKCOL, RFC 5689) or a
// calendar (MKCALENDAR, RFC 4791 5.3.1) with its display name, colour,
// description and (calendars) component set. 405 (exists) is an error
// for the caller to look at.
func (c *Client) MakeCollection(ctx context.Context, k Kind, href string, col Collection) error {
	var props strings.Builder
	if col.DisplayName != "" {
		props.WriteString("<D:displayname>" + xmlEscape(col.DisplayName) + "</D:displayname>")
	}
	if col.Color != "" {
		props.WriteString("<A:calendar-color>" + xmlEscape(col.Color) + "</A:calendar-color>")
	}
	method, body := "MKCOL", ""
	if k == CalDAV {
		if col.Description != "" {
			props.WriteString("<C:calendar-description>" + xmlEscape(col.Description) + "</C:calendar-description>")
		}
		if len(col.Components) > 0 {
			props.WriteString("<C:supported-calendar-component-set>")
			for _, cp := range col.Components {
				props.WriteString(`<C:comp name="` + xmlEscape(cp) + `"/>`)
			}
			props.WriteString("</C:supported-calendar-component-set>")
		}
		method = "MKCALENDAR"
		body = `<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>` + props.String() + `</D:prop></D:set></C:mkcalendar>`
	} else {
		if col.Description != "" {
			props.WriteString("<CR:addressbook-description>" + xmlEscape(col.Description) + "</CR:addressbook-description>")
		}
		body = `<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>` + props.String() + `</D:prop></D:set></D:mkcol>`
	}
	resp, err := c.request(ctx, method, href, []byte(xml.Header+body), map[string]string{"Content-Type": "application/xml; charset=utf-8"})
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, href, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return &StatusError{method, href, resp.StatusCode, string(b)}
	}
	return nil
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
