package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayering enforces the one-way imports of STYLE.md: the engine
// never imports cmd, vandelay and proxy never import the engine (nor its
// executor), and cmd reaches vandelay only through its library APIs.
func TestImportLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/mailmig/mailmig/"
	check := func(pkgs, forbidden string) {
		out, err := exec.Command("go", "list", "-deps", pkgs).CombinedOutput()
		if err != nil {
			t.Skipf("go list %s: %v\n%s", pkgs, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == mod+forbidden || strings.HasPrefix(dep, mod+forbidden+"/") {
				t.Errorf("%s depends on %s", pkgs, dep)
			}
		}
	}
	check("../engine/...", "cmd")
	check("../vandelay/...", "engine")
	check("../proxy/...", "engine")

	// cmd turns arguments into library calls: of vandelay it imports the
	// library APIs only (Import, Export, OpenTarget; the registry of
	// source kinds; verify; the archive it inspects), never an adapter.
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, "../cmd/mailmig/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list cmd: %v\n%s", err, out)
	}
	allowed := map[string]bool{"vandelay": true, "vandelay/sources": true, "vandelay/verify": true, "vandelay/archive": true}
	for _, imp := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(imp, mod)
		if ok && (rel == "vandelay" || strings.HasPrefix(rel, "vandelay/")) && !allowed[rel] {
			t.Errorf("cmd imports %s; call the library (package vandelay, vandelay/sources, vandelay/verify) instead", imp)
		}
	}

	// The proxy and vandelay may use plan/canon (the shared address key),
	// never the plan itself (and HCL with it).
	for _, pkgs := range []string{"../proxy/...", "../vandelay/..."} {
		out, err := exec.Command("go", "list", "-deps", pkgs).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkgs, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if (dep == mod+"plan" || strings.HasPrefix(dep, mod+"plan/")) && dep != mod+"plan/canon" {
				t.Errorf("%s depends on %s", pkgs, dep)
			}
		}
	}
}
