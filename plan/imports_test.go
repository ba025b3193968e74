package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the layering rule: plan imports none of mailmig's
// own packages (cmd, engine, proxy and vandelay import plan, never the
// reverse), except its own leaf plan/canon, which imports none at all.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "./canon").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch dep {
		case "github.com/mailmig/mailmig/plan", "github.com/mailmig/mailmig/plan/canon":
			continue
		}
		if strings.HasPrefix(dep, "github.com/mailmig/mailmig/") {
			t.Errorf("plan depends on %s", dep)
		}
	}
}
