package proxy

import (
	"fmt"
	"os"
	"testing"
)

// TestMain fails the run when a panic was recovered that no test caused on
// purpose (those subtract themselves from the counter).
func TestMain(m *testing.M) {
	code := m.Run()
	if n := Panics(); n != 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the proxy recovered %d panics; see the logs above\n", n)
		code = 1
	}
	os.Exit(code)
}
