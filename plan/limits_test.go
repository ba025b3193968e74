package plan

import (
	"bytes"
	"fmt"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/hashicorp/hcl/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNestingLimit loads plans nested far beyond MaxNestingDepth in every
// way the parser recurses. Before the limit each of them killed the process
// with a fatal stack overflow that no recover() catches.
func TestNestingLimit(t *testing.T) {
	const n = 100_000
	deep := map[string]string{
		"parentheses":    strings.Repeat("(", n) + "1" + strings.Repeat(")", n),
		"brackets":       strings.Repeat("[", n) + strings.Repeat("]", n),
		"objects":        strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n),
		"interpolations": strings.Repeat(`"${`, n) + "1" + strings.Repeat(`}"`, n),
		"unclosed":       strings.Repeat("(", n),
		"not":            strings.Repeat("!", n) + "true",
		"minus":          strings.Repeat("-", n) + "1",
		"sum":            "1" + strings.Repeat("+1", n),
		"conditionals":   strings.Repeat("true ? 1 : ", n) + "2",
		// Not deep but quadratic in hclsyntax: minutes before the limit.
		"escapes":         `"` + strings.Repeat(`$${`, n) + `"`,
		"percent escapes": `"` + strings.Repeat(`%%{`, n) + `"`,
		"heredoc escapes": "<<EOT\n" + strings.Repeat(`$${`, n) + "\nEOT",
		"backslashes":     `"` + strings.Repeat(`\n`, n) + `"`,
	}
	for name, expr := range deep {
		t.Run(name, func(t *testing.T) {
			src := "variable \"x\" {\n  default = " + expr + "\n}\n"
			m, diags := Parse("deep.hcl", []byte(src), WithEnv(nil))
			if m == nil {
				t.Fatal("nil Migration")
			}
			if len(diags) != 1 || !limitSummaries[diags[0].Summary] {
				t.Fatalf("want one nesting diagnostic, got:\n%s", formatDiags(diags))
			}
			if diags[0].Subject == nil || diags[0].Subject.Start.Line < 2 {
				t.Errorf("diagnostic not in the value: %v", diags[0].Subject)
			}
		})
	}
	// Brackets inside strings, comments and heredocs are text, not
	// nesting; nesting up to the limit loads.
	ok := map[string]string{
		"string": `"` + strings.Repeat("{[(", n) + `"`,
		// hclsyntax takes quadratic time over $${ escapes: keep this short.
		"escapes":   `"` + strings.Repeat(`$${`, MaxStringEscapes) + `"`,
		"heredoc":   "<<-EOT\n" + strings.Repeat("{[(", n) + "\n  EOT",
		"comment":   "1 # " + strings.Repeat("(", n),
		"block":     "1 /* " + strings.Repeat("(", n) + " */",
		"limit":     strings.Repeat("(", MaxNestingDepth-2) + "1" + strings.Repeat(")", MaxNestingDepth-2),
		"dashes":    "[" + strings.Repeat("a-b-c-d, ", 2*MaxExprOperators) + "]",
		"operators": strings.Repeat("1+", MaxExprOperators-1) + "1",
	}
	for name, expr := range ok {
		t.Run(name, func(t *testing.T) {
			src := "variable \"x\" {\n  default = " + expr + "\n}\n"
			_, diags := Parse("ok.hcl", []byte(src), WithEnv(nil))
			for _, d := range diags {
				if limitSummaries[d.Summary] {
					t.Fatalf("false positive: %s", formatDiags(diags))
				}
			}
		})
	}
}

var limitSummaries = map[string]bool{"Plan nested too deeply": true, "Expression too long": true, "String with too many escapes": true}

// TestPlanFileSizeLimit checks that a plan file over MaxPlanFileSize is
// refused at file:1:1 before it is parsed.
func TestPlanFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.hcl")
	src := "# " + strings.Repeat("x", MaxPlanFileSize) + "\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() []string{
		"LoadFile": func() []string { _, d := LoadFile(p, WithEnv(nil)); return summaries(d) },
		"LoadDir":  func() []string { _, d := LoadDir(dir, WithEnv(nil)); return summaries(d) },
		"Parse":    func() []string { _, d := Parse(p, []byte(src), WithEnv(nil)); return summaries(d) },
	} {
		if got := load(); len(got) != 1 || got[0] != "Plan file too large at "+filepath.ToSlash(p)+":1:1" {
			t.Errorf("%s: %q", name, got)
		}
	}
}

func summaries(diags hcl.Diagnostics) []string {
	var out []string
	for _, d := range diags {
		s := d.Summary
		if d.Subject != nil {
			s += fmt.Sprintf(" at %s:%d:%d", filepath.ToSlash(d.Subject.Filename), d.Subject.Start.Line, d.Subject.Start.Column)
		}
		out = append(out, s)
	}
	return out
}

// TestNoSecretsInDiagnostics loads every invalid plan with an environment
// whose secret CI_DEPLOY_TOKEN, and a key file read by file() and csv(),
// hold the marker SECRET-4711: no diagnostic may show it, in its text or
// in the source line a view would print as its snippet.
// secret_inputs.hcl uses the values in every wrong place.
func TestNoSecretsInDiagnostics(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		m, diags := LoadFile(f, WithEnv(testEnv), WithCertificateCheck())
		for _, d := range diags {
			text := d.Summary + "\n" + d.Detail
			if d.Subject != nil {
				if src, ok := m.Sources[d.Subject.Filename]; ok {
					lines := strings.Split(string(src), "\n")
					if n := d.Subject.Start.Line; n >= 1 && n <= len(lines) {
						text += "\n" + lines[n-1]
					}
				}
			}
			if strings.Contains(strings.ToLower(text), "secret-4711") {
				t.Errorf("%s: diagnostic shows a secret:\n%s", f, text)
			}
			if d.EvalContext != nil {
				t.Errorf("%s: diagnostic %q keeps its evaluation context (variable values)", f, d.Summary)
			}
		}
	}
}

// TestHugeHost reads a host of 3 MB with file() (the finding was a 50 MB
// host that passed validate): it is refused, and the diagnostic stays
// short instead of quoting megabytes back.
func TestHugeHost(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "host"), []byte(strings.Repeat("a", 3<<20)+":993"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := "backend \"b\" {\n  imap {\n    address = file(\"host\")\n  }\n}\n"
	_, diags := Parse(filepath.Join(dir, "p.hcl"), []byte(src), WithEnv(nil))
	if len(diags) != 1 || diags[0].Summary != "Invalid address" {
		t.Fatalf("want one Invalid address, got:\n%.2000s", formatDiags(diags))
	}
	if n := len(diags[0].Detail); n > 500 {
		t.Errorf("detail of %d bytes", n)
	}
}

// tokenDepth is the deepest nesting of src as hclsyntax's own lexer sees
// it: the reference scanNesting must never undercount.
func tokenDepth(src []byte) int {
	toks, _ := hclsyntax.LexConfig(src, "f.hcl", hcl.InitialPos)
	depth, deepest := 0, 0
	for _, t := range toks {
		switch t.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
			hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl,
			hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
			deepest = max(deepest, depth)
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen,
			hclsyntax.TokenTemplateSeqEnd, hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			depth = max(0, depth-1)
		}
	}
	return deepest
}

// FuzzScanNesting checks scanNesting against the HCL lexer: whatever the
// scan accepts nests no deeper than MaxNestingDepth in HCL's own tokens
// (with a little slack for where the two disagree on broken input).
func FuzzScanNesting(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/invalid/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(strings.Repeat(`"${`, 120)))
	f.Add([]byte("a = <<EOT\n" + strings.Repeat("${[", 60) + "\nEOT\n"))
	f.Add([]byte(`a = "\"${"{"}"` + strings.Repeat("(", 99)))
	f.Fuzz(func(t *testing.T, src []byte) {
		if scanNesting("f.hcl", src) != nil {
			return
		}
		// Repeating the input multiplies any undercount past the slack.
		big := bytes.Repeat(src, 4)
		if scanNesting("f.hcl", big) != nil {
			return
		}
		if d := tokenDepth(big); d > MaxNestingDepth+8 {
			t.Fatalf("scan accepted a file %d deep in HCL tokens", d)
		}
	})
}

// TestRedactionManyElements gives a variable from MAILMIG_VAR_ to a long
// list of wrong addresses between good ones: every diagnostic must hide
// it (the sweep in containingRedactions pairs each with its own element).
func TestRedactionManyElements(t *testing.T) {
	var src strings.Builder
	src.WriteString("variable \"d\" {\n  default = \"example.test\"\n}\n" +
		"backend \"s\" {\n  imap {\n    address = \"127.0.0.1:143\"\n  }\n}\n" +
		"backend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n" +
		"accounts \"g\" {\n  from = backend.s\n  to   = backend.t\n  list = [\n")
	const n = 2000
	for i := range n {
		fmt.Fprintf(&src, "    \"user %d@${var.d}\", \"ok%d@example.test\",\n", i, i)
	}
	src.WriteString("  ]\n}\n")
	_, diags := Parse("p.hcl", []byte(src.String()), WithEnv(map[string]string{"MAILMIG_VAR_d": "sekrit.example.test"}))
	bad := 0
	for _, d := range diags {
		if d.Summary != "Invalid address" {
			continue
		}
		bad++
		if strings.Contains(d.Detail, "sekrit") || !strings.Contains(d.Detail, "The account (sensitive) is not") {
			t.Fatalf("not redacted: %s", d.Detail)
		}
	}
	if bad != n {
		t.Errorf("%d Invalid address diagnostics, want %d", bad, n)
	}
}
