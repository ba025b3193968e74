package jmap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

func TestMain(m *testing.M) { peers.Main(m) }

// cyrusAccount is a fresh Cyrus account driven over JMAP: the test's
// "older JMAP server" whose mail the source imports.
type cyrusAccount struct {
	set   *peers.Set
	acct  peers.Account
	c     *jc.Client
	id    string
	boxes map[string]string // name → Mailbox id
}

func newCyrus(t testing.TB) *cyrusAccount {
	t.Helper()
	s := peers.Get(t)
	a := s.NewAccount(t)
	c, err := jc.Discover(context.Background(), s.Cyrus.JMAPURL(), &jc.Options{Auth: jc.BasicAuth{User: a.Email, Password: a.Password}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Session().FindAccount("")
	if err != nil {
		t.Fatal(err)
	}
	ca := &cyrusAccount{set: s, acct: a, c: c, id: id}
	ca.refresh(t)
	return ca
}

func (ca *cyrusAccount) refresh(t testing.TB) {
	t.Helper()
	list, _, err := ca.c.Mailboxes(context.Background(), ca.id)
	if err != nil {
		t.Fatal(err)
	}
	ca.boxes = map[string]string{}
	for _, m := range list {
		ca.boxes[m.Name] = m.ID
	}
}

// call runs one method and fails the test on any error.
func (ca *cyrusAccount) call(t testing.TB, method string, args map[string]any, result any) {
	t.Helper()
	args["accountId"] = ca.id
	call := &jc.Call{Method: method, Args: args, Result: result}
	if err := ca.c.Exec(context.Background(), jc.UsingMail, []*jc.Call{call}); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if call.Err != nil {
		t.Fatalf("%s: %v", method, call.Err)
	}
}

// mkdir creates a mailbox (under parent, "" for the top level).
func (ca *cyrusAccount) mkdir(t testing.TB, name, parent string, subscribed bool) string {
	t.Helper()
	create := map[string]any{"name": name, "isSubscribed": subscribed}
	if parent != "" {
		create["parentId"] = ca.boxes[parent]
	}
	var r jc.SetResponse
	ca.call(t, "Mailbox/set", map[string]any{"create": map[string]any{"m": create}}, &r)
	id := r.CreatedID("m")
	if id == "" {
		t.Fatalf("mailbox %q not created: %v", name, r.NotCreated["m"])
	}
	ca.boxes[name] = id
	return id
}

// put imports a message into the named mailboxes with keywords.
func (ca *cyrusAccount) put(t testing.TB, body []byte, kws []string, boxes ...string) string {
	t.Helper()
	ctx := context.Background()
	b, err := ca.c.Upload(ctx, ca.id, "message/rfc822", int64(len(body)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(body)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mbs := map[string]bool{}
	for _, n := range boxes {
		mbs[ca.boxes[n]] = true
	}
	kw := map[string]bool{}
	for _, k := range kws {
		kw[k] = true
	}
	d := jc.UTCDate(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).Add(time.Duration(len(body)) * time.Minute))
	var r jc.ImportResponse
	ca.call(t, "Email/import", map[string]any{"emails": map[string]jc.EmailImport{
		"e": {BlobID: b.BlobID, MailboxIDs: mbs, Keywords: kw, ReceivedAt: &d}}}, &r)
	e, ok := r.Created["e"]
	if !ok {
		t.Fatalf("email not imported: %v", r.NotCreated["e"])
	}
	return e.ID
}

// update patches an Email (or, with typ "Mailbox", a mailbox).
func (ca *cyrusAccount) update(t testing.TB, typ, id string, patch map[string]any) {
	t.Helper()
	var r jc.SetResponse
	ca.call(t, typ+"/set", map[string]any{"update": map[string]any{id: patch}}, &r)
	if e := r.NotUpdated[id]; e != nil {
		t.Fatalf("%s/set update %s: %v", typ, id, e)
	}
}

func (ca *cyrusAccount) destroy(t testing.TB, id string) {
	t.Helper()
	var r jc.SetResponse
	ca.call(t, "Email/set", map[string]any{"destroy": []string{id}}, &r)
	if e := r.NotDestroyed[id]; e != nil {
		t.Fatalf("destroy %s: %v", id, e)
	}
}

// load fills the account: nested and non-ASCII mailboxes, n messages
// with varied keywords, one in two mailboxes.
func (ca *cyrusAccount) load(t testing.TB, seed uint64, n int) map[string]string {
	t.Helper()
	ca.mkdir(t, "Work", "", true)
	ca.mkdir(t, "Reports 2024", "Work", true)
	ca.mkdir(t, "Entwürfe", "", false)
	ca.mkdir(t, "日本語", "", true)
	names := []string{"Inbox", "Sent", "Archive", "Reports 2024", "Entwürfe", "日本語"}
	kwChoices := [][]string{nil, {"$seen"}, {"$seen", "$flagged"}, {"$answered", "$seen"}, {"$forwarded"}, {"$seen", "projekt-x"}}
	rng := rand.New(rand.NewPCG(seed, 3))
	ids := map[string]string{}
	for i := range n {
		boxes := []string{names[rng.IntN(len(names))]}
		if i == 2 {
			boxes = append(boxes, "Archive")
			if boxes[0] == "Archive" {
				boxes[0] = "Inbox"
			}
		}
		body := message(seed, i, 300+rng.IntN(6000))
		ids[fmt.Sprint(i)] = ca.put(t, body, kwChoices[rng.IntN(len(kwChoices))], boxes...)
	}
	return ids
}

// message builds a deterministic message with 8-bit and encoded headers.
func message(seed uint64, i, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	var b strings.Builder
	fmt.Fprintf(&b, "From: =?UTF-8?Q?J=C3=BCrgen?= <j%d@example.test>\r\nTo: someone@example.test\r\n", i)
	fmt.Fprintf(&b, "Subject: Grüße %d/%d\r\nMessage-ID: <%d.%d.%d@example.test>\r\n", seed, i, seed, i, rng.Uint64())
	fmt.Fprintf(&b, "Date: Mon, 2 Feb 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for b.Len() < size {
		fmt.Fprintf(&b, "line %d of message %d: %x äöü\r\n", b.Len(), i, rng.Uint64())
	}
	return []byte(b.String())
}

// snapshot is the account as Cyrus's own IMAP server shows it: the truth
// the archive is compared with (SPECIAL-USE roles, subscriptions,
// SHA-256 of every message, flags as keywords, internal dates).
func (ca *cyrusAccount) snapshot(t testing.TB) *vandelaytest.Want {
	t.Helper()
	return vandelaytest.SnapshotIMAP(t, ca.set.Cyrus.IMAP, ca.acct.Email, ca.acct.Password)
}

// options are the source's options for the account, through url.
func (ca *cyrusAccount) options(url string) *jmapsrc.Options {
	return &jmapsrc.Options{URL: url, Login: vandelay.Login{User: ca.acct.Email, Password: ca.acct.Password}}
}

func (ca *cyrusAccount) source(t testing.TB, url string) *jmapsrc.Source {
	t.Helper()
	src, err := jmapsrc.New(ca.options(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*jmapsrc.Source)
}

// front is a recording HTTP front between the source and Cyrus: it
// counts requests, method calls and blob downloads, and injects the
// failures the tests ask for.
type front struct {
	srv     *httptest.Server
	backend *url.URL

	mu        sync.Mutex
	requests  int
	methods   map[string]int
	downloads int
	blobs     map[string]int // downloads per blob id

	// Failures to inject.
	cannotCalc  bool   // answer Email/changes with cannotCalculateChanges
	serverFail  string // answer this method with serverFail
	truncate    bool   // cut every API response in half
	missingBlob string // answer downloads of this blob id with 404
	noMail      bool   // drop the mail capability from the session
}

func newFront(t testing.TB, backend string) *front {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	f := &front{backend: u, methods: map[string]int{}, blobs: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// URL is the session URL through the front.
func (f *front) URL() string { return f.srv.URL + "/jmap/" }

func (f *front) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests, f.downloads = 0, 0
	f.methods, f.blobs = map[string]int{}, map[string]int{}
}

func (f *front) counts() (requests int, methods map[string]int, downloads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]int{}
	for k, v := range f.methods {
		m[k] = v
	}
	return f.requests, m, f.downloads
}

func (f *front) set(fn func(f *front)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *front) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	isAPI := r.Method == http.MethodPost && strings.TrimSuffix(r.URL.Path, "/") == "/jmap"
	isDownload := strings.HasPrefix(r.URL.Path, "/jmap/download/")
	var calls [][]json.RawMessage
	if isAPI {
		f.requests++
		var req struct {
			MethodCalls [][]json.RawMessage `json:"methodCalls"`
		}
		_ = json.Unmarshal(body, &req)
		calls = req.MethodCalls
		for _, c := range calls {
			var name string
			_ = json.Unmarshal(c[0], &name)
			f.methods[name]++
			if name == "Blob/get" {
				// Blob data in the API response: a download all the same.
				var args struct {
					IDs []string `json:"ids"`
				}
				_ = json.Unmarshal(c[1], &args)
				f.downloads += len(args.IDs)
				for _, id := range args.IDs {
					f.blobs[id]++
				}
			}
		}
	}
	blob := ""
	if isDownload {
		parts := strings.Split(r.URL.Path, "/")
		if len(parts) > 4 {
			blob = parts[4]
		}
		f.downloads++
		f.blobs[blob]++
	}
	cannotCalc, serverFail, truncate, missing, noMail := f.cannotCalc, f.serverFail, f.truncate, f.missingBlob, f.noMail
	f.mu.Unlock()
	if isDownload && blob == missing {
		http.Error(w, "blob not found", http.StatusNotFound)
		return
	}
	u := *f.backend
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Authorization", "Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && isAPI && missing != "" {
		rb = hideBlob(rb, missing)
	}
	if resp.StatusCode == http.StatusOK && isAPI && (cannotCalc || serverFail != "") {
		rb = rewriteErrors(rb, func(method string) string {
			switch {
			case cannotCalc && method == "Email/changes":
				return jc.ErrCannotCalcChanges
			case method == serverFail:
				return jc.ErrServerFail
			}
			return ""
		})
	}
	if resp.StatusCode == http.StatusOK && r.Method == http.MethodGet && !isDownload && noMail {
		var s map[string]any
		if json.Unmarshal(rb, &s) == nil {
			if accts, ok := s["accounts"].(map[string]any); ok {
				for _, a := range accts {
					if am, ok := a.(map[string]any); ok {
						if caps, ok := am["accountCapabilities"].(map[string]any); ok {
							delete(caps, jc.CapMail)
						}
					}
				}
			}
			delete(s["capabilities"].(map[string]any), jc.CapMail)
			rb, _ = json.Marshal(s)
		}
	}
	if isAPI && truncate {
		rb = rb[:len(rb)/2]
	}
	for _, h := range []string{"Content-Type", "Location", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(rb)))
	w.WriteHeader(resp.StatusCode)
	w.Write(rb)
}

// hideBlob makes Blob/get responses report blob as notFound.
func hideBlob(body []byte, blob string) []byte {
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil {
		return body
	}
	var invs [][]json.RawMessage
	if json.Unmarshal(resp["methodResponses"], &invs) != nil {
		return body
	}
	for i, inv := range invs {
		var name string
		_ = json.Unmarshal(inv[0], &name)
		if name != "Blob/get" {
			continue
		}
		var args map[string]any
		if json.Unmarshal(inv[1], &args) != nil {
			continue
		}
		list, _ := args["list"].([]any)
		var kept []any
		for _, it := range list {
			if m, ok := it.(map[string]any); ok && m["id"] == blob {
				continue
			}
			kept = append(kept, it)
		}
		args["list"] = kept
		args["notFound"] = append([]any{blob}, func() []any { nf, _ := args["notFound"].([]any); return nf }()...)
		invs[i][1], _ = json.Marshal(args)
	}
	resp["methodResponses"], _ = json.Marshal(invs)
	out, _ := json.Marshal(resp)
	return out
}

// rewriteErrors replaces the responses of the methods errType names with
// method-level errors of that type.
func rewriteErrors(body []byte, errType func(method string) string) []byte {
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil {
		return body
	}
	var invs [][]json.RawMessage
	if json.Unmarshal(resp["methodResponses"], &invs) != nil {
		return body
	}
	for i, inv := range invs {
		var name string
		_ = json.Unmarshal(inv[0], &name)
		if typ := errType(name); typ != "" {
			invs[i] = []json.RawMessage{json.RawMessage(`"error"`), json.RawMessage(`{"type":"` + typ + `"}`), inv[2]}
		}
	}
	resp["methodResponses"], _ = json.Marshal(invs)
	out, _ := json.Marshal(resp)
	return out
}

// importOnce runs one import and fails the test on any error.
func importOnce(t testing.TB, a *archive.Archive, src vandelay.MailSource) *archive.Result {
	t.Helper()
	res, err := vandelay.Import(context.Background(), src, a, nil)
	if err != nil || res == nil {
		t.Fatalf("import: %v", err)
	}
	return res
}

// bulk imports n generated messages, 100 per request: the blobs inline
// (Cyrus's Blob/set) and one Email/import referring to them, spread over
// the named mailboxes.
func (ca *cyrusAccount) bulk(t testing.TB, seed uint64, n int, boxes ...string) {
	t.Helper()
	ib := ca.c.InlineBlobs(ca.id)
	if ib.Method == "" {
		t.Fatal("the server takes no inline blobs")
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	blobs := map[string]any{}
	emails := map[string]jc.EmailImport{}
	flush := func() {
		if len(emails) == 0 {
			return
		}
		var br jc.SetResponse
		var r jc.ImportResponse
		bc := &jc.Call{Method: ib.Method, Args: map[string]any{"accountId": ca.id, "create": blobs}, Result: &br}
		ic := &jc.Call{Method: "Email/import", Args: map[string]any{"accountId": ca.id, "emails": emails}, Result: &r}
		if err := ca.c.Exec(context.Background(), append(append([]string{}, jc.UsingMail...), ib.Capability), []*jc.Call{bc, ic}); err != nil {
			t.Fatal(err)
		}
		if err := jc.FirstError(bc, ic); err != nil || len(r.NotCreated)+len(br.NotCreated) > 0 {
			t.Fatalf("bulk import: %v, %d blobs and %d emails refused", err, len(br.NotCreated), len(r.NotCreated))
		}
		blobs, emails = map[string]any{}, map[string]jc.EmailImport{}
	}
	for i := range n {
		body := message(seed, i, 500+rng.IntN(8000))
		kw := map[string]bool{}
		if i%3 == 0 {
			kw["$seen"] = true
		}
		d := jc.UTCDate(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour))
		id := fmt.Sprint("b", i)
		blobs[id] = ib.Create(body, "message/rfc822")
		emails[fmt.Sprint("e", i)] = jc.EmailImport{BlobID: "#" + id, MailboxIDs: map[string]bool{ca.boxes[boxes[i%len(boxes)]]: true}, Keywords: kw, ReceivedAt: &d}
		if len(emails) == 100 {
			flush()
		}
	}
	flush()
}
