package httpproxy

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// davClient is a small CalDAV client that keeps one calendar in sync the
// way RFC 6578 describes: discovery from the server's root (current-user-
// principal → calendar-home-set → the first calendar), then
// sync-collection REPORTs with the token of the last one. A 403 with
// DAV:valid-sync-token, or a 404 for the collection, makes it forget the
// token and its local copy and start again from discovery (RFC 6578 3.2);
// so does a 405, which is what Cyrus answers for a collection URL outside
// its DAV tree.
type davClient struct {
	t          *testing.T
	origin     string // the proxy, "http://host:port"
	user, pass string

	collection string            // href of the calendar
	token      string            // the last sync-token
	items      map[string]string // href → UID (the local store)
	resets     []int             // the status codes that made it start again
}

// multistatus is the part of a 207 body the client reads.
type multistatus struct {
	Responses []struct {
		Href     string `xml:"href"`
		Status   string `xml:"status"`
		Propstat []struct {
			Status string `xml:"status"`
			Prop   struct {
				Principal  string    `xml:"current-user-principal>href"`
				Home       string    `xml:"calendar-home-set>href"`
				Calendar   *struct{} `xml:"resourcetype>calendar"`
				ETag       string    `xml:"getetag"`
				SyncToken  string    `xml:"sync-token"`
				CalendarDt string    `xml:"calendar-data"`
			} `xml:"prop"`
		} `xml:"propstat"`
	} `xml:"response"`
	SyncToken string `xml:"sync-token"`
}

func (c *davClient) do(method, href, depth, body string) (int, []byte) {
	c.t.Helper()
	u := href
	if strings.HasPrefix(href, "/") {
		u = c.origin + href
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	for try := 0; ; try++ {
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			c.t.Fatal(err)
		}
		req.SetBasicAuth(c.user, c.pass)
		if body != "" {
			req.Header.Set("Content-Type", "application/xml; charset=utf-8")
		}
		if depth != "" {
			req.Header.Set("Depth", depth)
		}
		resp, err = cl.Do(req)
		if err == nil {
			break
		}
		// The flip closes the account's keep-alive connections; like a
		// real client, try once more on a new one.
		if try == 1 {
			c.t.Fatal(err)
		}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 == 3 {
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(resp.Header.Get("Location"), c.origin) && loc.IsAbs() {
			c.t.Fatalf("%s %s: redirect to %q, not to the proxy", method, href, resp.Header.Get("Location"))
		}
		return c.do(method, loc.Path, depth, body)
	}
	return resp.StatusCode, b
}

func (c *davClient) propfind(href, depth, props string) multistatus {
	c.t.Helper()
	code, b := c.do("PROPFIND", href, depth, `<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop>`+props+`</d:prop></d:propfind>`)
	if code != http.StatusMultiStatus {
		c.t.Fatalf("PROPFIND %s: %d\n%s", href, code, b)
	}
	var ms multistatus
	if err := xml.Unmarshal(b, &ms); err != nil {
		c.t.Fatalf("PROPFIND %s: %v\n%s", href, err, b)
	}
	return ms
}

// discover finds the user's first calendar through the proxy.
func (c *davClient) discover() {
	c.t.Helper()
	principal := ""
	for _, r := range c.propfind("/.well-known/caldav", "0", "<d:current-user-principal/>").Responses {
		for _, ps := range r.Propstat {
			if ps.Prop.Principal != "" {
				principal = ps.Prop.Principal
			}
		}
	}
	home := ""
	for _, r := range c.propfind(principal, "0", "<c:calendar-home-set/>").Responses {
		for _, ps := range r.Propstat {
			if ps.Prop.Home != "" {
				home = ps.Prop.Home
			}
		}
	}
	c.collection = ""
	for _, r := range c.propfind(home, "1", "<d:resourcetype/>").Responses {
		for _, ps := range r.Propstat {
			if ps.Prop.Calendar != nil && c.collection == "" && !strings.Contains(strings.ToLower(r.Href), "inbox") && !strings.Contains(strings.ToLower(r.Href), "outbox") {
				c.collection = r.Href
			}
		}
	}
	if c.collection == "" {
		c.t.Fatalf("no calendar found under %q (principal %q)", home, principal)
	}
}

// sync brings the local store up to date; see davClient.
func (c *davClient) sync() {
	c.t.Helper()
	if c.collection == "" {
		c.discover()
	}
	code, b := c.do("REPORT", c.collection, "", `<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:sync-token>`+c.token+`</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/><c:calendar-data/></d:prop></d:sync-collection>`)
	switch {
	case code == http.StatusForbidden && strings.Contains(string(b), "valid-sync-token"), code == http.StatusNotFound,
		// Cyrus answers a REPORT on a path outside its DAV tree (the
		// source's collection URL) with 405: the collection is gone too.
		code == http.StatusMethodNotAllowed:
		c.resets = append(c.resets, code)
		c.token, c.items, c.collection = "", map[string]string{}, ""
		c.sync()
		return
	case code != http.StatusMultiStatus:
		c.t.Fatalf("REPORT sync-collection %s: %d\n%s", c.collection, code, b)
	}
	var ms multistatus
	if err := xml.Unmarshal(b, &ms); err != nil {
		c.t.Fatalf("sync-collection answer: %v\n%s", err, b)
	}
	for _, r := range ms.Responses {
		if strings.Contains(r.Status, " 404") {
			delete(c.items, r.Href)
			continue
		}
		for _, ps := range r.Propstat {
			if d := ps.Prop.CalendarDt; d != "" {
				c.items[r.Href] = icalUID(d)
			}
		}
	}
	c.token = ms.SyncToken
}

func icalUID(ics string) string {
	for _, l := range strings.Split(strings.ReplaceAll(ics, "\r\n", "\n"), "\n") {
		if v, ok := strings.CutPrefix(l, "UID:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func event(uid string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
		"\r\nDTSTAMP:20261207T100000Z\r\nDTSTART:20261210T100000Z\r\nDTEND:20261210T110000Z\r\nSUMMARY:" + uid + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
}

// put stores an event in a collection (a URL, or a path at the proxy).
func (c *davClient) put(collection, uid string) {
	c.t.Helper()
	u := collection + uid + ".ics"
	if strings.HasPrefix(u, "/") {
		u = c.origin + u
	}
	req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(event(uid)))
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		c.t.Fatalf("PUT %s: %s", u, resp.Status)
	}
}

// TestDAVSyncTokenAcrossFlip (issue 15): a CalDAV client keeps a calendar
// in sync through the proxy with sync-collection while the account lives
// on Radicale; the account moves to Cyrus (the same events put there, as
// the data export does, and its route flipped) and one more event is
// added through the proxy. The client's next REPORT, with Radicale's
// token for Radicale's collection URL, reaches Cyrus and is refused (405
// Method Not Allowed: the path is outside Cyrus's DAV tree, where a 404
// would be RFC 6578's answer); the client starts again from discovery and
// syncs Cyrus's calendar from scratch. Its local store then holds the
// four events, each once. A Radicale token sent for Cyrus's own calendar
// is refused with 403 DAV:valid-sync-token (RFC 6578 3.2).
func TestDAVSyncTokenAcrossFlip(t *testing.T) {
	e := newEnv(t, true)
	a := e.set.NewAccount(t)
	e.route(a.Email, "radicale")
	c := &davClient{t: t, origin: e.url, user: a.Email, pass: a.Password, items: map[string]string{}}
	c.discover()
	src := c.collection
	uids := []string{"ev1-" + a.Email, "ev2-" + a.Email, "ev3-" + a.Email}
	for _, u := range uids {
		c.put(src, u)
	}
	c.sync()
	if len(c.items) != 3 || c.token == "" {
		t.Fatalf("first sync at Radicale: %v, token %q", c.items, c.token)
	}
	c.put(src, "ev0-"+a.Email) // a change the client has not seen yet
	uids = append(uids, "ev0-"+a.Email)
	radicaleToken := c.token

	// The migration: the events at Cyrus, the route flipped.
	cyrusCal := e.set.Cyrus.CalDAVURL(a.Email) + "Default/"
	for _, u := range uids {
		c.put(cyrusCal, u)
	}
	e.route(a.Email, "cyrus")
	later := "ev4-" + a.Email
	cy := &davClient{t: t, origin: e.url, user: a.Email, pass: a.Password, items: map[string]string{}}
	cy.discover()
	c.put(cy.collection, later)
	uids = append(uids, later)

	c.sync()
	if fmt.Sprint(c.resets) != "[405]" {
		t.Fatalf("the client started again after %v, want once after Cyrus's 405", c.resets)
	}
	if c.collection == src {
		t.Errorf("still on Radicale's collection %s", src)
	}
	got := map[string]int{}
	for _, u := range c.items {
		got[u]++
	}
	for _, u := range uids {
		if got[u] != 1 {
			t.Errorf("event %s is in the client's store %d times", u, got[u])
		}
	}
	if len(c.items) != len(uids) {
		t.Errorf("the client's store holds %d events, want %d: %v", len(c.items), len(uids), c.items)
	}
	t.Logf("after the flip: REPORT answered %v, then a full sync of %s: %d events", c.resets, c.collection, len(c.items))

	// The same token sent for Cyrus's own calendar: 403 valid-sync-token.
	stale := &davClient{t: t, origin: e.url, user: a.Email, pass: a.Password, items: map[string]string{}, collection: cy.collection, token: radicaleToken}
	stale.sync()
	if fmt.Sprint(stale.resets) != "[403]" || len(stale.items) != len(uids) {
		t.Errorf("a Radicale token at Cyrus's calendar: resets %v, %d events", stale.resets, len(stale.items))
	}
}
