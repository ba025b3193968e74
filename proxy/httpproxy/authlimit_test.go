package httpproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/mailmig/mailmig/proxy"
)

// TestAuthFailureLimit: with a proxy.Server as the limiter (3 failures per
// window), three wrong passwords (the 401s come from the real Cyrus) use up
// the client IP's allowance: its next request, even with the right
// password, gets 429 without reaching a backend, while another client IP
// still gets through. An unknown account counts like a wrong password.
func TestAuthFailureLimit(t *testing.T) {
	e := newEnv(t, true)
	lim := proxy.NewServer(&proxy.Options{AuthFailures: 3})
	e.serve(func(o *Options) { o.AuthLimiter, o.Metrics = lim, lim.Metrics() })
	a := e.set.NewAccount(t)
	e.route(a.Email, "cyrus")
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	get := func(c *http.Client, user, pass string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), "GET", e.url+"/jmap/", nil)
		req.SetBasicAuth(user, pass)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	c1, c2 := from("127.0.0.1"), from("127.0.0.2")
	if code := get(c1, a.Email, a.Password); code == http.StatusUnauthorized || code == http.StatusTooManyRequests {
		t.Fatalf("right password: %d", code)
	}
	for i, pass := range []string{"wrong1", "wrong2"} {
		if code := get(c1, a.Email, pass); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401 from Cyrus", i, code)
		}
	}
	if code := get(c1, "nobody@elsewhere.test", "x"); code != http.StatusUnauthorized {
		t.Fatalf("unknown account: %d, want 401", code)
	}
	if code := get(c1, a.Email, a.Password); code != http.StatusTooManyRequests {
		t.Errorf("after three failures: %d, want 429", code)
	}
	if code := get(c2, a.Email, a.Password); code == http.StatusUnauthorized || code == http.StatusTooManyRequests {
		t.Errorf("another client IP: %d", code)
	}
	if n := lim.Metrics().Get(proxy.MetricAuthFailures, "proto", "http"); n != 3 {
		t.Errorf("auth failures counted: %d, want 3", n)
	}
}
