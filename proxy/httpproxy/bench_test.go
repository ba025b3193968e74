package httpproxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkJMAP posts one JMAP request (Mailbox/get) per iteration to
// Cyrus, directly and through the proxy, over keep-alive connections;
// compare requests/s. `just bench-proxy-smtp` runs it.
func BenchmarkJMAP(b *testing.B) {
	e := newBenchEnv(b, true)
	a := e.set.NewAccount(b)
	e.route(a.Email, "cyrus")
	body := `{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Mailbox/get",{"accountId":"` + a.Email + `","properties":["name","role"]},"0"]]}`
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for _, tc := range []struct{ name, url string }{
		{"direct", "http://" + e.set.Cyrus.HTTP + "/jmap/"},
		{"proxy", e.url + "/jmap/"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest(http.MethodPost, tc.url, strings.NewReader(body))
				req.SetBasicAuth(a.Email, a.Password)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// BenchmarkOverhead measures the proxy's own cost per request: GET to a
// small in-process backend, directly and through the proxy (keep-alive).
func BenchmarkOverhead(b *testing.B) {
	e := newBenchEnv(b, false)
	e.route("ann@example.test", "alpha")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	bk, _ := e.router.Backend("alpha")
	alpha := bk.Endpoints["http"].URL
	for _, tc := range []struct{ name, url string }{{"direct", alpha + "/x"}, {"proxy", e.url + "/x"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
				req.SetBasicAuth("ann@example.test", "x")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
