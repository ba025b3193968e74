package engine

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportLayering enforces the one-way imports of DESIGN.md: the engine
// never imports cmd, and vandelay and proxy never import the engine.
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
