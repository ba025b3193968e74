package httpproxy

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
)

// TestFlipEndsEventSource: an EventSource stream open through the proxy
// ends (cleanly, after the events already sent) when the account is
// flipped; the client's reconnect is routed to the new backend.
func TestFlipEndsEventSource(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	// Neither stream is released: the old one would only end by the
	// backend's own 10 s timeout, sending "data: two" first.
	releases["flip1"] = make(chan struct{})
	releases["flip2"] = make(chan struct{})
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	open := func(id string) (*http.Response, *bufio.Reader) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.url+"/events?id="+id, nil)
		req.SetBasicAuth("ann@example.test", "x")
		req.Header.Set("Accept", "text/event-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || line != "data: one\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		return resp, br
	}
	resp, br := open("flip1")
	if b := resp.Header.Get("X-Backend"); b != "alpha" {
		t.Fatalf("stream from %q, want alpha", b)
	}

	e.route("ann@example.test", "beta")
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Errorf("stream after the flip: %v, want a clean end", err)
	}
	if strings.Contains(string(rest), "two") {
		t.Errorf("the old backend's stream went on after the flip: %q", rest)
	}

	resp, _ = open("flip2")
	if b := resp.Header.Get("X-Backend"); b != "beta" {
		t.Errorf("reconnected stream from %q, want beta", b)
	}
	// A freeze ends the stream too (the engine freezes before it copies
	// the last changes and flips).
	e.freeze("ann@example.test")
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("stream after the freeze: %v, want a clean end", err)
	}
}

// relay is a TCP pass-through in front of a real server, so that one
// server can stand behind two backend names with distinct addresses; it
// counts the bytes clients sent through it, which tells which backend
// address the proxy used.
type relay struct {
	addr string
	sent atomic.Int64
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: ln.Addr().String()}
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, b)
			mu.Unlock()
			go func() {
				io.Copy(countWriter{b, &r.sent}, c)
				b.Close()
			}()
			go func() {
				io.Copy(c, b)
				c.Close()
			}()
		}
	}()
	return r
}

// setRoute writes a route as the engine does (cmd/mailmig's
// routeStore.SetRoute): backend and state in one update.
func (e *env) setRoute(acct, backend string, frozen bool) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.store.Update(ctx, acct, func(r *routes.Route, _ bool) error {
		r.Backend, r.State = backend, routes.Active
		if frozen {
			r.State = routes.Frozen
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.w.Refresh(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// cutOver runs the engine's route steps of an account's cut-over (see
// engine.Apply): freeze on the old backend, flip to the new one while
// still frozen, unfreeze; frozen runs while the account is frozen.
func (e *env) cutOver(acct, from, to string, frozen func()) {
	e.t.Helper()
	e.setRoute(acct, from, true)
	if frozen != nil {
		frozen()
	}
	e.setRoute(acct, to, true)
	e.setRoute(acct, to, false)
}

func plainBackend(name, u string) *proxy.Backend {
	return &proxy.Backend{Name: name, Endpoints: map[proxy.Protocol]proxy.Endpoint{proxy.HTTP: {URL: u, AllowPlaintext: true}}}
}

// send does one request with a client that keeps its connections, built
// anew for one retry: the proxy closes an idle keep-alive at a flip, and
// net/http does not resend a POST (or PROPFIND) on a connection that
// turned out closed; clients retry such a request.
func send(t *testing.T, client *http.Client, build func() *http.Request) (*http.Response, string) {
	t.Helper()
	var last error
	for range 2 {
		resp, err := client.Do(build())
		if err != nil {
			last = err
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	t.Fatal(last)
	return nil, ""
}

// TestJMAPClientFollowsFlip: a JMAP client (net/http, one kept
// connection) fetches the session through the proxy, queries, and keeps
// using the session's URLs across the account's cut-over, whose route
// steps are the engine's (freeze, flip, unfreeze): while frozen a call
// gets 503, after it the calls reach the new backend. Old and new are the one Cyrus of the peer
// set behind two relays (two addresses); the relays' byte counts show
// which one the proxy dialled.
func TestJMAPClientFollowsFlip(t *testing.T) {
	set := peers.Get(t)
	oldR, newR := newRelay(t, set.Cyrus.HTTP), newRelay(t, set.Cyrus.HTTP)
	e := newBenchEnv(t, true,
		plainBackend("jmap-old", "http://"+oldR.addr+"/"),
		plainBackend("jmap-new", "http://"+newR.addr+"/"))
	a := e.set.NewAccount(t)
	e.route(a.Email, "jmap-old")
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	session := func() (s struct {
		APIURL, DownloadURL, UploadURL, EventSourceURL string
		PrimaryAccounts                                map[string]string
	}) {
		t.Helper()
		resp, body := send(t, client, func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, e.url+"/.well-known/jmap", nil)
			req.SetBasicAuth(a.Email, a.Password)
			return req
		})
		if resp.StatusCode != 200 {
			t.Fatalf("session: %s\n%s", resp.Status, body)
		}
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	sess := session()
	for name, u := range map[string]string{"apiUrl": sess.APIURL, "downloadUrl": sess.DownloadURL, "uploadUrl": sess.UploadURL, "eventSourceUrl": sess.EventSourceURL} {
		if !strings.HasPrefix(u, e.url+"/jmap/") {
			t.Errorf("%s = %q, want the proxy origin %s", name, u, e.url)
		}
	}
	acct := sess.PrimaryAccounts["urn:ietf:params:jmap:mail"]
	query := func() int {
		t.Helper()
		resp, body := send(t, client, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, sess.APIURL, strings.NewReader(
				`{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Email/query",{"accountId":"`+acct+`"},"q"]]}`))
			req.SetBasicAuth(a.Email, a.Password)
			req.Header.Set("Content-Type", "application/json")
			return req
		})
		if resp.StatusCode == http.StatusServiceUnavailable {
			return resp.StatusCode
		}
		var out struct{ MethodResponses [][]json.RawMessage }
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.MethodResponses) != 1 ||
			string(out.MethodResponses[0][0]) != `"Email/query"` {
			t.Fatalf("Email/query: %s\n%s", resp.Status, body)
		}
		return resp.StatusCode
	}
	query()
	if oldR.sent.Load() == 0 || newR.sent.Load() != 0 {
		t.Fatalf("before the flip: old backend got %d bytes, new %d; want all on the old", oldR.sent.Load(), newR.sent.Load())
	}
	// Cyrus 3.6.1 answers the session's eventSourceUrl with 204 No
	// Content: no stream to end here; TestFlipEndsEventSource covers it.

	e.cutOver(a.Email, "jmap-old", "jmap-new", func() {
		if st := query(); st != http.StatusServiceUnavailable {
			t.Errorf("Email/query while frozen: %d, want 503", st)
		}
	})
	oldBytes := oldR.sent.Load()
	query() // the session kept from before the flip
	if got := oldR.sent.Load(); got != oldBytes {
		t.Errorf("after the flip the old backend got %d more bytes", got-oldBytes)
	}
	if newR.sent.Load() == 0 {
		t.Errorf("after the flip the new backend got nothing")
	}
	if again := session(); again.APIURL != sess.APIURL || again.EventSourceURL != sess.EventSourceURL {
		t.Errorf("session URLs changed at the flip: %q %q, were %q %q", again.APIURL, again.EventSourceURL, sess.APIURL, sess.EventSourceURL)
	}
	if got := oldR.sent.Load(); got != oldBytes {
		t.Errorf("the session after the flip came from the old backend")
	}
}

// flipMultistatus is the part of a WebDAV 207 answer the CalDAV client reads.
type flipMultistatus struct {
	Responses []struct {
		Href     string `xml:"DAV: href"`
		Propstat []struct {
			Prop struct {
				Principal struct {
					Href string `xml:"DAV: href"`
				} `xml:"DAV: current-user-principal"`
				Home struct {
					Href string `xml:"DAV: href"`
				} `xml:"urn:ietf:params:xml:ns:caldav calendar-home-set"`
				Type struct {
					Calendar *struct{} `xml:"urn:ietf:params:xml:ns:caldav calendar"`
				} `xml:"DAV: resourcetype"`
				Data string `xml:"urn:ietf:params:xml:ns:caldav calendar-data"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

// TestCalDAVClientFollowsFlip: a CalDAV client (net/http, one kept
// connection) discovers its calendars through the proxy (well-known
// redirect, principal, home, PROPFIND of the home, REPORT of each
// calendar) on the old backend, Radicale; after the flip the same
// discovery from the same URL lands on the new one, Cyrus. Each server
// holds an event the other has not, so the events tell who answered.
func TestCalDAVClientFollowsFlip(t *testing.T) {
	e := newEnv(t, true)
	a := e.set.NewAccount(t)
	e.route(a.Email, "radicale")
	event := func(uid string) string {
		return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailmig//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
			"\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260110T100000Z\r\nDTEND:20260110T110000Z\r\nSUMMARY:" + uid +
			"\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	}
	for u, uid := range map[string]string{
		e.set.Radicale.HomeURL(a.Email) + "calendar/old.ics": "old-side-event",
		e.set.Cyrus.CalDAVURL(a.Email) + "Default/new.ics":   "new-side-event",
	} {
		req, _ := http.NewRequest(http.MethodPut, u, strings.NewReader(event(uid)))
		req.SetBasicAuth(a.Email, a.Password)
		req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
		if resp, body := do(t, req); resp.StatusCode/100 != 2 {
			t.Fatalf("PUT %s: %s\n%s", u, resp.Status, body)
		}
	}

	client := &http.Client{
		Transport:     &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	base, _ := url.Parse(e.url + "/")
	dav := func(method, ref, depth, body string) (*http.Response, flipMultistatus) {
		t.Helper()
		u, err := base.Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if u.Host != base.Host {
			t.Fatalf("%s %s: the client was sent away from the proxy", method, u)
		}
		resp, b := send(t, client, func() *http.Request {
			req, _ := http.NewRequest(method, u.String(), strings.NewReader(body))
			req.SetBasicAuth(a.Email, a.Password)
			req.Header.Set("Depth", depth)
			req.Header.Set("Content-Type", "application/xml; charset=utf-8")
			return req
		})
		var ms flipMultistatus
		if resp.StatusCode == http.StatusMultiStatus {
			if err := xml.Unmarshal([]byte(b), &ms); err != nil {
				t.Fatalf("%s %s: %v\n%s", method, u, err, b)
			}
		} else if resp.StatusCode/100 != 3 {
			t.Fatalf("%s %s: %s\n%s", method, u, resp.Status, b)
		}
		return resp, ms
	}
	const cal = `xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"`
	// discover is what a CalDAV client does from the one URL it was
	// given: the principal, its calendar home, the calendars there and
	// the events of each. It returns the principal and the events' UIDs.
	discover := func() (string, string) {
		t.Helper()
		resp, _ := dav("PROPFIND", "/.well-known/caldav", "0", "")
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			t.Fatalf("well-known: %s, Location %q", resp.Status, loc)
		}
		_, ms := dav("PROPFIND", loc, "0", `<propfind `+cal+`><prop><current-user-principal/></prop></propfind>`)
		principal := ""
		for _, r := range ms.Responses {
			for _, ps := range r.Propstat {
				principal += ps.Prop.Principal.Href
			}
		}
		_, ms = dav("PROPFIND", principal, "0", `<propfind `+cal+`><prop><C:calendar-home-set/></prop></propfind>`)
		home := ""
		for _, r := range ms.Responses {
			for _, ps := range r.Propstat {
				home += ps.Prop.Home.Href
			}
		}
		_, ms = dav("PROPFIND", home, "1", `<propfind `+cal+`><prop><resourcetype/></prop></propfind>`)
		var uids []string
		for _, r := range ms.Responses {
			isCal := false
			for _, ps := range r.Propstat {
				isCal = isCal || ps.Prop.Type.Calendar != nil
			}
			if !isCal {
				continue
			}
			_, evs := dav("REPORT", r.Href, "1", `<C:calendar-query `+cal+`><prop><C:calendar-data/></prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>`)
			for _, ev := range evs.Responses {
				for _, ps := range ev.Propstat {
					for _, line := range strings.Split(ps.Prop.Data, "\n") {
						if uid, ok := strings.CutPrefix(strings.TrimSpace(line), "UID:"); ok {
							uids = append(uids, uid)
						}
					}
				}
			}
		}
		return principal, strings.Join(uids, " ")
	}

	principal, uids := discover()
	if !strings.Contains(uids, "old-side-event") || strings.Contains(uids, "new-side-event") {
		t.Fatalf("before the flip: principal %q, events %q; want Radicale's only", principal, uids)
	}
	e.cutOver(a.Email, "radicale", "cyrus", nil)
	principal2, uids := discover()
	if !strings.Contains(uids, "new-side-event") || strings.Contains(uids, "old-side-event") {
		t.Errorf("after the flip: principal %q, events %q; want Cyrus's only", principal2, uids)
	}
	if principal2 == principal || !strings.HasPrefix(principal2, "/dav/principals/") {
		t.Errorf("after the flip the principal is %q (was %q), want Cyrus's", principal2, principal)
	}
}
