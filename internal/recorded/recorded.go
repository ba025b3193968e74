// Package recorded serves recorded protocol exchanges to tests of peers
// that cannot run on a test machine: Microsoft Graph and EWS (Exchange),
// and the JMAP-standard capabilities (RFC 9661 Sieve, RFC 9610 contacts,
// calendars, FileNode, identities, vacation) that no server in the harness
// offers. Everything else is tested against real servers; docs say which
// paths are checked against recordings. The recordings are written by hand
// from the specifications' and vendors' documented request and response
// examples, not captured from a live server.
//
// A script is a txtar archive of exchanges: a file "NAME.req" and a file
// "NAME.resp" per exchange. The server checks every request it receives
// against the script — method, path, query, the headers the script names
// and the body — so the tests check what the client sends, not only what
// it does with the answers. A request that matches no unused exchange is
// answered 599 and fails the test; an exchange left unused when the script
// is replaced or the test ends fails it too.
//
// Request file:
//
//	METHOD /path?query
//	Header: value            (each must be present with exactly this value)
//	                         (blank line)
//	body                     (compared as a form, JSON, XML or bytes)
//
// Response file:
//
//	STATUS
//	Header: value
//
//	body
//
// "{{base}}" in a response is replaced by the server's URL, so that
// @odata.nextLink and deltaLink values point back at it. Fixture
// directives are headers starting with "X-Fixture-" and are not sent:
//
//   - X-Fixture-CRLF: 1 (response) serves the body with CRLF line ends,
//     as MIME is served (txtar files keep LF).
//   - X-Fixture-Optional: 1 (request) lets the exchange go unused.
//   - X-Fixture-Repeat: 1 (request) lets it be served any number of times.
//   - X-Fixture-Prefix: NAME (request) compares header NAME by prefix, for
//     a value with random parts (an NTLM AUTHENTICATE message); the test
//     reads the whole value with Requests and checks it itself.
//
// A header written with nothing after the colon must be absent.
//
// Exchanges are matched in file order, first unused match first, so two
// identical requests (a 429 and the retry that succeeds) are answered in
// the order written. Concurrent requests for different resources match
// independently of their arrival order.
package recorded

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// Exchange is one recorded request and its response.
type Exchange struct {
	Name string
	// Request side.
	Method, Path string
	Query        url.Values
	Header       http.Header
	Body         []byte
	Optional     bool
	Repeat       bool
	// Prefix names the headers compared by prefix.
	Prefix map[string]bool
	// Response side.
	Status     int
	RespHeader http.Header
	RespBody   []byte

	used int
	got  []Request
}

// Request is what the client sent for an exchange: its headers and the
// client's address (the same address means the same connection).
type Request struct {
	Header     http.Header
	RemoteAddr string
}

// Server is an httptest server answering from a script.
type Server struct {
	*httptest.Server
	t testing.TB

	mu       sync.Mutex
	onServe  func(name string)
	script   string
	ex       []*Exchange
	failures []string
	log      []string
}

// New starts a server that answers from the script files paths (relative
// to the test's directory; several are matched as one script, in order)
// and stops it when the test ends, failing the test on any mismatch or
// unused exchange.
func New(t testing.TB, paths ...string) *Server {
	t.Helper()
	s := &Server{t: t}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		s.Close()
		s.Check()
	})
	s.Load(paths...)
	return s
}

// Load checks the current script (every exchange used, no mismatch) and
// replaces it with the scripts at paths.
func (s *Server) Load(paths ...string) {
	s.t.Helper()
	s.Check()
	var all []*Exchange
	for _, p := range paths {
		ex, err := ParseFile(p)
		if err != nil {
			s.t.Fatal(err)
		}
		all = append(all, ex...)
	}
	s.mu.Lock()
	s.script, s.ex, s.failures, s.log = strings.Join(paths, "+"), all, nil, nil
	s.mu.Unlock()
}

// Check fails the test for requests that matched nothing and for unused
// exchanges of the current script.
func (s *Server) Check() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.failures {
		s.t.Errorf("%s: %s", s.script, f)
	}
	unused := false
	for _, e := range s.ex {
		if e.used == 0 && !e.Optional {
			s.t.Errorf("%s: exchange %q was never requested", s.script, e.Name)
			unused = true
		}
	}
	if unused {
		s.t.Logf("%s: requests seen:\n%s", s.script, strings.Join(s.log, "\n"))
	}
	s.failures = nil
}

// OnServe sets a function called with the name of each exchange after
// its response was written (nil: none). A test cancels an import there to
// show that a resumed one loses and doubles nothing.
func (s *Server) OnServe(fn func(name string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onServe = fn
}

// Requests returns the requests served by the named exchange, in order.
func (s *Server) Requests(name string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.ex {
		if e.Name == name {
			return slices.Clone(e.got)
		}
	}
	return nil
}

// Used reports how often the named exchange was served.
func (s *Server) Used(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.ex {
		if e.Name == name {
			return e.used
		}
	}
	return 0
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.log = append(s.log, r.Method+" "+r.URL.RequestURI())
	var hit *Exchange
	var why []string
	for _, e := range s.ex {
		if e.used > 0 && !e.Repeat {
			continue
		}
		if d := e.mismatch(r, body); d != "" {
			if e.Method == r.Method && e.Path == r.URL.Path {
				why = append(why, e.Name+": "+d)
			}
			continue
		}
		hit = e
		break
	}
	if hit == nil {
		msg := fmt.Sprintf("no exchange matches %s %s", r.Method, r.URL.RequestURI())
		if len(why) > 0 {
			msg += " (" + strings.Join(why, "; ") + ")"
		}
		s.failures = append(s.failures, msg)
		s.mu.Unlock()
		http.Error(w, msg, 599)
		return
	}
	hit.used++
	hit.got = append(hit.got, Request{Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr})
	onServe := s.onServe
	s.mu.Unlock()
	base := s.URL
	for k, vs := range hit.RespHeader {
		for _, v := range vs {
			w.Header().Add(k, strings.ReplaceAll(v, "{{base}}", base))
		}
	}
	out := bytes.ReplaceAll(hit.RespBody, []byte("{{base}}"), []byte(base))
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(hit.Status)
	w.Write(out)
	if onServe != nil {
		onServe(hit.Name)
	}
}

// mismatch says why r does not match e, or "" when it does.
func (e *Exchange) mismatch(r *http.Request, body []byte) string {
	if r.Method != e.Method || r.URL.Path != e.Path {
		return "method or path"
	}
	if q := r.URL.Query(); !sameValues(q, e.Query) {
		return fmt.Sprintf("query %v, want %v", q, e.Query)
	}
	for k, want := range e.Header {
		got := strings.Join(r.Header.Values(k), ", ")
		if e.Prefix[http.CanonicalHeaderKey(k)] && strings.HasPrefix(got, strings.Join(want, ", ")) {
			continue
		}
		if got != strings.Join(want, ", ") {
			return fmt.Sprintf("header %s: %q, want %q", k, got, strings.Join(want, ", "))
		}
	}
	if d := bodyMismatch(r.Header.Get("Content-Type"), body, e.Body); d != "" {
		return "body: " + d
	}
	return ""
}

func sameValues(a, b url.Values) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

var xmlSpace = regexp.MustCompile(`>\s+<`)

// bodyMismatch compares a request body with the recorded one by its
// content type: forms and JSON by value, XML with the white space between
// elements ignored, anything else byte for byte.
func bodyMismatch(ctype string, got, want []byte) string {
	ct := strings.ToLower(ctype)
	switch {
	case len(bytes.TrimSpace(want)) == 0:
		if len(bytes.TrimSpace(got)) != 0 {
			return "unexpected body"
		}
		return ""
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		g, err1 := url.ParseQuery(string(got))
		w, err2 := url.ParseQuery(strings.TrimSpace(string(want)))
		if err1 != nil || err2 != nil || !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("form %v, want %v", redactForm(g), redactForm(w))
		}
	case strings.HasPrefix(ct, "application/json"):
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			return "not JSON: " + err.Error()
		}
		if err := json.Unmarshal(want, &w); err != nil {
			return "fixture not JSON: " + err.Error()
		}
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("JSON %s, want %s", compact(got), compact(want))
		}
	case strings.Contains(ct, "xml"):
		g := xmlSpace.ReplaceAll(bytes.TrimSpace(got), []byte("><"))
		w := xmlSpace.ReplaceAll(bytes.TrimSpace(want), []byte("><"))
		if !bytes.Equal(g, w) {
			if err := xml.Unmarshal(got, new(any)); err != nil {
				return "not XML: " + err.Error()
			}
			return fmt.Sprintf("XML\n%s\nwant\n%s", g, w)
		}
	default:
		if !bytes.Equal(got, want) {
			return fmt.Sprintf("%q, want %q", got, want)
		}
	}
	return ""
}

// redactForm hides secrets in failure messages (the fixtures' secrets
// are fake, but the habit is the one the code keeps).
func redactForm(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		if k == "client_secret" || k == "refresh_token" || k == "password" {
			out[k] = []string{"<redacted>"}
			continue
		}
		out[k] = vs
	}
	return out
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

// ParseFile reads a script.
func ParseFile(path string) ([]*Exchange, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ex, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ex, nil
}

// Parse reads a script from txtar bytes.
func Parse(data []byte) ([]*Exchange, error) {
	ar := txtar.Parse(data)
	resp := map[string][]byte{}
	var order []string
	reqs := map[string][]byte{}
	for _, f := range ar.Files {
		switch {
		case strings.HasSuffix(f.Name, ".req"):
			n := strings.TrimSuffix(f.Name, ".req")
			if _, dup := reqs[n]; dup {
				return nil, fmt.Errorf("exchange %q twice", n)
			}
			reqs[n] = f.Data
			order = append(order, n)
		case strings.HasSuffix(f.Name, ".resp"):
			resp[strings.TrimSuffix(f.Name, ".resp")] = f.Data
		default:
			return nil, fmt.Errorf("file %q is neither .req nor .resp", f.Name)
		}
	}
	var out []*Exchange
	for _, n := range order {
		rs, ok := resp[n]
		if !ok {
			return nil, fmt.Errorf("exchange %q has no response", n)
		}
		e := &Exchange{Name: n}
		if err := e.parseRequest(reqs[n]); err != nil {
			return nil, fmt.Errorf("%s.req: %w", n, err)
		}
		if err := e.parseResponse(rs); err != nil {
			return nil, fmt.Errorf("%s.resp: %w", n, err)
		}
		delete(resp, n)
		out = append(out, e)
	}
	if len(resp) > 0 {
		var names []string
		for n := range resp {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("responses without request: %v", names)
	}
	return out, nil
}

// split parses "first line, headers, blank line, body".
func split(b []byte) (first string, h http.Header, body []byte, err error) {
	h = http.Header{}
	head, body, _ := bytes.Cut(b, []byte("\n\n"))
	lines := strings.Split(strings.TrimRight(string(head), "\n"), "\n")
	first = strings.TrimSpace(lines[0])
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return "", nil, nil, fmt.Errorf("header line %q has no colon", l)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return first, h, body, nil
}

func (e *Exchange) parseRequest(b []byte) error {
	first, h, body, err := split(b)
	if err != nil {
		return err
	}
	method, target, ok := strings.Cut(first, " ")
	if !ok {
		return fmt.Errorf("request line %q: want METHOD /path", first)
	}
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	e.Method, e.Path, e.Query = method, u.Path, u.Query()
	e.Optional = h.Get("X-Fixture-Optional") != ""
	e.Repeat = h.Get("X-Fixture-Repeat") != ""
	for _, k := range h.Values("X-Fixture-Prefix") {
		if e.Prefix == nil {
			e.Prefix = map[string]bool{}
		}
		e.Prefix[http.CanonicalHeaderKey(k)] = true
	}
	h.Del("X-Fixture-Optional")
	h.Del("X-Fixture-Repeat")
	h.Del("X-Fixture-Prefix")
	e.Header, e.Body = h, body
	return nil
}

func (e *Exchange) parseResponse(b []byte) error {
	first, h, body, err := split(b)
	if err != nil {
		return err
	}
	e.Status, err = strconv.Atoi(first)
	if err != nil {
		return fmt.Errorf("status line %q: %w", first, err)
	}
	if h.Get("X-Fixture-CRLF") != "" {
		body = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	}
	h.Del("X-Fixture-CRLF")
	e.RespHeader, e.RespBody = h, body
	return nil
}
