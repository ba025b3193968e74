package plan

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testEnv is the whole environment the fixtures see: tests never read the
// process environment.
var testEnv = map[string]string{
	"LEGACY_MASTER_PASSWORD": "masterpw",
	"TARGET_MASTER_PASSWORD": "adminpw",
	"ALICE_PASSWORD":         "alicepw",
	"BOB_PASSWORD":           "bobpw",   // examples/quickstart
	"CAROL_PASSWORD":         "carolpw", // examples/quickstart
	"GRAPH_CLIENT_SECRET":    "s3cret",
	"MAILMIG_VAR_port":       "many",              // invalid_variable_value.hcl
	"EMPTY_IN_TESTS":         "",                  // empty_env.hcl
	"CI_DEPLOY_TOKEN":        "tok:SECRET-4711/x", // secret_inputs.hcl
}

// formatDiags renders diagnostics in the golden form: one line per
// diagnostic with severity, position and summary, then the detail
// indented.
func formatDiags(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		pos := "-"
		if d.Subject != nil {
			pos = fmt.Sprintf("%s:%d:%d", filepath.ToSlash(d.Subject.Filename), d.Subject.Start.Line, d.Subject.Start.Column)
		}
		fmt.Fprintf(&b, "%s: %s: %s\n", sev, pos, d.Summary)
		if d.Detail != "" {
			fmt.Fprintf(&b, "    %s\n", d.Detail)
		}
	}
	return b.String()
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./plan -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

// TestInvalidPlans loads every broken plan in testdata/invalid and compares
// its diagnostics (severity, file:line:col, summary, detail) with the
// .golden file next to it. The proxy's certificate files are read
// (WithCertificateCheck), as `mailmig proxy` does.
func TestInvalidPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 25 {
		t.Fatalf("only %d invalid plans; want at least 25", len(files))
	}
	summaries := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			_, diags := LoadFile(f, WithEnv(testEnv), WithCertificateCheck())
			if len(diags) == 0 {
				t.Fatal("no diagnostics for a broken plan")
			}
			for _, d := range diags {
				summaries[d.Summary] = true
				if d.Subject == nil && d.Summary != "More accounts in no wave" {
					t.Errorf("diagnostic %q has no source range", d.Summary)
				}
				if d.Detail == "" {
					t.Errorf("diagnostic %q has no detail", d.Summary)
				}
			}
			checkGolden(t, strings.TrimSuffix(f, ".hcl")+".golden", formatDiags(diags))
		})
	}
	t.Logf("%d invalid plans, %d distinct diagnostic summaries", len(files), len(summaries))
}

// TestValidPlans loads every plan in testdata/valid: it must produce no
// diagnostic at all, and its decoded model must match the .json golden
// file (which pins every default). The proxy's certificate files are read
// (WithCertificateCheck): testdata/valid/tls holds two self-signed ones.
func TestValidPlans(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no valid plans")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			m, diags := LoadFile(f, WithEnv(testEnv), WithCertificateCheck())
			if len(diags) > 0 {
				t.Fatalf("diagnostics for a valid plan:\n%s", formatDiags(diags))
			}
			b, err := json.MarshalIndent(m, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(f, ".hcl")+".json", string(b)+"\n")
		})
	}
}

// TestExamples checks that every plan in examples/ validates, given the
// environment variables the examples document.
func TestExamples(t *testing.T) {
	dirs, err := filepath.Glob("../examples/*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range dirs {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			continue
		}
		if hcls, _ := filepath.Glob(filepath.Join(d, "*.hcl")); len(hcls) == 0 {
			continue
		}
		n++
		t.Run(filepath.Base(d), func(t *testing.T) {
			m, diags := Load(d, WithEnv(testEnv))
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%s", formatDiags(diags))
			}
			if len(m.Accounts) == 0 || len(m.Waves) == 0 {
				t.Errorf("example has %d accounts and %d waves; examples should show both", len(m.Accounts), len(m.Waves))
			}
		})
	}
	if n == 0 {
		t.Fatal("no example plans found")
	}
}

// TestFixturesFormatted keeps the examples and valid fixtures in canonical
// format, so that `mailmig fmt -check` passes on what we ship.
func TestFixturesFormatted(t *testing.T) {
	var files []string
	for _, p := range []string{"../examples/*/*.hcl", "testdata/valid/*.hcl"} {
		m, _ := filepath.Glob(p)
		files = append(files, m...)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := hclwrite.Format(src); string(got) != string(src) {
			t.Errorf("%s is not formatted; run mailmig fmt %s", f, f)
		}
	}
}
