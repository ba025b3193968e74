package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	type holder struct {
		Password Secret
		Ptr      *Secret
	}
	h := holder{Password: s, Ptr: &s}
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", s),
		"%s":  fmt.Sprintf("%s", s),
		"%q":  fmt.Sprintf("%q", s),
		"%x":  fmt.Sprintf("%x", s),
		"%#v": fmt.Sprintf("%#v", s),
		"%+v": fmt.Sprintf("%+v", h),
		"#v":  fmt.Sprintf("%#v", h),
		"ptr": fmt.Sprintf("%v", h.Ptr),
		"str": s.String(),
	}
	b, _ := json.Marshal(h)
	outputs["json"] = string(b)
	tb, _ := s.MarshalText()
	outputs["text"] = string(tb)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "password", s, "holder", h)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "password", s)
	outputs["slog"] = buf.String()
	for name, out := range outputs {
		if strings.Contains(out, "hunter2") || strings.Contains(out, "68756e74657232") {
			t.Errorf("%s reveals the secret: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s does not say %s: %s", name, Redacted, out)
		}
	}
	if s.Reveal() != "hunter2" || !s.IsSet() {
		t.Error("Reveal lost the value")
	}
	if (Secret{}).IsSet() {
		t.Error("zero Secret is set")
	}
	if b, _ := json.Marshal(Secret{}); string(b) != "null" {
		t.Errorf("unset secret marshals as %s, want null", b)
	}
}

func TestParseBytes(t *testing.T) {
	tests := map[string]struct {
		in        string
		perSecond bool
		want      int64
		wantErr   bool
	}{
		"plain":         {in: "512", want: 512},
		"bytes":         {in: "512B", want: 512},
		"MiB":           {in: "40MiB", want: 40 << 20},
		"MB":            {in: "40MB", want: 40_000_000},
		"kB lower":      {in: "2kb", want: 2000},
		"KiB space":     {in: "1 KiB", want: 1024},
		"fraction":      {in: "1.5GiB", want: 3 << 29},
		"TiB":           {in: "1TiB", want: 1 << 40},
		"per second":    {in: "40MiB/s", perSecond: true, want: 40 << 20},
		"per second no": {in: "40MiB/s", wantErr: true},
		"unknown unit":  {in: "40MeB", wantErr: true},
		"no number":     {in: "MiB", wantErr: true},
		"empty":         {in: "", wantErr: true},
		"two dots":      {in: "1.2.3MB", wantErr: true},
		"negative":      {in: "-1MB", wantErr: true},
		"huge":          {in: "99999999999TiB", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseBytes(tc.in, tc.perSecond)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseBytes(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("ParseBytes(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestCheckAddress(t *testing.T) {
	good := []string{"alice@example.test", "a.b+tag@sub.example.org", "x@localhost", "jörg@bücher.example"}
	bad := []string{"", "alice", "@example.test", "alice@", "a@b@c", "alice @example.test", "<alice@example.test>",
		"alice@example..test", ".alice@example.test", "alice@-example.test", "alice@exa_mple.test", strings.Repeat("a", 65) + "@x.test"}
	for _, a := range good {
		if err := checkAddress(a); err != nil {
			t.Errorf("checkAddress(%q) = %v, want ok", a, err)
		}
	}
	for _, a := range bad {
		if err := checkAddress(a); err == nil {
			t.Errorf("checkAddress(%q) = nil, want an error", a)
		}
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestWindow(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	w, err := ParseWindow("22:00-05:00 Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if !w.CrossesMidnight() {
		t.Error("22:00-05:00 should cross midnight")
	}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, berlin) }
	tests := map[string]struct {
		t          time.Time
		in         bool
		start, end time.Time
	}{
		"before":              {t: at(2026, 11, 28, 21, 59), in: false, start: at(2026, 11, 28, 22, 0), end: at(2026, 11, 29, 5, 0)},
		"at start":            {t: at(2026, 11, 28, 22, 0), in: true, start: at(2026, 11, 28, 22, 0), end: at(2026, 11, 29, 5, 0)},
		"after midnight":      {t: at(2026, 11, 29, 3, 0), in: true, start: at(2026, 11, 28, 22, 0), end: at(2026, 11, 29, 5, 0)},
		"at end is outside":   {t: at(2026, 11, 29, 5, 0), in: false, start: at(2026, 11, 29, 22, 0), end: at(2026, 11, 30, 5, 0)},
		"noon":                {t: at(2026, 11, 29, 12, 0), in: false, start: at(2026, 11, 29, 22, 0), end: at(2026, 11, 30, 5, 0)},
		"other zone same abs": {t: time.Date(2026, 11, 28, 21, 30, 0, 0, time.UTC), in: true, start: at(2026, 11, 28, 22, 0), end: at(2026, 11, 29, 5, 0)},
		// DST ends in Berlin on 2026-10-25 at 03:00 CEST: the window
		// keeps its wall-clock times (8 hours long that night).
		"dst night": {t: at(2026, 10, 25, 4, 30), in: true, start: at(2026, 10, 24, 22, 0), end: at(2026, 10, 25, 5, 0)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := w.Contains(tc.t); got != tc.in {
				t.Errorf("Contains(%v) = %v, want %v", tc.t, got, tc.in)
			}
			s, e := w.Next(tc.t)
			if !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Errorf("Next(%v) = %v..%v, want %v..%v", tc.t, s, e, tc.start, tc.end)
			}
		})
	}
	day, err := ParseWindow("09:00-17:30 UTC")
	if err != nil {
		t.Fatal(err)
	}
	if day.CrossesMidnight() || !day.Contains(time.Date(2026, 1, 1, 17, 29, 0, 0, time.UTC)) || day.Contains(time.Date(2026, 1, 1, 17, 30, 0, 0, time.UTC)) {
		t.Error("09:00-17:30 UTC misbehaves")
	}
	full, err := ParseWindow("00:00-24:00 UTC")
	if err != nil || !full.Contains(time.Date(2026, 1, 1, 23, 59, 0, 0, time.UTC)) {
		t.Errorf("00:00-24:00: %v", err)
	}
	for _, bad := range []string{"", "22:00", "22-05 UTC", "22:00-05:00", "22:00-05:00 Nowhere/City", "24:00-05:00 UTC", "10:61-11:00 UTC", "10:00-10:00 UTC", "10:00-11:00 Local"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) succeeded", bad)
		}
	}
}

func TestVariables(t *testing.T) {
	src := []byte(`
variable "host" {
  default = "127.0.0.1"
}
variable "port" {
  default = 20000
}
variable "pilot" {
  default = ["alice@example.test"]
}
backend "a" {
  imap {
    address = "${var.host}:${var.port}"
  }
}
backend "b" {
  jmap {
    url = "http://${var.host}/jmap"
  }
}
accounts "x" {
  from = backend.a
  to   = backend.b
  list = ["alice@example.test", "bob@example.test"]
}
wave "pilot" {
  accounts = var.pilot
}
wave "rest" {
  accounts = ["bob@example.test"]
}
`)
	tests := map[string]struct {
		opts     []Option
		wantAddr string
	}{
		"defaults": {wantAddr: "127.0.0.1:20000"},
		"env":      {opts: []Option{WithEnv(map[string]string{"MAILMIG_VAR_port": "143"})}, wantAddr: "127.0.0.1:143"},
		"flag beats env": {opts: []Option{
			WithEnv(map[string]string{"MAILMIG_VAR_host": "10.0.0.1"}),
			WithVariables(map[string]string{"host": "mail.example.test"}),
		}, wantAddr: "mail.example.test:20000"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := append([]Option{WithEnv(nil)}, tc.opts...)
			m, diags := Parse("plan.hcl", src, opts...)
			if len(diags) > 0 {
				t.Fatal(formatDiags(diags))
			}
			if got := m.Backend("a").Endpoint(ProtoIMAP).Address; got != tc.wantAddr {
				t.Errorf("address = %q, want %q", got, tc.wantAddr)
			}
			if got := m.Wave("pilot").Accounts; !cmp.Equal(got, []string{"alice@example.test"}) {
				t.Errorf("pilot accounts = %v", got)
			}
		})
	}
	_, diags := Parse("plan.hcl", src, WithEnv(nil), WithVariables(map[string]string{"port": "many"}))
	if !diags.HasErrors() || diags[0].Summary != "Invalid variable value" {
		t.Errorf("non-numeric port: %s", formatDiags(diags))
	}
}

// TestLoadDir checks that a plan spread over several files loads as one,
// that file order does not matter for references, and that Load accepts
// both a directory and a file.
func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a_waves.hcl":    "wave \"w\" {\n  accounts = accounts.g\n}\n",
		"b_accounts.hcl": "accounts \"g\" {\n  from = backend.s\n  to   = backend.t\n  list = [\"alice@example.test\"]\n}\n",
		"c_backends.hcl": "backend \"s\" {\n  pop3 {\n    address = \"127.0.0.1:110\"\n  }\n}\nbackend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n",
		"notes.txt":      "not a plan",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, diags := Load(dir, WithEnv(nil))
	if len(diags) > 0 {
		t.Fatal(formatDiags(diags))
	}
	if len(m.Files) != 3 || m.Dir != dir {
		t.Errorf("files = %v, dir = %q", m.Files, m.Dir)
	}
	if a := m.Account("ALICE@example.test"); a == nil || a.Wave != "w" || a.From != "s" || !cmp.Equal(a.Data, []DataKind{DataMail}) {
		t.Errorf("account = %+v", a)
	}
	if m.State.Path != filepath.Join(dir, "state") || m.Routes.SQLite != filepath.Join(dir, "state", "routes.db") {
		t.Errorf("state = %q, routes = %q", m.State.Path, m.Routes.SQLite)
	}
	m2, _ := Load(filepath.Join(dir, "c_backends.hcl"), WithEnv(nil))
	if len(m2.Backends) != 2 || len(m2.Files) != 1 {
		t.Errorf("single file: %d backends, files %v", len(m2.Backends), m2.Files)
	}
	if m2.Hash == m.Hash || len(m.Hash) != 64 {
		t.Errorf("hashes: %q %q", m.Hash, m2.Hash)
	}
	_, diags = Load(filepath.Join(dir, "missing.hcl"))
	if !diags.HasErrors() || diags[0].Summary != "Cannot read plan file" {
		t.Errorf("missing file: %s", formatDiags(diags))
	}
	_, diags = LoadDir(t.TempDir())
	if !diags.HasErrors() || diags[0].Summary != "No plan files" {
		t.Errorf("empty dir: %s", formatDiags(diags))
	}
}

// TestWaveOrder checks the topological order: dependencies first, ties in
// declaration order.
func TestWaveOrder(t *testing.T) {
	src := `
backend "s" {
  imap {
    address = "127.0.0.1:143"
  }
}
backend "t" {
  jmap {
    url = "http://127.0.0.1/jmap"
  }
}
accounts "g" {
  from = backend.s
  to   = backend.t
  list = ["a@x.test", "b@x.test", "c@x.test", "d@x.test"]
}
wave "last" {
  accounts = ["d@x.test"]
  after    = [wave.mid1, wave.mid2]
}
wave "mid2" {
  accounts = ["c@x.test"]
  after    = [wave.first]
}
wave "mid1" {
  accounts = ["b@x.test"]
  after    = [wave.first]
}
wave "first" {
  accounts = ["a@x.test"]
}
`
	m, diags := Parse("p.hcl", []byte(src), WithEnv(nil))
	if len(diags) > 0 {
		t.Fatal(formatDiags(diags))
	}
	var names []string
	for _, w := range m.Waves {
		names = append(names, w.Name)
	}
	if want := []string{"first", "mid2", "mid1", "last"}; !cmp.Equal(names, want) {
		t.Errorf("order = %v, want %v", names, want)
	}
}

// TestManyUnassigned checks that a large plan with accounts in no wave
// gets a bounded number of warnings.
func TestManyUnassigned(t *testing.T) {
	var b strings.Builder
	b.WriteString("backend \"s\" {\n  imap {\n    address = \"127.0.0.1:143\"\n  }\n}\nbackend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n")
	b.WriteString("accounts \"g\" {\n  from = backend.s\n  to   = backend.t\n  list = [\n")
	for i := range 100 {
		fmt.Fprintf(&b, "    \"u%d@x.test\",\n", i)
	}
	b.WriteString("  ]\n}\nwave \"w\" {\n  accounts = [\"u0@x.test\"]\n}\n")
	_, diags := Parse("p.hcl", []byte(b.String()), WithEnv(nil))
	if len(diags) != maxUnassignedWarnings+1 || diags.HasErrors() {
		t.Fatalf("got %d diagnostics:\n%s", len(diags), formatDiags(diags))
	}
	if last := diags[len(diags)-1]; !strings.HasPrefix(last.Detail, "89 more accounts") {
		t.Errorf("summary warning: %s", last.Detail)
	}
}

// FuzzPlanParse feeds arbitrary bytes to the parser: it must never panic,
// and must always return a non-nil Migration.
func FuzzPlanParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/invalid/*.hcl", "../examples/*/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`wave "a" { after = [wave.a] accounts = accounts.x }`))
	f.Add([]byte(`accounts "x" { list = csv("/dev/null") from = backend.a to = backend.a }`))
	// Deep nesting: before MaxNestingDepth this overflowed the stack.
	f.Add([]byte("variable \"x\" {\n  default = " + strings.Repeat("(", 100_000) + "\n}\n"))
	f.Add([]byte("variable \"x\" {\n  default = \"" + strings.Repeat("${\"", 1000) + "\n}\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		m, _ := Parse(filepath.Join(dir, "fuzz.hcl"), src, WithEnv(testEnv), WithBaseDir(dir))
		if m == nil {
			t.Fatal("nil Migration")
		}
	})
}

// BenchmarkLoad100k loads a plan of 100,000 accounts from ten CSV files,
// one accounts block and one wave each: the engine's plan benchmark starts
// with this load.
func BenchmarkLoad100k(b *testing.B) {
	dir := b.TempDir()
	var p strings.Builder
	p.WriteString("backend \"s\" {\n  imap {\n    address = \"127.0.0.1:143\"\n  }\n}\nbackend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n")
	for g := range 10 {
		var csv strings.Builder
		csv.WriteString("address,source_login,target_login,password_ref\n")
		for i := g * 10_000; i < (g+1)*10_000; i++ {
			fmt.Fprintf(&csv, "user%d@example.test,user%d,,\n", i, i)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("g%d.csv", g)), []byte(csv.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&p, "accounts \"g%d\" {\n  from = backend.s\n  to   = backend.t\n  list = csv(\"g%d.csv\")\n}\n", g, g)
		fmt.Fprintf(&p, "wave \"w%d\" {\n  accounts = accounts.g%d\n", g, g)
		if g > 0 {
			fmt.Fprintf(&p, "  after    = [wave.w%d]\n", g-1)
		}
		p.WriteString("}\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(p.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		m, diags := Load(dir, WithEnv(nil))
		if len(diags) > 0 || len(m.Accounts) != 100_000 || m.Account("user99999@example.test").Wave != "w9" {
			b.Fatalf("%d accounts, diags:\n%s", len(m.Accounts), formatDiags(diags))
		}
	}
}

// BenchmarkLoadCSV1M loads a plan whose one accounts block reads a million
// accounts with csv(): a legitimate plan, whose memory must grow with the
// list, not many times it. Run with -benchmem (and -benchtime=1x: one load
// takes seconds).
func BenchmarkLoadCSV1M(b *testing.B) {
	dir := b.TempDir()
	writeCSVPlan(b, dir, 1_000_000)
	b.ResetTimer()
	for b.Loop() {
		m, diags := Load(dir, WithEnv(nil))
		if len(diags) > 0 || len(m.Accounts) != 1_000_000 {
			b.Fatalf("%d accounts, diags:\n%s", len(m.Accounts), formatDiags(diags))
		}
	}
}

// writeCSVPlan writes migration.hcl and accounts.csv with n accounts in
// one accounts block and one wave.
func writeCSVPlan(tb testing.TB, dir string, n int) {
	tb.Helper()
	var csv bytes.Buffer
	csv.WriteString("address,source_login,target_login,password_ref\n")
	for i := range n {
		fmt.Fprintf(&csv, "user%d@example.test,user%d,,\n", i, i)
	}
	plan := "backend \"s\" {\n  imap {\n    address = \"127.0.0.1:143\"\n  }\n}\nbackend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n" +
		"accounts \"g\" {\n  from = backend.s\n  to   = backend.t\n  list = csv(\"accounts.csv\")\n}\nwave \"w\" {\n  accounts = accounts.g\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "accounts.csv"), csv.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(plan), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// TestHash checks that the plan hash covers the CSV files and does not
// depend on where the plan lives.
func TestHash(t *testing.T) {
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plan := "backend \"s\" {\n  imap {\n    address = \"127.0.0.1:143\"\n  }\n}\nbackend \"t\" {\n  jmap {\n    url = \"http://127.0.0.1/jmap\"\n  }\n}\n" +
		"accounts \"g\" {\n  from = backend.s\n  to   = backend.t\n  list = csv(\"a.csv\")\n}\nwave \"w\" {\n  accounts = accounts.g\n}\n"
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		write(d, "migration.hcl", plan)
		write(d, "a.csv", "address\nalice@example.test\n")
	}
	ma, diags := Load(a, WithEnv(nil))
	if len(diags) > 0 {
		t.Fatal(formatDiags(diags))
	}
	mb, _ := Load(b, WithEnv(nil))
	if ma.Hash != mb.Hash {
		t.Error("the same plan in two directories hashes differently")
	}
	write(b, "a.csv", "address\nalice@example.test\nbob@example.test\n")
	mb, _ = Load(b, WithEnv(nil))
	if ma.Hash == mb.Hash {
		t.Error("changing the CSV file does not change the hash")
	}
}
