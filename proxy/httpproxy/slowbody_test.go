package httpproxy

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy"
)

// rawRequest opens a connection to the proxy and writes head, a request
// head whose Authorization is the account's Basic credentials.
func rawRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestStalledUploadCut: an authenticated client that starts a JMAP
// request body and then sends nothing is cut after BodyIdleTimeout (a
// 502, or the connection closed) instead of holding a connection to the
// real Cyrus open forever; the same body trickled in pieces that each
// arrive within the timeout reaches Cyrus and is answered.
func TestStalledUploadCut(t *testing.T) {
	e := newEnv(t, true)
	e.serve(func(o *Options) { o.BodyIdleTimeout = 700 * time.Millisecond })
	a := e.set.NewAccount(t)
	e.route(a.Email, "cyrus")
	body := `{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"hello":"world"},"0"]]}`
	head := fmt.Sprintf("POST /jmap/ HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		e.addr, basicHeader(a.Email, a.Password), len(body))

	t.Run("stalled", func(t *testing.T) {
		c := rawRequest(t, e.addr, head+body[:10])
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("the proxy kept a stalled upload open (%v after %v)", err, time.Since(start).Round(time.Millisecond))
		}
		// 408, not the 401 of a refused login: the client's IP is not
		// counted as guessing passwords, and the backend was fine.
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled upload: %s, want 408", resp.Status)
		}
		if n := e.p.opts.Metrics.Get(proxy.MetricBackendErrors, "proto", "http", "backend", "cyrus"); n != 0 {
			t.Errorf("a stalled upload counted %d backend errors", n)
		}
	})

	t.Run("trickled", func(t *testing.T) {
		c := rawRequest(t, e.addr, head)
		for i := 0; i < len(body); i += 20 {
			time.Sleep(150 * time.Millisecond)
			if _, err := io.WriteString(c, body[i:min(i+20, len(body))]); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"hello"`) {
			t.Fatalf("trickled body: %s %s", resp.Status, b)
		}
	})
}

// TestConnectTraceRefused: CONNECT (a tunnel opened with the client's
// credentials) and TRACE (which would echo them) are refused with 405
// before routing, with or without credentials, and nothing reaches the
// backend.
func TestConnectTraceRefused(t *testing.T) {
	e := newEnv(t, false)
	e.route("alice@example.org", "alpha")
	for _, req := range []string{
		"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nAuthorization: " + basicHeader("alice@example.org", "pw") + "\r\n\r\n",
		"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n",
		"TRACE / HTTP/1.1\r\nHost: x\r\nAuthorization: " + basicHeader("alice@example.org", "pw") + "\r\n\r\n",
	} {
		c := rawRequest(t, e.addr, req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", strings.Fields(req)[0], err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(string(b), "alpha") {
			t.Errorf("%s: %s %q, want 405 from the proxy", strings.Fields(req)[0], resp.Status, b)
		}
	}
}
