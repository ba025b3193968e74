package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostilePlanFiles runs every command that loads a plan on a plan
// nested 100,000 deep. Each ended with a fatal stack overflow (1.1 GB,
// not recoverable) in HCL's parser, first in the loader and then in the
// view that re-parsed the file for its snippet; now each reports the
// nesting at file:line:col and exits 1.
func TestHostilePlanFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "deep.hcl")
	src := "variable \"x\" {\n  default = " + strings.Repeat("(", 100_000) + "1" + strings.Repeat(")", 100_000) + "\n}\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"validate":      {"-f", p, "validate"},
		"validate-json": {"-f", p, "validate", "-json"},
		"plan":          {"-f", p, "plan"},
		"apply":         {"-f", p, "apply", "-auto-approve"},
		"proxy":         {"-f", p, "proxy"},
		"fmt":           {"fmt", "-check", p},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), args, Streams{In: strings.NewReader(""), Out: &out, Err: &errOut})
			if code == 0 {
				t.Fatalf("exit 0 for a plan nested 100,000 deep")
			}
			all := out.String() + errOut.String()
			if !strings.Contains(all, "nested too deeply") {
				t.Errorf("no nesting diagnostic:\n%.2000s", all)
			}
			if len(all) > 10_000 {
				t.Errorf("%d bytes of output", len(all))
			}
		})
	}
}
