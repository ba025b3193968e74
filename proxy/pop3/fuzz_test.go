package pop3_test

import (
	"testing"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/pop3"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

var statePrefixes = []string{"", "USER routed@example.test\r\n", "AUTH PLAIN\r\n", "AUTH LOGIN\r\n"}

// FuzzPOP3 replays every input in every AUTHORIZATION sub-state, with and
// without TLS configured.
func FuzzPOP3(f *testing.F) {
	for _, s := range proxytest.Seeds(f, "testdata/seeds.txt") {
		f.Add(s)
	}
	h := pop3.New(nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, withTLS := range []bool{false, true} {
			for _, p := range statePrefixes {
				out := proxytest.Replay(t, h, proxy.POP3, withTLS, append([]byte(p), in...))
				if len(out) < 3 || string(out[:3]) != "+OK" {
					t.Fatalf("no greeting: %q", out)
				}
			}
		}
	})
}
