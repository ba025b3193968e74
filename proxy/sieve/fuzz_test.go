package sieve_test

import (
	"testing"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/sieve"
)

var statePrefixes = []string{"", "AUTHENTICATE \"PLAIN\"\r\n", "AUTHENTICATE \"LOGIN\"\r\n", "NOOP {3+}\r\n"}

// FuzzManageSieve replays every input in every pre-auth state, with and
// without TLS configured.
func FuzzManageSieve(f *testing.F) {
	for _, s := range proxytest.Seeds(f, "testdata/seeds.txt") {
		f.Add(s)
	}
	h := sieve.New(nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, withTLS := range []bool{false, true} {
			for _, p := range statePrefixes {
				out := proxytest.Replay(t, h, proxy.ManageSieve, withTLS, append([]byte(p), in...))
				if len(out) < 16 || string(out[:16]) != "\"IMPLEMENTATION\"" {
					t.Fatalf("no greeting: %q", out)
				}
			}
		}
	})
}
