package views

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
)

func rng(file string, line, col, endCol int) *hcl.Range {
	return &hcl.Range{Filename: file, Start: hcl.Pos{Line: line, Column: col}, End: hcl.Pos{Line: line, Column: endCol}}
}

var testSources = map[string][]byte{
	"plan.hcl": []byte("backend \"x\" {\n\timap { address = \"host\" }\n  name = \"Jörg ünïcode\"\n}\n"),
}

func TestDiagnosticsHuman(t *testing.T) {
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Invalid address", Detail: "The address has no port. Write host:port.", Subject: rng("plan.hcl", 2, 19, 25)},
		{Severity: hcl.DiagWarning, Summary: "Odd name", Detail: "A warning.", Subject: rng("plan.hcl", 3, 10, 24)},
		{Severity: hcl.DiagError, Summary: "No position", Detail: "Something global."},
		{Severity: hcl.DiagError, Summary: "Unknown file", Subject: rng("other.hcl", 7, 1, 2)},
	}
	var out, errOut bytes.Buffer
	v := New(&out, &errOut, false)
	v.Diagnostics(diags, testSources)
	wantErr := `
Error: Invalid address

  on plan.hcl line 2, in backend "x":
  2:     imap { address = "host" }
                          ^^^^^^

The address has no port. Write host:port.

Error: No position

Something global.

Error: Unknown file

  on other.hcl line 7:
`
	wantOut := `
Warning: Odd name

  on plan.hcl line 3, in backend "x":
  3:   name = "Jörg ünïcode"
              ^^^^^^^^^^^^^^

A warning.
`
	if d := cmp.Diff(wantErr, errOut.String()); d != "" {
		t.Errorf("stderr (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantOut, out.String()); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}

	// With colour: escape sequences around the label and the underline.
	out.Reset()
	errOut.Reset()
	v.Color = true
	v.Diagnostics(diags[:1], testSources)
	got := errOut.String()
	for _, want := range []string{"\x1b[1m\x1b[31mError: \x1b[0m", "\x1b[4m\"host\"\x1b[0m", "\x1b[31m^^^^^^\x1b[0m"} {
		if !strings.Contains(got, want) {
			t.Errorf("coloured output lacks %q:\n%q", want, got)
		}
	}
}

func TestDiagnosticsJSON(t *testing.T) {
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagWarning, Summary: "Odd name", Detail: "A warning.", Subject: rng("plan.hcl", 3, 10, 24)},
	}
	var out bytes.Buffer
	v := New(&out, &out, true)
	if err := v.ValidateJSON(diags, testSources); err != nil {
		t.Fatal(err)
	}
	var got DiagnosticsJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := DiagnosticsJSON{
		FormatVersion: "1.0", Valid: true, WarningCount: 1,
		Diagnostics: []Diagnostic{{
			Severity: "warning", Summary: "Odd name", Detail: "A warning.",
			Range:   &Range{Filename: "plan.hcl", Start: Pos{Line: 3, Column: 10}, End: Pos{Line: 3, Column: 24}},
			Snippet: &Snippet{Context: `backend "x"`, Code: `  name = "Jörg ünïcode"`, StartLine: 3, HighlightStartOffset: 9, HighlightEndOffset: 26},
		}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("JSON (-want +got):\n%s", d)
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("JSON output contains colour")
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aaa bbb ccc ddd\n\neee", 8)
	if want := "aaa bbb\nccc ddd\n\neee"; got != want {
		t.Errorf("wrap = %q, want %q", got, want)
	}
	if got := wrap(strings.Repeat("x", 20)+" y", 8); got != strings.Repeat("x", 20)+"\ny" {
		t.Errorf("long word: %q", got)
	}
}

// TestDiagnosticHostileSources checks the snippets of diagnostics on
// sources that a plan load refuses: a line of a megabyte is cut around the
// highlight, and a file nested too deeply to parse is not navigated (the
// parser would overflow the stack and kill the process).
func TestDiagnosticHostileSources(t *testing.T) {
	deep := "variable \"x\" {\n  default = " + strings.Repeat("(", 100_000) + "\n}\n"
	sources := map[string][]byte{
		"deep.hcl": []byte(deep),
		"long.csv": []byte("address\n" + strings.Repeat("a", 1<<20) + "@x,b\n"),
	}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Plan nested too deeply", Detail: "d", Subject: rng("deep.hcl", 2, 112, 112)},
		{Severity: hcl.DiagError, Summary: "Malformed CSV row", Detail: "d", Subject: rng("long.csv", 2, 1, 1<<20+5)},
	}
	got := NewDiagnostics(diags, sources)
	for i, d := range got {
		sn := d.Snippet
		if sn == nil {
			t.Fatalf("%d: no snippet", i)
		}
		if len(sn.Code) > maxSnippetCode+2*len("…") {
			t.Errorf("%d: snippet of %d bytes", i, len(sn.Code))
		}
		if sn.HighlightStartOffset > sn.HighlightEndOffset || sn.HighlightEndOffset > len(sn.Code) {
			t.Errorf("%d: highlight %d..%d outside %q", i, sn.HighlightStartOffset, sn.HighlightEndOffset, sn.Code)
		}
		if sn.Context != "" {
			t.Errorf("%d: context %q", i, sn.Context)
		}
	}
	if !strings.HasPrefix(got[0].Snippet.Code, "…") || got[0].Snippet.Code[got[0].Snippet.HighlightStartOffset] != '(' {
		t.Errorf("deep: %q at %d", got[0].Snippet.Code, got[0].Snippet.HighlightStartOffset)
	}
	var b bytes.Buffer
	New(&b, &b, false).Diagnostics(diags, sources)
	if b.Len() > 2000 {
		t.Errorf("human output of %d bytes", b.Len())
	}
}
