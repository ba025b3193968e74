package plan

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports enforces the layering rule: plan imports none of mailmig's
// own packages (cmd, engine, proxy and vandelay import plan, never the
// reverse).
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/mailmig/mailmig/") && dep != "github.com/mailmig/mailmig/plan" {
			t.Errorf("plan depends on %s", dep)
		}
	}
}
