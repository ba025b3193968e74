package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawResponse is one response read off a raw HTTP connection.
type rawResponse struct {
	Status int
	Header http.Header
	Body   string
}

// rawHTTP writes raw (request heads and bodies exactly as given) on a new
// connection to addr and reads every response the server sends until it
// closes the connection or, after its first answer (30 s allowed), stays
// silent for 1.5 s (at most 10 answers; the tests that keep connections
// open run in parallel).
func rawHTTP(t *testing.T, addr, raw string) []rawResponse {
	t.Helper()
	// A refused login is answered no earlier than the failure delay, which
	// learns the slowest backend refusal of the last minutes up to 10 s
	// (proxy.FailureDelay): on a loaded machine every refusal may then
	// take 10 s, so waiting exactly that long read as "no answer" (a CI
	// run of TestHostileForgedTokens). A connection the proxy closes ends
	// the wait at once.
	return rawHTTPWait(t, addr, raw, 30*time.Second)
}

// rawHTTPWait is rawHTTP waiting at most first for the first answer.
func rawHTTPWait(t *testing.T, addr, raw string, first time.Duration) []rawResponse {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	go nc.Write([]byte(raw))
	br := bufio.NewReader(nc)
	var out []rawResponse
	for len(out) < 10 {
		wait := first
		if len(out) > 0 {
			wait = 1500 * time.Millisecond
		}
		nc.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		out = append(out, rawResponse{resp.StatusCode, resp.Header, string(b)})
	}
	return out
}

func basicAuth(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// session fetches the JMAP session through the proxy with the Cyrus
// account's password and checks it is that account's: a request after an
// attack is answered as its own.
func (h *hostile) session(t *testing.T) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+h.addr["http"]+"/jmap/", nil)
	req.SetBasicAuth(h.Cyrus.Email, h.Cyrus.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct{ Username string }
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil || resp.StatusCode != 200 || sess.Username != h.Cyrus.Email {
		t.Errorf("JMAP session after the attack: %s, username %q (%v)", resp.Status, sess.Username, err)
	}
}

// TestHostileRequestSmuggling: a client frames one request two ways —
// Content-Length and Transfer-Encoding together (CL.TE and TE.CL),
// obfuscated Transfer-Encoding values, two different Content-Lengths, a
// space before the colon, a signed length — hoping the proxy and the
// backend disagree on where a request ends, so that a second request
// hidden in the body reaches the backend on the proxy's connection
// (with another client's credentials, or without the proxy's routing).
// Promise: the proxy refuses ambiguous framing (400/501) or reads one
// framing and forwards the request re-framed (httputil.ReverseProxy
// writes its own Content-Length or chunks), so that anything read after
// the first request is a request of its own, authenticated on its own —
// here 401, as it has no credentials; nothing is ever answered 2xx, and
// the next client's request gets its own answer.
func TestHostileRequestSmuggling(t *testing.T) {
	h := startHostile(t, hostileOptions{})
	auth := "Authorization: " + basicAuth(h.Cyrus.Email, h.Cyrus.Password) + "\r\n"
	smuggled := "GET /jmap/ HTTP/1.1\r\nHost: x\r\n\r\n"
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
	tests := map[string]string{
		"CL.TE": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n", 5+len(smuggled)) + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE.CL": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk,
		"TE xchunked": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE chunked, identity": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"TE twice": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE space before colon": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n", 5+len(smuggled)) + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"TE tab": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			"Content-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n" + smuggled,
		"CL twice": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled,
		"CL signed": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: +%d\r\n\r\n", len(smuggled)) + smuggled,
		"CL list": "POST /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: 0, %d\r\n\r\n", len(smuggled)) + smuggled,
		"GET with body": "GET /jmap/smuggle-probe HTTP/1.1\r\nHost: x\r\n" + auth +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled,
		"HTTP/1.0 keep-alive TE": "POST /jmap/smuggle-probe HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n" + auth +
			"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled,
	}
	for name, raw := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rs := rawHTTP(t, h.addr["http"], raw)
			if len(rs) == 0 {
				return // closed without an answer: refused
			}
			var got []int
			for _, r := range rs {
				got = append(got, r.Status)
			}
			t.Logf("%s: answers %v", name, got)
			for i, r := range rs {
				if r.Status/100 == 2 {
					t.Errorf("answer %d of %v is %d: %.200s", i, got, r.Status, r.Body)
				}
				if i > 0 && r.Status != http.StatusUnauthorized && r.Status != http.StatusBadRequest {
					t.Errorf("the request after the first (the smuggled GET without credentials) got %d, want 401", r.Status)
				}
			}
			h.session(t)
		})
	}
}

// TestHostilePathTraversal: a client asks for files outside the DAV and
// JMAP trees with dot segments, plain and percent-encoded once and twice,
// with backslashes and with ";" parameters, with and without credentials.
// Promise: the proxy serves no files of its own and routes by credentials
// only: without them every such request is 401 (or 400 for an unparsable
// target), with them it goes to the account's backend, and no answer ever
// holds a local file.
func TestHostilePathTraversal(t *testing.T) {
	h := startHostile(t, hostileOptions{})
	targets := []string{
		"/../../../../etc/passwd",
		"/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
		"/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
		"/%252e%252e/%252e%252e/etc/passwd",
		"/jmap/..%2f..%2f..%2fetc%2fpasswd",
		"/.well-known/../../../etc/passwd",
		"/dav/calendars/user/x/..;/..;/..;/etc/passwd",
		"/..\\..\\..\\etc\\passwd",
		"//etc/passwd",
		"/./././etc/passwd",
		"/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
		"/..%00/etc/passwd",
	}
	for _, target := range targets {
		for _, withAuth := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/auth=%v", target, withAuth), func(t *testing.T) {
				head := "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				if withAuth {
					head += "Authorization: " + basicAuth(h.Cyrus.Email, h.Cyrus.Password) + "\r\n"
				}
				rs := rawHTTP(t, h.addr["http"], head+"\r\n")
				if len(rs) != 1 {
					t.Fatalf("%d answers", len(rs))
				}
				r := rs[0]
				if strings.Contains(r.Body, "root:") {
					t.Errorf("%d with a local file:\n%.300s", r.Status, r.Body)
				}
				if !withAuth && r.Status != http.StatusUnauthorized && r.Status != http.StatusBadRequest {
					t.Errorf("without credentials: %d, want 401", r.Status)
				}
				if withAuth && r.Status/100 == 2 {
					t.Errorf("with credentials: %d for %s:\n%.300s", r.Status, target, r.Body)
				}
			})
		}
	}
}

// TestHostileNotAnOpenProxy: a client uses the HTTP front as a forward
// proxy to reach another host: an absolute-form request target, CONNECT,
// a Host header or a "//host" path naming that host. Promise: the proxy
// only ever talks to the backends of the plan; the other host (a listener
// of this test) never sees a connection.
func TestHostileNotAnOpenProxy(t *testing.T) {
	h := startHostile(t, hostileOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	victim := ln.Addr().String()
	auth := "Authorization: " + basicAuth(h.Cyrus.Email, h.Cyrus.Password) + "\r\n"
	// The attempts run in parallel inside one group, which ends before
	// the check below.
	t.Run("attempts", func(t *testing.T) {
		for name, raw := range map[string]string{
			"absolute":           "GET http://" + victim + "/ HTTP/1.1\r\nHost: " + victim + "\r\n\r\n",
			"absolute with auth": "GET http://" + victim + "/jmap/ HTTP/1.1\r\nHost: " + victim + "\r\n" + auth + "\r\n",
			"CONNECT":            "CONNECT " + victim + " HTTP/1.1\r\nHost: " + victim + "\r\n\r\n",
			"CONNECT with auth":  "CONNECT " + victim + " HTTP/1.1\r\nHost: " + victim + "\r\n" + auth + "\r\n",
			"Host":               "GET /jmap/ HTTP/1.1\r\nHost: " + victim + "\r\n" + auth + "\r\n",
			"double slash":       "GET //" + victim + "/jmap/ HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
			"X-Forwarded-Host":   "GET /jmap/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: " + victim + "\r\n" + auth + "\r\n",
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				// Only the host outside the plan matters here, not
				// the answer (Cyrus holds a CONNECT for 10 s).
				for _, r := range rawHTTPWait(t, h.addr["http"], raw, 3*time.Second) {
					t.Logf("%s: %d", name, r.Status)
				}
			})
		}
	})
	h.session(t)
	if n := reached.Load(); n != 0 {
		t.Errorf("the proxy connected %d times to a host outside the plan", n)
	}
}

// TestHostileHostReflection: a client sends Host, X-Forwarded-Host and
// Forwarded headers naming its own host, hoping the proxy writes that
// host into the JMAP session's URLs or into redirects (so that another
// client's next requests, or a cached session, go to the attacker).
// Promise: session URLs and Location headers use the plan's public_origin
// (or, without one, the origin derived from the listener), never a host a
// client sent; no header or body of the answer holds it.
func TestHostileHostReflection(t *testing.T) {
	for name, o := range map[string]hostileOptions{
		"public_origin": {Proxy: "  public_origin = \"https://mail.example.test\"\n"},
		"default":       {},
	} {
		t.Run(name, func(t *testing.T) {
			h := startHostile(t, o)
			auth := "Authorization: " + basicAuth(h.Cyrus.Email, h.Cyrus.Password) + "\r\n"
			evil := "evil.attacker.example"
			heads := []string{
				"Host: " + evil + "\r\n",
				"Host: x\r\nX-Forwarded-Host: " + evil + "\r\nX-Forwarded-Proto: https\r\n",
				"Host: x\r\nForwarded: host=" + evil + ";proto=https\r\n",
				"Host: " + evil + ":443\r\nX-Forwarded-Host: " + evil + "\r\n",
			}
			for _, path := range []string{"/jmap/", "/.well-known/jmap", "/.well-known/caldav", "/jmap/session-probe"} {
				for _, hd := range heads {
					for _, a := range []string{"", auth} {
						rs := rawHTTP(t, h.addr["http"], "GET "+path+" HTTP/1.1\r\n"+hd+a+"Connection: close\r\n\r\n")
						if len(rs) != 1 {
							t.Fatalf("GET %s: %d answers", path, len(rs))
						}
						r := rs[0]
						var hdr strings.Builder
						r.Header.Write(&hdr)
						if strings.Contains(hdr.String(), evil) || strings.Contains(r.Body, evil) {
							t.Errorf("GET %s with %q: %d reflects the client's host:\n%s\n%.500s", path, hd, r.Status, hdr.String(), r.Body)
						}
						if path == "/jmap/" && a != "" {
							if r.Status != 200 || !strings.Contains(r.Body, "apiUrl") {
								t.Fatalf("session: %d %.200s", r.Status, r.Body)
							}
							if name == "public_origin" && !strings.Contains(r.Body, `"apiUrl":"https://mail.example.test/`) {
								t.Errorf("session URLs not on the public origin:\n%.500s", r.Body)
							}
						}
					}
				}
			}
		})
	}
}

// TestHostileForgedTokens: a client forges bearer tokens naming a real
// account: a JWT with "alg":"none", JWTs signed with a made-up key
// (HS256, RS256), a Stalwart "sw1." token with a made-up secret part, and
// an opaque token (no introspection configured). The proxy reads a JWT's
// or sw1 token's account without checking it — it only routes — so the
// promise is the backend's refusal relayed: 401 for every one, never the
// account's data, and every refusal counted by the failed-login limit
// (auth_failures_total{proto="http"}).
func TestHostileForgedTokens(t *testing.T) {
	h := startHostile(t, hostileOptions{})
	b64 := base64.RawURLEncoding.EncodeToString
	sig := make([]byte, 32)
	rand.Read(sig)
	claims := b64([]byte(fmt.Sprintf(`{"email":%q,"sub":%q,"preferred_username":%q,"exp":%d}`, h.Cyrus.Email, h.Cyrus.Email, h.Cyrus.Email, time.Now().Add(time.Hour).Unix())))
	tokens := map[string]string{
		"jwt alg none":       b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + claims + ".",
		"jwt alg none sig":   b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + claims + "." + b64(sig),
		"jwt HS256 forged":   b64([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + claims + "." + b64(sig),
		"jwt RS256 forged":   b64([]byte(`{"alg":"RS256","typ":"JWT","kid":"1"}`)) + "." + claims + "." + b64(append(sig, sig...)),
		"sw1 forged":         "sw1." + b64(sig) + "." + b64([]byte(h.Cyrus.Email)),
		"sw1 forged padded":  "sw1.AAAA.BBBB." + base64.URLEncoding.EncodeToString([]byte(h.Cyrus.Email)),
		"opaque":             b64(sig),
		"jwt claims in sig":  b64([]byte(`{"alg":"none"}`)) + ".e30." + claims,
		"jwt empty claims":   b64([]byte(`{"alg":"none"}`)) + ".e30.",
		"jwt admin claim":    b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"email":"admin","sub":"`+h.Cyrus.Email+`"}`)) + ".",
		"jwt email as array": b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"email":[`+fmt.Sprintf("%q", h.Cyrus.Email)+`]}`)) + ".",
	}
	before := h.metric(`mailmig_proxy_auth_failures_total{proto="http"}`)
	counted := 0
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			rs := rawHTTP(t, h.addr["http"], "GET /jmap/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nConnection: close\r\n\r\n")
			if len(rs) != 1 {
				t.Fatalf("%d answers", len(rs))
			}
			if rs[0].Status != http.StatusUnauthorized {
				t.Errorf("forged token: %d, want 401\n%.300s", rs[0].Status, rs[0].Body)
			}
			if strings.Contains(rs[0].Body, "apiUrl") || strings.Contains(rs[0].Body, h.Cyrus.Email) {
				t.Errorf("forged token got account data:\n%.300s", rs[0].Body)
			}
		})
		counted++
	}
	if after := h.metric(`mailmig_proxy_auth_failures_total{proto="http"}`); after-before != float64(counted) {
		t.Errorf("auth_failures_total{proto=\"http\"} rose by %v for %d forged tokens", after-before, counted)
	}
}
