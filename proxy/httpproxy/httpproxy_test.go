package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/routes"
)

// TestMain stops a peer set started for these tests and fails the run when
// the proxy recovered a panic.
func TestMain(m *testing.M) { proxytest.Main(m) }

// env is the HTTP proxy in front of the real DAV/JMAP peers and two small
// in-process backends (alpha, beta) that say who they are.
type env struct {
	t      testing.TB
	set    *peers.Set // nil for in-process-only tests
	store  *routes.Store
	w      *routes.Watcher
	router *proxy.TableRouter
	p      *Proxy
	url    string // proxy origin, "http://127.0.0.1:port"
	addr   string
}

// echoBackend answers every request with its name and the path.
func echoBackend(t testing.TB, name string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Backend", name)
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		// The second event waits until the client saw the first one: a
		// buffering proxy would deadlock here until the test times out.
		select {
		case <-release(r):
		case <-r.Context().Done():
			return
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: two\n\n")
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, name+" echo "+line)
		brw.Flush()
	})
	mux.HandleFunc("/jmap/session", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"apiUrl":"https://internal.%s.example/jmap/api","downloadUrl":"/jmap/download/{accountId}/{blobId}/{name}?accept={type}","uploadUrl":"https://internal.%s.example/jmap/upload/{accountId}/","eventSourceUrl":"https://internal.%s.example/jmap/events?types={types}","capabilities":{"urn:ietf:params:jmap:core":{},"urn:ietf:params:jmap:websocket":{"url":"wss://internal.%s.example/jmap/ws","supportsPush":true}},"accounts":{},"username":"x","state":"1"}`, name, name, name, name)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// secureBackend is an https backend whose certificate only the
// endpoint's own TLS configuration trusts.
func secureBackend(t testing.TB) *proxy.Backend {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secure ", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &proxy.Backend{Name: "secure", Endpoints: map[proxy.Protocol]proxy.Endpoint{
		proxy.HTTP: {URL: srv.URL + "/", TLS: proxy.TLSImplicit, TLSConfig: &tls.Config{RootCAs: pool}},
	}}
}

var releases = map[string]chan struct{}{}

func release(r *http.Request) chan struct{} { return releases[r.URL.Query().Get("id")] }

func newEnv(t *testing.T, real bool) *env { return newBenchEnv(t, real) }

// newBenchEnv is newEnv for tests and benchmarks; extra backends join the
// router's.
func newBenchEnv(t testing.TB, real bool, extra ...*proxy.Backend) *env {
	t.Helper()
	e := &env{t: t}
	ctx := context.Background()
	var backends []*proxy.Backend
	httpBackend := func(name, u string) *proxy.Backend {
		return &proxy.Backend{Name: name, Endpoints: map[proxy.Protocol]proxy.Endpoint{proxy.HTTP: {URL: u, AllowPlaintext: true}}}
	}
	if real {
		e.set = peers.Get(t)
		backends = append(backends,
			httpBackend("cyrus", "http://"+e.set.Cyrus.HTTP+"/"),
			httpBackend("radicale", e.set.Radicale.URL),
			httpBackend("webdav", strings.TrimSuffix(e.set.WebDAV.URL, "files/")),
		)
	}
	ln0, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln0.Addr().String()
	ln0.Close()
	backends = append(backends,
		httpBackend("alpha", echoBackend(t, "alpha").URL),
		httpBackend("beta", echoBackend(t, "beta").URL),
		httpBackend("down", "http://"+closed+"/"),
		&proxy.Backend{Name: "plain", Endpoints: map[proxy.Protocol]proxy.Endpoint{proxy.HTTP: {URL: "http://" + closed + "/"}}},
		secureBackend(t),
	)
	backends = append(backends, extra...)
	store, err := routes.Open(ctx, filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w, err := routes.NewWatcher(ctx, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.w = store, w
	e.router = proxy.NewRouter(w, backends, nil)
	t.Cleanup(e.router.Close)
	e.serve(nil)
	return e
}

// serve (re)starts the proxy with extra options.
func (e *env) serve(extra func(*Options)) {
	e.t.Helper()
	opts := &Options{Router: e.router, RetryAfter: 7 * time.Second}
	if extra != nil {
		extra(opts)
	}
	p, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go p.Serve(ln)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		if n := p.Panics(); n != 0 {
			e.t.Errorf("proxy recovered %d panics", n)
		}
	})
	e.p, e.addr, e.url = p, ln.Addr().String(), "http://"+ln.Addr().String()
}

func (e *env) route(acct, backend string) {
	e.t.Helper()
	if _, err := e.store.Set(context.Background(), acct, backend); err != nil {
		e.t.Fatal(err)
	}
	if err := e.w.Refresh(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) freeze(acct string) {
	e.t.Helper()
	if _, err := e.store.Freeze(context.Background(), acct); err != nil {
		e.t.Fatal(err)
	}
	if err := e.w.Refresh(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func get(t *testing.T, url string, auth func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != nil {
		auth(req)
	}
	return do(t, req)
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(claims)) + ".c2lnbmF0dXJl"
}

// jmapCall posts one JMAP request through the proxy.
func jmapCall(t *testing.T, apiURL, user, pass string, calls string) map[string]any {
	t.Helper()
	body := `{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":` + calls + `}`
	req, _ := http.NewRequest(http.MethodPost, apiURL, strings.NewReader(body))
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, b := do(t, req)
	if resp.StatusCode != 200 {
		t.Fatalf("JMAP %s: %s\n%s", apiURL, resp.Status, b)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		t.Fatalf("JMAP answer: %v\n%s", err, b)
	}
	return out
}

// TestJMAPCyrus: Go's net/http against Cyrus through the proxy: the
// well-known redirect and the session URLs point at the proxy, and an
// upload, Email/import, Email/get and a download work through it.
func TestJMAPCyrus(t *testing.T) {
	e := newEnv(t, true)
	a := e.set.NewAccount(t)
	e.route(a.Email, "cyrus")

	resp, body := get(t, e.url+"/.well-known/jmap", basic(a.Email, a.Password))
	if resp.StatusCode != 200 {
		t.Fatalf("session: %s\n%s", resp.Status, body)
	}
	if got := resp.Request.URL.String(); !strings.HasPrefix(got, e.url+"/") {
		t.Errorf("redirect left the proxy: %s", got)
	}
	var sess struct {
		APIURL, DownloadURL, UploadURL, EventSourceURL string
		PrimaryAccounts                                map[string]string
	}
	if err := json.Unmarshal([]byte(body), &sess); err != nil {
		t.Fatal(err)
	}
	for name, u := range map[string]string{"apiUrl": sess.APIURL, "downloadUrl": sess.DownloadURL, "uploadUrl": sess.UploadURL, "eventSourceUrl": sess.EventSourceURL} {
		if !strings.HasPrefix(u, e.url+"/jmap/") {
			t.Errorf("%s = %q, want the proxy origin %s", name, u, e.url)
		}
	}
	acct := sess.PrimaryAccounts["urn:ietf:params:jmap:mail"]

	raw := "From: <x@remote.example>\r\nTo: <" + a.Email + ">\r\nSubject: through the proxy\r\nMessage-ID: <p1@example.test>\r\n\r\nhello\r\n"
	up := strings.ReplaceAll(sess.UploadURL, "{accountId}", acct)
	req, _ := http.NewRequest(http.MethodPost, up, strings.NewReader(raw))
	req.SetBasicAuth(a.Email, a.Password)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, b := do(t, req)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("upload: %s %s", resp.Status, b)
	}
	var blob struct{ BlobID string }
	json.Unmarshal([]byte(b), &blob)

	mb := jmapCall(t, sess.APIURL, a.Email, a.Password, `[["Mailbox/get",{"accountId":"`+acct+`","properties":["role"]},"0"]]`)
	inbox := ""
	for _, m := range mb["methodResponses"].([]any)[0].([]any)[1].(map[string]any)["list"].([]any) {
		if m.(map[string]any)["role"] == "inbox" {
			inbox = m.(map[string]any)["id"].(string)
		}
	}
	imp := jmapCall(t, sess.APIURL, a.Email, a.Password, `[["Email/import",{"accountId":"`+acct+`","emails":{"e1":{"blobId":"`+blob.BlobID+`","mailboxIds":{"`+inbox+`":true}}}},"0"]]`)
	created, _ := imp["methodResponses"].([]any)[0].([]any)[1].(map[string]any)["created"].(map[string]any)
	e1, _ := created["e1"].(map[string]any)
	id, _ := e1["id"].(string)
	if id == "" {
		t.Fatalf("Email/import through the proxy: %v", imp)
	}
	eg := jmapCall(t, sess.APIURL, a.Email, a.Password, `[["Email/get",{"accountId":"`+acct+`","ids":["`+id+`"],"properties":["subject","blobId"]},"1"]]`)
	got, _ := eg["methodResponses"].([]any)[0].([]any)[1].(map[string]any)["list"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["subject"] != "through the proxy" {
		t.Fatalf("Email/get through the proxy: %v", eg)
	}
	dl := strings.NewReplacer("{accountId}", acct, "{blobId}", got[0].(map[string]any)["blobId"].(string), "{name}", "m.eml", "{type}", "message/rfc822").Replace(sess.DownloadURL)
	resp, b = get(t, dl, basic(a.Email, a.Password))
	if resp.StatusCode != 200 || sha256.Sum256([]byte(b)) != sha256.Sum256([]byte(raw)) {
		t.Errorf("download: %s, %d bytes, hash differs from the upload", resp.Status, len(b))
	}

	// Wrong password: the backend's 401 passes through.
	resp, _ = get(t, e.url+"/jmap/", basic(a.Email, "wrong"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %s, want 401", resp.Status)
	}
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed (testdata/peers/install.sh installs it)")
		}
		t.Skip("curl is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestDAVPropfind runs curl PROPFIND through the proxy to Cyrus CalDAV and
// to Radicale, each account routed to its server, and a WebDAV PUT/GET
// round trip to Apache.
func TestDAVPropfind(t *testing.T) {
	e := newEnv(t, true)
	c, r, w := e.set.NewAccount(t), e.set.NewAccount(t), e.set.NewAccount(t)
	e.route(c.Email, "cyrus")
	e.route(r.Email, "radicale")
	e.route(w.Email, "webdav")
	propfind := `<propfind xmlns="DAV:"><prop><displayname/><resourcetype/></prop></propfind>`
	tests := map[string]struct {
		acct peers.Account
		path string
		want string
	}{
		"cyrus":    {c, "/dav/calendars/user/" + c.Email + "/", "Default"},
		"radicale": {r, "/" + r.Email + "/", "calendar"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := curl(t, "-u", tc.acct.Email+":"+tc.acct.Password, "-X", "PROPFIND", "-H", "Depth: 1",
				"-H", "Content-Type: application/xml", "--data", propfind, "-w", "\n%{http_code}", e.url+tc.path)
			if !strings.HasSuffix(out, "\n207") || !strings.Contains(out, tc.want) {
				t.Errorf("PROPFIND through the proxy:\n%s", out)
			}
		})
	}
	t.Run("webdav", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "blob.bin")
		data := bytes.Repeat([]byte("mailmig\x00\xff"), 20000)
		os.WriteFile(f, data, 0o600)
		u := e.url + "/files/" + w.Email + "/blob.bin"
		curl(t, "-u", w.Email+":"+w.Password, "-T", f, "-f", u)
		out := curl(t, "-u", w.Email+":"+w.Password, "-f", u)
		if sha256.Sum256([]byte(out)) != sha256.Sum256(data) {
			t.Errorf("WebDAV GET through the proxy returned %d bytes, not what was PUT", len(out))
		}
	})
}

// TestBearerRouting routes by JWT claim, Stalwart sw1 token and
// introspected opaque token.
func TestBearerRouting(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	e.route("bob@example.test", "beta")

	var asked atomic.Int32
	intro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if u, p, _ := r.BasicAuth(); u != "proxy" || p != "s3cret" {
			http.Error(w, "client auth", http.StatusUnauthorized)
			return
		}
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		switch r.PostForm.Get("token") {
		case "opaque-bob":
			fmt.Fprintf(w, `{"active":true,"username":"bob@example.test","exp":%d}`, time.Now().Add(time.Hour).Unix())
		default:
			fmt.Fprint(w, `{"active":false}`)
		}
	}))
	t.Cleanup(intro.Close)
	e.serve(func(o *Options) {
		o.Introspection = []Introspection{{URL: intro.URL, ClientID: "proxy", ClientSecret: "s3cret"}}
	})

	sw1 := "sw1.Zm9vYmFy." + base64.RawURLEncoding.EncodeToString([]byte("bob@example.test"))
	tests := map[string]struct {
		auth       func(*http.Request)
		wantStatus int
		wantBody   string
	}{
		"jwt email":              {bearer(jwt(`{"sub":"123","email":"ann@example.test"}`)), 200, "alpha"},
		"jwt preferred_username": {bearer(jwt(`{"sub":"123","preferred_username":"bob@example.test"}`)), 200, "beta"},
		"jwt upn":                {bearer(jwt(`{"upn":"ann@example.test"}`)), 200, "alpha"},
		"sw1":                    {bearer(sw1), 200, "beta"},
		"opaque":                 {bearer("opaque-bob"), 200, "beta"},
		"opaque again (cached)":  {bearer("opaque-bob"), 200, "beta"},
		"opaque unknown":         {bearer("opaque-nobody"), 401, ""},
		"basic":                  {basic("ann@example.test", "x"), 200, "alpha"},
		"no credentials":         {nil, 401, ""},
		"unknown account":        {basic("zed@example.test", "x"), 401, ""},
		"malformed basic":        {func(r *http.Request) { r.Header.Set("Authorization", "Basic !!!") }, 401, ""},
	}
	for _, name := range []string{"jwt email", "jwt preferred_username", "jwt upn", "sw1", "opaque", "opaque again (cached)", "opaque unknown", "basic", "no credentials", "unknown account", "malformed basic"} {
		tc := tests[name]
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, e.url+"/x", tc.auth)
			if resp.StatusCode != tc.wantStatus || !strings.HasPrefix(body, tc.wantBody) {
				t.Errorf("got %s %q, want %d %q", resp.Status, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("introspection asked %d times, want 2 (one per distinct token, then cached)", n)
	}
}

// TestFrozenAndDown: a frozen account gets 503 with Retry-After; a
// request with credentials for an unreachable backend, or one the proxy
// will not send credentials to, gets the one 401 of an unknown account,
// since no backend checked the credentials (issue 10, finding 3).
func TestFrozenAndDown(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	e.route("dan@example.test", "down")
	e.route("pat@example.test", "plain")
	e.freeze("ann@example.test")
	m := proxy.NewMetrics()
	lim := proxy.NewServer(&proxy.Options{Metrics: m})
	e.serve(func(o *Options) { o.Metrics, o.AuthLimiter = m, lim })
	resp, _ := get(t, e.url+"/x", basic("ann@example.test", "x"))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("frozen: %s Retry-After %q, want 503 and 7", resp.Status, resp.Header.Get("Retry-After"))
	}
	_, unknown := get(t, e.url+"/x", basic("zed@example.test", "x"))
	resp, body := get(t, e.url+"/x", basic("dan@example.test", "x"))
	if resp.StatusCode != 401 || body != unknown {
		t.Errorf("backend down: %s %q, want 401 %q", resp.Status, body, unknown)
	}
	// Credentials never go over plain HTTP unless the endpoint allows it.
	resp, body = get(t, e.url+"/x", basic("pat@example.test", "x"))
	if resp.StatusCode != 401 || body != unknown {
		t.Errorf("plaintext backend: %s %q, want 401 %q", resp.Status, body, unknown)
	}
	if n := m.Get(proxy.MetricBackendErrors, "proto", "http", "backend", "down"); n != 1 {
		t.Errorf("backend errors counted: %d, want 1", n)
	}
	// Every refusal counts toward the failed-login limit, whatever the
	// cause (the unknown account, the down and the plaintext backend);
	// the frozen account is not a failed login.
	if n := m.Get(proxy.MetricAuthFailures, "proto", "http"); n != 3 {
		t.Errorf("failed logins counted: %d, want 3", n)
	}
	if n := m.Get(proxy.MetricRouteLookups, "proto", "http", "result", "frozen"); n != 1 {
		t.Errorf("frozen lookups counted: %d, want 1", n)
	}
}

// TestSessionRewriteAbsolute: absolute session URLs of whatever host the
// backend believes it has move to the public origin; ws becomes ws.
func TestSessionRewriteAbsolute(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	resp, body := get(t, e.url+"/jmap/session", basic("ann@example.test", "x"))
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"apiUrl":         e.url + "/jmap/api",
		"downloadUrl":    e.url + "/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
		"uploadUrl":      e.url + "/jmap/upload/{accountId}/",
		"eventSourceUrl": e.url + "/jmap/events?types={types}",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %v, want %s", k, s[k], v)
		}
	}
	ws := s["capabilities"].(map[string]any)["urn:ietf:params:jmap:websocket"].(map[string]any)
	if ws["url"] != "ws://"+e.addr+"/jmap/ws" || ws["supportsPush"] != true {
		t.Errorf("websocket capability: %v", ws)
	}
}

// TestStreaming: an EventSource stream reaches the client event by event,
// and a WebSocket upgrade is tunnelled.
func TestStreaming(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	releases["s1"] = make(chan struct{})
	req, _ := http.NewRequest(http.MethodGet, e.url+"/events?id=s1", nil)
	req.SetBasicAuth("ann@example.test", "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event: %q %v", line, err)
	}
	close(releases["s1"])
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: two") {
		t.Errorf("second event: %q", rest)
	}

	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	auth := base64.StdEncoding.EncodeToString([]byte("ann@example.test:x"))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", e.addr, auth)
	cr := bufio.NewReader(c)
	status, _ := cr.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade: %q", status)
	}
	for {
		l, err := cr.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	fmt.Fprint(c, "ping\n") // after 101: RFC 6455 4.1
	echo, _ := cr.ReadString('\n')
	if echo != "alpha echo ping\n" {
		t.Errorf("tunnel: %q", echo)
	}
}

// TestFlipClosesKeepAlive: after a flip the account's idle keep-alive
// connection is closed by the proxy; the next request on a new connection
// reaches the new backend.
func TestFlipClosesKeepAlive(t *testing.T) {
	e := newEnv(t, false)
	e.route("ann@example.test", "alpha")
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	auth := base64.StdEncoding.EncodeToString([]byte("ann@example.test:x"))
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n\r\n", e.addr, auth)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(b), "alpha") {
		t.Fatalf("before flip: %q", b)
	}
	e.route("ann@example.test", "beta")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive after flip: %v, want EOF (closed by the proxy)", err)
	}
	_, body := get(t, e.url+"/x", basic("ann@example.test", "x"))
	if !strings.HasPrefix(body, "beta") {
		t.Errorf("after flip: %q, want beta", body)
	}
}

// TestAnonymousBackend: requests without credentials (CORS preflight,
// discovery) go to the configured backend; with credentials, routing is
// unchanged.
func TestAnonymousBackend(t *testing.T) {
	e := newEnv(t, false)
	e.route("bob@example.test", "beta")
	e.serve(func(o *Options) { o.AnonymousBackend = "alpha" })
	req, _ := http.NewRequest(http.MethodOptions, e.url+"/jmap/", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "alpha") {
		t.Errorf("anonymous: %s %q, want alpha", resp.Status, body)
	}
	if _, body := get(t, e.url+"/x", basic("bob@example.test", "x")); !strings.HasPrefix(body, "beta") {
		t.Errorf("with credentials: %q, want beta", body)
	}
}

// TestHTTPSBackend: an https backend is reached with its endpoint's own
// TLS configuration (a private CA here).
func TestHTTPSBackend(t *testing.T) {
	e := newEnv(t, false)
	e.route("sue@example.test", "secure")
	resp, body := get(t, e.url+"/x", basic("sue@example.test", "x"))
	if resp.StatusCode != 200 || body != "secure /x" {
		t.Errorf("https backend: %s %q", resp.Status, body)
	}
}
