package jmap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeServer is a minimal in-process JMAP server for limit and error
// handling tests; real behaviour is tested against Cyrus in
// cyrus_test.go.
type fakeServer struct {
	t       *testing.T
	srv     *httptest.Server
	core    CoreCapability
	mu      sync.Mutex
	reqs    [][]string // method names per request
	handle  func(w http.ResponseWriter, calls []wireInvocation) bool
	method  func(name string, args json.RawMessage) (string, any)
	uploads atomic.Int64
	inUp    atomic.Int64
	maxUp   atomic.Int64
	upHook  func(w http.ResponseWriter) bool
	auth    string
}

func newFake(t *testing.T, core CoreCapability) *fakeServer {
	f := &fakeServer{t: t, core: core}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/jmap", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/sess/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/sess/", func(w http.ResponseWriter, r *http.Request) {
		f.auth = r.Header.Get("Authorization")
		caps, _ := json.Marshal(f.core)
		json.NewEncoder(w).Encode(map[string]any{
			"capabilities":    map[string]json.RawMessage{CapCore: caps, CapMail: json.RawMessage(`{}`)},
			"accounts":        map[string]any{"A1": map[string]any{"name": "alice@example.test", "accountCapabilities": map[string]any{CapMail: map[string]any{}}}, "B2": map[string]any{"name": "bob@example.test"}},
			"primaryAccounts": map[string]string{CapMail: "A1"},
			"username":        "alice@example.test",
			"apiUrl":          "../api/",
			"uploadUrl":       "/up/{accountId}/",
			"downloadUrl":     "/down/{accountId}/{blobId}/{name}?accept={type}",
			"state":           "s1",
		})
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		var req wireRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad", 400)
			return
		}
		var names []string
		for _, c := range req.MethodCalls {
			names = append(names, c.name)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, names)
		f.mu.Unlock()
		if len(req.MethodCalls) > f.core.MaxCallsInRequest {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"type":%q,"limit":"maxCallsInRequest","status":400}`, ProblemLimit)
			return
		}
		if f.handle != nil && f.handle(w, req.MethodCalls) {
			return
		}
		var out wireResponse
		for _, c := range req.MethodCalls {
			name, args := "", any(json.RawMessage(c.args))
			if f.method != nil {
				name, args = f.method(c.name, c.args)
			}
			if name == "" {
				name = c.name
			}
			b, _ := json.Marshal(args)
			out.MethodResponses = append(out.MethodResponses, wireInvocation{name, b, c.id})
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/up/", func(w http.ResponseWriter, r *http.Request) {
		n := f.inUp.Add(1)
		defer f.inUp.Add(-1)
		for {
			m := f.maxUp.Load()
			if n <= m || f.maxUp.CompareAndSwap(m, n) {
				break
			}
		}
		if f.upHook != nil && f.upHook(w) {
			return
		}
		b, _ := io.ReadAll(r.Body)
		time.Sleep(20 * time.Millisecond) // hold the slot so that overlap is observable
		f.uploads.Add(1)
		json.NewEncoder(w).Encode(Blob{AccountID: strings.Split(r.URL.Path, "/")[2], BlobID: fmt.Sprintf("G%d", len(b)), Size: int64(len(b)), Type: r.Header.Get("Content-Type")})
	})
	mux.HandleFunc("/down/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.URL.EscapedPath(), r.URL.Query().Get("accept"))
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func testCore() CoreCapability {
	return CoreCapability{MaxSizeUpload: 1000, MaxConcurrentUpload: 2, MaxSizeRequest: 1 << 20,
		MaxConcurrentRequests: 2, MaxCallsInRequest: 3, MaxObjectsInGet: 5, MaxObjectsInSet: 4}
}

func discoverFake(t *testing.T, f *fakeServer) *Client {
	t.Helper()
	c, err := Discover(context.Background(), f.srv.URL, &Options{Auth: BasicAuth{"alice@example.test", "pw"}, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDiscoverResolvesURLs(t *testing.T) {
	f := newFake(t, testCore())
	c := discoverFake(t, f)
	if got, want := c.apiURL.String(), f.srv.URL+"/api/"; got != want {
		t.Errorf("apiUrl = %s, want %s (relative to the session url after the redirect)", got, want)
	}
	if !strings.HasPrefix(f.auth, "Basic ") {
		t.Errorf("session request had no Basic auth")
	}
	id, err := c.Session().FindAccount("")
	if err != nil || id != "A1" {
		t.Errorf("primary account = %q, %v", id, err)
	}
	rc, err := c.Download(context.Background(), "A1", "G 1/x", "a b.eml", "message/rfc822")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if got, want := string(b), "/down/A1/G%201%2Fx/a%20b.eml|message/rfc822"; got != want {
		t.Errorf("download url = %q, want %q", got, want)
	}
	if s := (BasicAuth{"u", "secret"}).String() + (BearerAuth{"tok"}).String(); strings.Contains(s, "secret") || strings.Contains(s, "tok>") {
		t.Errorf("auth String leaks the secret: %s", s)
	}
}

func TestFindAccount(t *testing.T) {
	s := &Session{Accounts: map[string]Account{"A1": {Name: "alice@example.test"}, "B2": {Name: "bob@example.test"}}, PrimaryAccounts: map[string]string{CapMail: "A1"}}
	for key, want := range map[string]string{"": "A1", "B2": "B2", "BOB@example.test": "B2", "nobody": ""} {
		got, err := s.FindAccount(key)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("FindAccount(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestExecBatchesByMaxCalls(t *testing.T) {
	f := newFake(t, testCore())
	c := discoverFake(t, f)
	var groups [][]*Call
	for i := 0; i < 7; i++ {
		groups = append(groups, []*Call{{Method: "Core/echo", Args: map[string]int{"i": i}}})
	}
	// a dependent pair must stay in one request
	a := &Call{Method: "Email/query", Args: map[string]any{}}
	b := &Call{Method: "Email/get", Args: map[string]any{"#ids": a.Ref("/ids")}}
	groups = append(groups[:2], append([][]*Call{{a, b}}, groups[2:]...)...)
	if err := c.Exec(context.Background(), UsingMail, groups...); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range f.reqs {
		sizes = append(sizes, len(r))
	}
	if diff := cmp.Diff([]int{2, 3, 3, 1}, sizes); diff != "" {
		t.Errorf("request sizes (-want +got):\n%s", diff)
	}
	var ref map[string]map[string]string
	json.Unmarshal(b.Raw, &ref)
	if ref["#ids"]["resultOf"] != a.ID() || ref["#ids"]["name"] != "Email/query" {
		t.Errorf("back-reference = %v", ref)
	}
	if err := c.Exec(context.Background(), UsingMail, []*Call{{Method: "a"}, {Method: "b"}, {Method: "c"}, {Method: "d"}}); err == nil {
		t.Errorf("a 4-call group under maxCallsInRequest 3 must be refused")
	}
}

func TestExecSplitsOnLimitProblem(t *testing.T) {
	core := testCore()
	f := newFake(t, core)
	c := discoverFake(t, f)
	// the server claims 3 but enforces 1: Exec must split down to single calls
	f.core.MaxCallsInRequest = 1
	var groups [][]*Call
	for i := 0; i < 3; i++ {
		groups = append(groups, []*Call{{Method: "Core/echo", Args: i}})
	}
	if err := c.Exec(context.Background(), UsingMail, groups...); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g[0].Err != nil || string(g[0].Raw) != fmt.Sprint(g[0].Args) {
			t.Errorf("call %v: err %v raw %s", g[0].Args, g[0].Err, g[0].Raw)
		}
	}
}

func TestExecRetriesServerUnavailable(t *testing.T) {
	f := newFake(t, testCore())
	c := discoverFake(t, f)
	var n atomic.Int32
	f.method = func(name string, args json.RawMessage) (string, any) {
		if n.Add(1) <= 2 {
			return "error", map[string]string{"type": ErrServerUnavailable}
		}
		return "", args
	}
	call := &Call{Method: "Email/get", Args: 1}
	if err := c.Exec(context.Background(), UsingMail, []*Call{call}); err != nil {
		t.Fatal(err)
	}
	if call.Err != nil || n.Load() != 3 {
		t.Errorf("err %v after %d tries, want success on try 3", call.Err, n.Load())
	}
	f.method = func(name string, args json.RawMessage) (string, any) {
		return "error", map[string]any{"type": ErrInvalidArguments, "description": "nope"}
	}
	call = &Call{Method: "Email/get", Args: 1}
	c.Exec(context.Background(), UsingMail, []*Call{call})
	if call.Err == nil || call.Err.Type != ErrInvalidArguments || call.Err.Retryable() {
		t.Errorf("invalidArguments: got %v", call.Err)
	}
}

func TestHTTP429RetryAfter(t *testing.T) {
	f := newFake(t, testCore())
	c := discoverFake(t, f)
	var n atomic.Int32
	f.handle = func(w http.ResponseWriter, calls []wireInvocation) bool {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	}
	start := time.Now()
	call := &Call{Method: "Core/echo", Args: "x"}
	if err := c.Exec(context.Background(), UsingMail, []*Call{call}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, want Retry-After's 1s", d)
	}
	// a permanent problem is returned as *ProblemError
	f.handle = func(w http.ResponseWriter, calls []wireInvocation) bool {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"type":%q,"status":400,"detail":"cap"}`, ProblemUnknownCapability)
		return true
	}
	err := c.Exec(context.Background(), UsingMail, []*Call{{Method: "x"}})
	var pe *ProblemError
	if !errors.As(err, &pe) || pe.Type != ProblemUnknownCapability || pe.Temporary() {
		t.Errorf("got %v, want unknownCapability problem", err)
	}
}

func TestUploadLimits(t *testing.T) {
	f := newFake(t, testCore())
	c := discoverFake(t, f)
	ctx := context.Background()
	open := func(b []byte) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	if _, err := c.Upload(ctx, "A1", "message/rfc822", 1001, open(make([]byte, 1001))); !errors.Is(err, ErrTooLarge) {
		t.Errorf("1001 bytes over maxSizeUpload 1000: got %v", err)
	}
	if f.uploads.Load() != 0 {
		t.Errorf("a too-large blob was sent")
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Upload(ctx, "A1", "message/rfc822", 10, open(make([]byte, 10))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if m := f.maxUp.Load(); m > 2 || m < 1 {
		t.Errorf("max concurrent uploads = %d, want ≤ maxConcurrentUpload 2", m)
	}
	// 503 then success: the body is re-opened and sent again
	var n atomic.Int32
	f.upHook = func(w http.ResponseWriter) bool {
		if n.Add(1) == 1 {
			w.WriteHeader(503)
			return true
		}
		return false
	}
	b, err := c.Upload(ctx, "A1", "message/rfc822", 7, open([]byte("abcdefg")))
	if err != nil || b.Size != 7 {
		t.Errorf("upload after 503: %+v, %v", b, err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 00:00:10 GMT": 0,
		"soon":                          0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestExpandTemplate(t *testing.T) {
	for tmpl, want := range map[string]string{
		"/d/{accountId}/{blobId}/{name}?accept={type}": "/d/a%40b/x%2By/n%C3%A4me%2F?accept=message%2Frfc822",
		"/u/{accountId}/": "/u/a%40b/",
		"/x/{unknown}/{":  "/x//{",
	} {
		got := expandTemplate(tmpl, map[string]string{"accountId": "a@b", "blobId": "x+y", "name": "näme/", "type": "message/rfc822"})
		if got != want {
			t.Errorf("expand %q = %q, want %q", tmpl, got, want)
		}
	}
}

func TestUTCDate(t *testing.T) {
	tm := time.Date(2024, 3, 1, 12, 30, 15, 999, time.FixedZone("x", 3600))
	b, _ := json.Marshal(UTCDate(tm))
	if string(b) != `"2024-03-01T11:30:15Z"` {
		t.Errorf("UTCDate = %s", b)
	}
}

func FuzzParseSession(f *testing.F) {
	f.Add([]byte(`{"apiUrl":"/jmap/","capabilities":{"urn:ietf:params:jmap:core":{"maxCallsInRequest":0}}}`))
	f.Add([]byte(`{"apiUrl":"x","capabilities":{"urn:ietf:params:jmap:core":7}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSession(b)
		if err == nil && (s.Core.MaxCallsInRequest < 1 || s.Core.MaxObjectsInSet < 1 || s.Core.MaxConcurrentUpload < 1) {
			t.Fatalf("limits below 1 accepted: %+v", s.Core)
		}
	})
}

func FuzzExpandTemplate(f *testing.F) {
	f.Add("/d/{accountId}/{blobId}/{name}?accept={type}", "a@b")
	f.Fuzz(func(t *testing.T, tmpl, v string) {
		out := expandTemplate(tmpl, map[string]string{"accountId": v})
		if !strings.Contains(tmpl, "{") && out != tmpl {
			t.Fatalf("template without expressions changed: %q -> %q", tmpl, out)
		}
	})
}

func TestInlineBlobs(t *testing.T) {
	core := CoreCapability{MaxSizeRequest: 3 << 20, MaxSizeUpload: 1 << 30}
	acct := func(caps ...string) map[string]Account {
		ac := map[string]json.RawMessage{}
		for _, c := range caps {
			ac[c] = json.RawMessage(`{}`)
		}
		return map[string]Account{"A": {AccountCapabilities: ac}}
	}
	for name, tc := range map[string]struct {
		caps   map[string]json.RawMessage
		accts  map[string]Account
		method string
		max    int64
	}{
		"rfc9404":              {map[string]json.RawMessage{CapBlob: json.RawMessage(`{"maxSizeBlobSet":500000}`)}, acct(CapBlob), "Blob/upload", 500000},
		"rfc9404 unlimited":    {map[string]json.RawMessage{CapBlob: json.RawMessage(`{"maxSizeBlobSet":null}`)}, acct(CapBlob), "Blob/upload", 1 << 20},
		"cyrus":                {map[string]json.RawMessage{CapCyrusBlob: json.RawMessage(`{}`)}, acct(CapCyrusBlob), "Blob/set", 1 << 20},
		"none":                 {map[string]json.RawMessage{}, acct(), "", 0},
		"not for this account": {map[string]json.RawMessage{CapCyrusBlob: json.RawMessage(`{}`)}, acct(), "", 0},
	} {
		c := &Client{session: &Session{Core: core, Capabilities: tc.caps, Accounts: tc.accts}}
		ib := c.InlineBlobs("A")
		if ib.Method != tc.method || (tc.method != "" && ib.MaxSize != tc.max) {
			t.Errorf("%s: %+v, want %s up to %d", name, ib, tc.method, tc.max)
		}
	}
	b, _ := json.Marshal(InlineBlobs{Method: "Blob/upload"}.Create([]byte("hi"), "message/rfc822"))
	if string(b) != `{"data":[{"data:asBase64":"aGk="}],"type":"message/rfc822"}` {
		t.Errorf("Blob/upload create = %s", b)
	}
	b, _ = json.Marshal(InlineBlobs{Method: "Blob/set"}.Create([]byte("hi"), "message/rfc822"))
	if string(b) != `{"data:asBase64":"aGk=","type":"message/rfc822"}` {
		t.Errorf("Blob/set create = %s", b)
	}
}

// FuzzDecodeResponse feeds arbitrary API responses and problem bodies to
// the decoders; they must return errors, never panic.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"methodResponses":[["Email/get",{"list":[]},"c0"],["error",{"type":"serverUnavailable"},"c1"]],"sessionState":"s"}`))
	f.Add([]byte(`{"methodResponses":[["x"],[1,2,3],null]}`))
	f.Add([]byte(`{"type":"urn:ietf:params:jmap:error:limit","limit":"maxCallsInRequest","status":400}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wireResponse
		if json.Unmarshal(b, &r) == nil {
			for _, inv := range r.MethodResponses {
				var me MethodError
				_ = json.Unmarshal(inv.args, &me)
			}
		}
		p := decodeProblem(400, b)
		_ = p.Error()
	})
}
