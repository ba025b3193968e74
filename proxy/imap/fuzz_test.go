package imap_test

import (
	"testing"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/imap"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// statePrefixes put the session into each pre-auth state before the fuzz
// input: fresh, after ID, inside an AUTHENTICATE continuation, after a
// synchronising literal was announced.
var statePrefixes = []string{"", "p ID NIL\r\n", "p AUTHENTICATE PLAIN\r\n", "p LOGIN {5}\r\n"}

// FuzzIMAPCommand replays every input in every pre-auth state, with and
// without TLS configured; the handler must answer and finish without a
// panic.
func FuzzIMAPCommand(f *testing.F) {
	for _, s := range proxytest.Seeds(f, "testdata/seeds.txt") {
		f.Add(s)
	}
	// An RFC 2971 ID of the maximum size (too long for the seeds file).
	f.Add([]byte(maximalID("a")))
	h := imap.New(nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, withTLS := range []bool{false, true} {
			for _, p := range statePrefixes {
				out := proxytest.Replay(t, h, proxy.IMAP, withTLS, append([]byte(p), in...))
				if len(out) < 4 || string(out[:4]) != "* OK" {
					t.Fatalf("no greeting: %q", out)
				}
			}
		}
	})
}
