package main

import (
	"strings"
	"testing"
)

// TestScrubWriterSplit writes text holding input values in every split
// into two writes, and in JSON-escaped form: no value gets through, and
// the text around it is intact once flushed.
func TestScrubWriterSplit(t *testing.T) {
	sc := newScrubberOf([]string{"tok:SECRET-4711/x", "line1\nSECRET-42<b>"})
	texts := []string{
		"address tok:SECRET-4711/x here\n",
		`{"v": "line1\nSECRET-42\u003cb\u003e"}` + "\n",
		"md line1 SECRET-42&lt;b&gt; |\n",
		"progress 40%\r",
	}
	for _, text := range texts {
		for i := 0; i <= len(text); i++ {
			var out strings.Builder
			w := &scrubWriter{w: &out, sc: sc}
			w.Write([]byte(text[:i]))
			w.Write([]byte(text[i:]))
			w.Flush()
			got := out.String()
			if strings.Contains(got, "SECRET") {
				t.Fatalf("split at %d of %q: %q", i, text, got)
			}
			if strings.Contains(text, "SECRET") != strings.Contains(got, "(sensitive)") {
				t.Fatalf("split at %d of %q: %q", i, text, got)
			}
		}
	}
	// Text that cannot start a value passes at once (progress output).
	var out strings.Builder
	w := &scrubWriter{w: &out, sc: sc}
	w.Write([]byte("progress 40%\r"))
	if out.String() != "progress 40%\r" {
		t.Errorf("held back: %q", out.String())
	}
}
