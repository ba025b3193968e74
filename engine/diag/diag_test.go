package diag

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestAppend(t *testing.T) {
	var d Diagnostics
	if d.HasErrors() || d.Err() != nil {
		t.Fatal("empty diagnostics report errors")
	}
	d = d.Append(nil, Warnf("W", "warn %d", 1))
	if d.HasErrors() {
		t.Fatal("warning counted as error")
	}
	wrapped := fmt.Errorf("ctx: %w", Errorf("Wrapped", "inner"))
	d = d.Append(errors.New("plain"), wrapped, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "H"}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "H2"}})
	if len(d) != 5 {
		t.Fatalf("len = %d, want 5", len(d))
	}
	if d[2].Summary != "Wrapped" || d[3].Severity != Warning || d[4].Severity != Error {
		t.Fatalf("unexpected conversion: %+v", d)
	}
	if !d.HasErrors() || d.Err() == nil {
		t.Fatal("errors not reported")
	}
	if got := len(d.HCL()); got != 5 {
		t.Fatalf("HCL len = %d", got)
	}
}
