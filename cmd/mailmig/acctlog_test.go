package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAccountLogRotation writes past the size limit several times: the
// log rotates to .1, .2, .3 and no more are kept; every line is whole and
// redacted.
func TestAccountLogRotation(t *testing.T) {
	dir := t.TempDir()
	l := newAccountLogs(dir, strings.NewReplacer("s3cret", "(sensitive)").Replace, time.Now)
	l.max = 1000
	for i := range 100 {
		l.write("alice@example.test", map[string]any{"msg": fmt.Sprintf("line %d with s3cret", i), "pad": strings.Repeat("x", 60)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "alice@example.test.log")
	for _, suffix := range []string{"", ".1", ".2", ".3"} {
		b, err := os.ReadFile(base + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1000 || !strings.HasSuffix(string(b), "}\n") || strings.Contains(string(b), "s3cret") {
			t.Errorf("%s: %d bytes, unredacted or cut:\n%s", suffix, len(b), b)
		}
	}
	if _, err := os.Stat(base + ".4"); !os.IsNotExist(err) {
		t.Errorf("a fourth rotated file: %v", err)
	}
	b, _ := os.ReadFile(base)
	if !strings.Contains(string(b), `line 99 with (sensitive)`) {
		t.Errorf("the newest line is not in the current file:\n%s", b)
	}
}
