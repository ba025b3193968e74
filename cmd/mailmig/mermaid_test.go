package main

import (
	"bytes"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// mermaidGoldens are the golden files holding the Mermaid blocks mailmig
// draws: the report's timelines and plan -markdown's wave schedule.
var mermaidGoldens = map[string][]string{
	"testdata/script/report.txtar":        {"report.md", "schedule.md"},
	"testdata/script/plan_markdown.txtar": {"night.md", "rollback.md"},
}

// TestMermaidParses parses every Mermaid block of the goldens with
// Mermaid's own parser (npm mermaid 12.3.0 under node, loaded by
// testdata/mermaid/check.mjs from $MAILMIG_MERMAID_DIR, default
// /opt/mailmig-mermaid; testdata/peers/install-mermaid.sh installs it),
// and one broken flowchart last, which must be the only one refused (so
// that passing means something). One node run: loading mermaid takes
// seconds. Without node or the package it skips, except under CI, where
// the peers' install step provides them.
func TestMermaidParses(t *testing.T) {
	dir := os.Getenv("MAILMIG_MERMAID_DIR")
	if dir == "" {
		dir = "/opt/mailmig-mermaid"
	}
	node, err := exec.LookPath("node")
	if _, serr := os.Stat(filepath.Join(dir, "node_modules", "mermaid", "package.json")); err != nil || serr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node or mermaid in %s missing: run testdata/peers/install-mermaid.sh", dir)
		}
		t.Skipf("node or mermaid in %s missing: run testdata/peers/install-mermaid.sh (as root) to check the diagrams", dir)
	}
	var in bytes.Buffer
	var names []string
	for _, file := range slices.Sorted(maps.Keys(mermaidGoldens)) {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range ar.Files {
			if !slices.Contains(mermaidGoldens[file], f.Name) {
				continue
			}
			n := bytes.Count(f.Data, []byte("```mermaid\n"))
			if n == 0 {
				t.Errorf("%s: %s has no Mermaid block", file, f.Name)
			}
			for range n {
				names = append(names, filepath.Base(file)+"/"+f.Name)
			}
			in.Write(f.Data)
		}
	}
	in.WriteString("```mermaid\nflowchart LR\n  a[\"x\"] --> b[[[\n```\n")
	cmd := exec.Command(node, "testdata/mermaid/check.mjs", dir)
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the broken flowchart passed:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(names)+1 {
		t.Fatalf("%d blocks, %d results:\n%s", len(names)+1, len(lines), out)
	}
	for i, l := range lines[:len(names)] {
		if !strings.HasPrefix(l, "ok ") {
			t.Errorf("%s: mermaid.parse refused a block: %s", names[i], l)
		}
	}
	if !strings.HasPrefix(lines[len(names)], "ERROR") {
		t.Errorf("the broken flowchart: %s", lines[len(names)])
	}
	t.Logf("%d blocks parsed:\n%s", len(names), out)
}
