package views

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestWarningsInJSON: in WarningsInJSON mode warnings are held and the
// next JSON document carries them as "diagnostics" (field order of the
// value kept); errors still go to standard error; without warnings the
// document is unchanged; WarningsToErr sends warnings to standard error.
func TestWarningsInJSON(t *testing.T) {
	type doc struct {
		B string `json:"b"`
		A int    `json:"a"`
	}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagWarning, Summary: "Careful", Detail: "Mind the <gap>."},
		{Severity: hcl.DiagError, Summary: "Broken", Detail: "It broke."},
	}
	for _, x := range []any{doc{B: "x", A: 1}, struct{}{}} {
		var out, errw bytes.Buffer
		v := New(&out, &errw, false)
		v.SetWarnings(WarningsInJSON)
		v.Diagnostics(diags, nil)
		if out.Len() != 0 || !strings.Contains(errw.String(), "Error: Broken") || strings.Contains(errw.String(), "Careful") {
			t.Fatalf("before the document: out %q err %q", out.String(), errw.String())
		}
		if err := v.JSON(x); err != nil {
			t.Fatal(err)
		}
		var got struct {
			B           string       `json:"b"`
			Diagnostics []Diagnostic `json:"diagnostics"`
		}
		dec := json.NewDecoder(&out)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil && !strings.Contains(err.Error(), `unknown field "a"`) {
			t.Fatalf("%T: %v", x, err)
		}
		if len(got.Diagnostics) != 1 || got.Diagnostics[0].Summary != "Careful" || got.Diagnostics[0].Severity != "warning" {
			t.Fatalf("%T: diagnostics %+v", x, got.Diagnostics)
		}
	}

	var out bytes.Buffer
	v := New(&out, &out, false)
	v.SetWarnings(WarningsInJSON)
	if err := v.JSON(doc{B: "x", A: 1}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"b\": \"x\",\n  \"a\": 1\n}\n"; out.String() != want {
		t.Fatalf("no warnings: got %q, want %q", out.String(), want)
	}

	var o2, e2 bytes.Buffer
	v = New(&o2, &e2, false)
	v.SetWarnings(WarningsToErr)
	v.Diagnostics(diags[:1], nil)
	if o2.Len() != 0 || !strings.Contains(e2.String(), "Warning: Careful") {
		t.Fatalf("WarningsToErr: out %q err %q", o2.String(), e2.String())
	}
}
