package httpproxy

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBearerIdentity(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := map[string]struct {
		token    string
		claims   []string
		wantID   string
		wantKind TokenKind
	}{
		"sw1":                  {"sw1.Ym9keQ." + enc([]byte("user@example.com")), nil, "user@example.com", TokenStalwart},
		"sw1 dotted body":      {"sw1.a.b.c." + enc([]byte("u@x")), nil, "u@x", TokenStalwart},
		"sw1 padded":           {"sw1.body." + base64.URLEncoding.EncodeToString([]byte("ab@x")), nil, "ab@x", TokenStalwart},
		"sw1 no footer":        {"sw1.bodyonly", nil, "", TokenOpaque},
		"sw1 bad footer":       {"sw1.body.!!!notbase64!!!", nil, "", TokenOpaque},
		"sw1 control chars":    {"sw1.body." + enc([]byte("a\nb")), nil, "", TokenOpaque},
		"jwt email":            {jwt(`{"email":"alice@example.com","sub":"x"}`), nil, "alice@example.com", TokenJWT},
		"jwt upn":              {jwt(`{"upn":"carol@corp.com","sub":"x"}`), nil, "carol@corp.com", TokenJWT},
		"jwt @ wins":           {jwt(`{"preferred_username":"bob","sub":"bob@corp.com"}`), nil, "bob@corp.com", TokenJWT},
		"jwt bare login":       {jwt(`{"preferred_username":"bob","sub":"1234"}`), nil, "bob", TokenJWT},
		"jwt configured claim": {jwt(`{"login":"d@corp.com","email":"e@corp.com"}`), []string{"login"}, "d@corp.com", TokenJWT},
		"jwt non-string claim": {jwt(`{"email":42}`), nil, "", TokenOpaque},
		"jwt not json":         {"aGVhZA.bm90IGpzb24.sig", nil, "", TokenOpaque},
		"opaque":               {"2YotnFZFEjr1zCsicMWpAA", nil, "", TokenOpaque},
		"empty":                {"", nil, "", TokenOpaque},
		"huge":                 {strings.Repeat("a", maxTokenSize+1), nil, "", TokenOpaque},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id, kind := BearerIdentity(tc.token, tc.claims)
			if id != tc.wantID || kind != tc.wantKind {
				t.Errorf("got %q %s, want %q %s", id, kind, tc.wantID, tc.wantKind)
			}
		})
	}
}

func TestPublicURL(t *testing.T) {
	backend, _ := url.Parse("http://10.0.0.5:8080/")
	prefixed, _ := url.Parse("https://dav.internal/remote.php/dav")
	public, _ := url.Parse("https://mail.example.org")
	tests := map[string]struct {
		in      string
		backend *url.URL
		force   bool
		want    string
	}{
		"backend absolute":      {"http://10.0.0.5:8080/jmap", backend, false, "https://mail.example.org/jmap"},
		"foreign host stays":    {"https://idp.example.com/auth?x=1", backend, false, "https://idp.example.com/auth?x=1"},
		"foreign host forced":   {"https://internal.example/jmap/api", backend, true, "https://mail.example.org/jmap/api"},
		"relative":              {"/dav/x/", backend, false, "/dav/x/"},
		"relative forced":       {"/jmap/", backend, true, "https://mail.example.org/jmap/"},
		"template":              {"http://10.0.0.5:8080/d/{accountId}/{blobId}?accept={type}", backend, true, "https://mail.example.org/d/{accountId}/{blobId}?accept={type}"},
		"prefix stripped":       {"https://dav.internal/remote.php/dav/calendars/u/", prefixed, false, "https://mail.example.org/calendars/u/"},
		"prefix root":           {"/remote.php/dav", prefixed, false, "/"},
		"ws":                    {"ws://10.0.0.5:8080/ws", backend, true, "wss://mail.example.org/ws"},
		"mailto":                {"mailto:x@y", backend, true, "mailto:x@y"},
		"scheme-relative stays": {"//evil.example/x", backend, true, "//evil.example/x"},
		"default port":          {"http://10.0.0.5:8080/x", backend, false, "https://mail.example.org/x"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := publicURL(tc.in, tc.backend, public, tc.force); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRewriteSession(t *testing.T) {
	backend, _ := url.Parse("http://127.0.0.1:20038/")
	public, _ := url.Parse("https://mail.example.org")
	in := `{"apiUrl":"/jmap/","downloadUrl":"/jmap/download/{accountId}/{blobId}/{name}?accept={type}","uploadUrl":"http://127.0.0.1:20038/jmap/upload/{accountId}/","eventSourceUrl":"/jmap/eventsource/?types={types}","capabilities":{"urn:ietf:params:jmap:core":{"maxSizeUpload":1073741824},"urn:ietf:params:jmap:websocket":{"url":"/jmap/ws/","supportsPush":true}},"accounts":{"a":{"name":"a & b <c>"}},"state":"0"}`
	out, ok := RewriteSession([]byte(in), backend, public)
	if !ok {
		t.Fatal("not recognised as a session")
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"apiUrl":         "https://mail.example.org/jmap/",
		"downloadUrl":    "https://mail.example.org/jmap/download/{accountId}/{blobId}/{name}?accept={type}",
		"uploadUrl":      "https://mail.example.org/jmap/upload/{accountId}/",
		"eventSourceUrl": "https://mail.example.org/jmap/eventsource/?types={types}",
		"capabilities": map[string]any{
			"urn:ietf:params:jmap:core":      map[string]any{"maxSizeUpload": float64(1073741824)},
			"urn:ietf:params:jmap:websocket": map[string]any{"url": "wss://mail.example.org/jmap/ws/", "supportsPush": true},
		},
		"accounts": map[string]any{"a": map[string]any{"name": "a & b <c>"}},
		"state":    "0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Error(diff)
	}
	if !strings.Contains(string(out), "1073741824") {
		t.Error("large numbers must keep their exact form")
	}
	for _, notSession := range []string{`[]`, `{"apiUrl":1,"capabilities":{}}`, `{"capabilities":{}}`, `{"apiUrl":"/x"}`, `not json`, `{"apiUrl":"/x","capabilities":{}} trailing`} {
		if _, ok := RewriteSession([]byte(notSession), backend, public); ok {
			t.Errorf("%s recognised as a session", notSession)
		}
	}
}

// FuzzBearerToken: the token parser never panics and only returns
// identifiers that are safe to look up.
func FuzzBearerToken(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{
		"sw1.body." + enc([]byte("u@example.com")),
		"sw1.",
		"sw1..",
		jwt(`{"email":"a@b"}`),
		jwt(`{"sub":["x"]}`),
		"a.b.c",
		"..",
		"eyJ.eyJ.x",
		"opaque",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, kind := BearerIdentity(tok, nil)
		if kind == TokenOpaque && id != "" {
			t.Fatalf("opaque token with identity %q", id)
		}
		if kind != TokenOpaque && !validIdentifier(id) {
			t.Fatalf("invalid identity %q from %q", id, tok)
		}
	})
}

// FuzzSessionRewrite: arbitrary session bodies never panic the rewriter,
// and a rewritten body is valid JSON.
func FuzzSessionRewrite(f *testing.F) {
	f.Add(`{"apiUrl":"/jmap/","capabilities":{"urn:ietf:params:jmap:websocket":{"url":"ws://h/x"}}}`)
	f.Add(`{"apiUrl":"http://[::1]:80/x","uploadUrl":"https://h:443","capabilities":{}}`)
	backend, _ := url.Parse("http://h:80/p")
	public, _ := url.Parse("https://pub.example")
	f.Fuzz(func(t *testing.T, body string) {
		out, ok := RewriteSession([]byte(body), backend, public)
		if ok && !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}
