package davclient

// WebDAV file operations (RFC 4918) for the files source and target.
// go-webdav v0.7.0's webdav.Client has ReadDir, Open, Create and Mkdir,
// but its Create cannot send If-Match or If-None-Match, it returns no
// ETag, and its FileInfo drops the difference between a weak and a strong
// ETag that Apache's answers need (see [Client.PutFile]); so the few
// requests are written here on the same client as the CalDAV/CardDAV ones.

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// Entry is a file or folder as a PROPFIND lists it.
type Entry struct {
	// Href is the entry's URL path as the server sent it (percent-encoded;
	// folders usually end in "/").
	Href       string
	Collection bool
	Size       int64
	MediaType  string
	Modified   time.Time
	ETag       string
}

const filesPropfind = `<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getcontenttype/><D:getlastmodified/><D:getetag/></D:prop></D:propfind>`

func entryOf(r *response) (Entry, bool) {
	p := r.okProp()
	if p == nil {
		return Entry{}, false
	}
	e := Entry{Href: r.Href, Collection: p.ResourceType.has(xml.Name{Space: nsDAV, Local: "collection"}),
		MediaType: strings.TrimSpace(p.ContentType), ETag: strings.TrimSpace(p.ETag)}
	e.Size, _ = strconv.ParseInt(strings.TrimSpace(p.ContentLength), 10, 64)
	if t, err := http.ParseTime(strings.TrimSpace(p.LastModified)); err == nil {
		e.Modified = t.UTC()
	}
	return e, true
}

// List returns the members of the folder href with one PROPFIND Depth 1
// (never Depth infinity, which servers refuse: Apache's DavDepthInfinity
// is off by default). The folder itself is left out.
func (c *Client) List(ctx context.Context, href string) ([]Entry, error) {
	ms, err := c.xmlRequest(ctx, "PROPFIND", href, "1", filesPropfind)
	if err != nil {
		return nil, err
	}
	self := cleanHref(href)
	var out []Entry
	for i := range ms.Responses {
		if cleanHref(ms.Responses[i].Href) == self {
			continue
		}
		if e, ok := entryOf(&ms.Responses[i]); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Stat returns one entry by PROPFIND Depth 0; a missing one is a
// *StatusError with Code 404.
func (c *Client) Stat(ctx context.Context, href string) (*Entry, error) {
	ms, err := c.xmlRequest(ctx, "PROPFIND", href, "0", filesPropfind)
	if err != nil {
		return nil, err
	}
	for i := range ms.Responses {
		if e, ok := entryOf(&ms.Responses[i]); ok {
			return &e, nil
		}
	}
	return nil, &StatusError{"PROPFIND", href, http.StatusNotFound, "no properties"}
}

// cleanHref compares hrefs by their decoded path without a trailing
// slash: servers differ in escaping (Apache sends %c3%a9, clients %C3%A9).
func cleanHref(h string) string {
	if u, err := url.PathUnescape(h); err == nil {
		h = u
	}
	return path.Clean("/" + h)
}

// Open starts a GET of href and returns the body to stream from, with
// the ETag and length the server sent (-1 when unknown). Close the body.
func (c *Client) Open(ctx context.Context, href string) (io.ReadCloser, string, int64, error) {
	resp, err := c.request(ctx, http.MethodGet, href, nil, nil)
	if err != nil {
		return nil, "", 0, fmt.Errorf("GET %s: %w", href, err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, "", 0, &StatusError{"GET", href, resp.StatusCode, string(b)}
	}
	return resp.Body, resp.Header.Get("ETag"), resp.ContentLength, nil
}

// PutFile streams size bytes of body to href. With ifMatch "" it only
// creates (If-None-Match: *); with "*" it writes whatever is there (the
// caller checked the version itself); otherwise it replaces the version
// with that ETag. A failed precondition is [ErrPrecondition]. The new
// ETag is not returned: Apache sends none with a PUT, ask [Client.Stat].
func (c *Client) PutFile(ctx context.Context, href string, body io.Reader, size int64, ifMatch string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.URL(href), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	switch ifMatch {
	case "":
		req.Header.Set("If-None-Match", "*")
	case "*":
	default:
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", href, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusPreconditionFailed:
		return fmt.Errorf("PUT %s: %w", href, ErrPrecondition)
	case resp.StatusCode/100 != 2:
		return &StatusError{"PUT", href, resp.StatusCode, string(b)}
	}
	return nil
}

// Mkcol creates the folder href (RFC 4918 9.3). A folder already there
// (405) is success.
func (c *Client) Mkcol(ctx context.Context, href string) error {
	resp, err := c.request(ctx, "MKCOL", href, nil, nil)
	if err != nil {
		return fmt.Errorf("MKCOL %s: %w", href, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusMethodNotAllowed {
		return nil
	}
	return &StatusError{"MKCOL", href, resp.StatusCode, string(b)}
}

// EscapePath percent-encodes each segment of a decoded path for a URL,
// so that names with spaces, %, # or ? reach the server as themselves.
func EscapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
