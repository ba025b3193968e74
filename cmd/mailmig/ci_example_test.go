package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// ciStep is one step of a workflow job with a run: script.
type ciStep struct{ name, run string }

// ciJobs reads the run: steps of each job of a GitHub Actions workflow.
// It understands the layout examples/ci/mailmig.yml uses (two-space
// indents, "- name:" before "run:", "run: |" blocks), not YAML at large.
func ciJobs(t *testing.T, path string) map[string][]ciStep {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	jobs := map[string][]ciStep{}
	var job, name string
	inJobs := false
	var block []string
	blockIndent := -1
	flush := func() {
		if block != nil {
			jobs[job] = append(jobs[job], ciStep{name, strings.Join(block, "\n") + "\n"})
			block, blockIndent = nil, -1
		}
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		indent := len(line) - len(strings.TrimLeft(line, " "))
		trim := strings.TrimSpace(line)
		if block != nil {
			if trim == "" || indent >= blockIndent {
				if blockIndent < 0 && trim != "" {
					blockIndent = indent
				}
				if trim != "" && indent < blockIndent {
					flush()
				} else {
					if len(line) >= blockIndent && blockIndent > 0 {
						line = line[blockIndent:]
					}
					block = append(block, line)
					continue
				}
			} else {
				flush()
			}
		}
		switch {
		case trim == "" || strings.HasPrefix(trim, "#"):
		case indent == 0 && strings.HasPrefix(trim, "jobs:"):
			inJobs = true
		case indent == 0:
			inJobs = false
		case inJobs && indent == 2 && strings.HasSuffix(trim, ":"):
			job = strings.TrimSuffix(trim, ":")
		case inJobs && strings.HasPrefix(trim, "- name:"):
			name = strings.TrimSpace(strings.TrimPrefix(trim, "- name:"))
		case inJobs && strings.HasPrefix(trim, "- uses:"):
			name = ""
		case inJobs && trim == "run: |":
			block, blockIndent = []string{}, -1
		case inJobs && strings.HasPrefix(trim, "run: "):
			jobs[job] = append(jobs[job], ciStep{name, strings.TrimPrefix(trim, "run: ") + "\n"})
		}
	}
	flush()
	return jobs
}

// TestCIExample runs the steps of examples/ci/mailmig.yml as the CI system
// would: the pull request's check and plan jobs (validate, fmt -check,
// plan -markdown saved and posted as a comment), then the merge's apply
// job (the saved changes applied, the approver journaled, the report
// written). mailmig is this test binary over the fake executor; gh is a
// stub that records the comment and answers the pull request's number and
// approver. The "Install mailmig" step (go install from the network) is
// left out.
func TestCIExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	jobs := ciJobs(t, "../../examples/ci/mailmig.yml")
	for _, j := range []string{"check", "plan", "apply"} {
		if len(jobs[j]) == 0 {
			t.Fatalf("job %s has no run: steps (parsed %v)", j, jobs)
		}
	}
	wf, _ := os.ReadFile("../../examples/ci/mailmig.yml")
	if !strings.Contains(string(wf), "MAILMIG_VAR_state_dir:") {
		t.Fatal("the workflow does not put the state outside the checkout")
	}
	work := t.TempDir()
	checkout := filepath.Join(work, "checkout")
	if err := os.CopyFS(filepath.Join(checkout, "migration"), os.DirFS("../../examples/ci/migration")); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(work, "var")
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "mailmig"), "#!/bin/sh\nMAILMIG_TEST_MAIN=1 exec '"+self+"' \"$@\"\n")
	// gh: "pr comment N --body-file F [--edit-last]" keeps F (editing a
	// comment that does not exist fails, as on GitHub); "api" answers.
	write(filepath.Join(bin, "gh"), `#!/bin/sh
case "$1 $2" in
"pr comment")
  case "$*" in *--edit-last*) [ -f "$GH_LOG/comment.md" ] || exit 1;; esac
  cp "$5" "$GH_LOG/comment.md"; echo "$3" > "$GH_LOG/comment.pr";;
"api repos/acme/mail/commits/abc123/pulls") echo 7;;
"api repos/acme/mail/pulls/7/reviews") echo reviewer;;
*) echo "gh stub: $*" >&2; exit 1;;
esac
`)
	world := filepath.Join(work, "world.json")
	writeWorld(t, world, &fakeData{Source: map[string]int64{"alice@example.test": 4, "bob@example.test": 5, "carol@example.test": 6}})
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"MAILMIG_VAR_state_dir="+stateDir, "MAILMIG_SAVED="+filepath.Join(stateDir, "saved"), "MAILMIG_ACTOR=github-actions",
		"MAILMIG_TEST_WORLD="+world, "MAILMIG_TEST_NOW=2026-11-28T13:00:00Z", "LEGACY_MASTER_PASSWORD=s3cret-pw",
		"GH_LOG="+work, "PR=7", "REPO=acme/mail", "SHA=abc123")
	runJob := func(job string) string {
		t.Helper()
		var all strings.Builder
		for _, st := range jobs[job] {
			if st.name == "Install mailmig" {
				continue
			}
			cmd := exec.Command("bash", "-eo", "pipefail", "-c", st.run)
			cmd.Dir, cmd.Env = checkout, env
			out, err := cmd.CombinedOutput()
			all.Write(out)
			if err != nil {
				t.Fatalf("job %s, step %q: %v\n%s", job, st.name, err, out)
			}
		}
		return all.String()
	}

	// The pull request.
	runJob("check")
	runJob("plan")
	comment, err := os.ReadFile(filepath.Join(work, "comment.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### mailmig plan", "```mermaid\nflowchart LR", "canary: bob@example.test", "| `+` | import | alice@example.test |"} {
		if !strings.Contains(string(comment), want) {
			t.Errorf("the comment lacks %q:\n%s", want, comment)
		}
	}
	if strings.Contains(string(comment), "s3cret") {
		t.Error("the comment shows a secret")
	}
	saved := filepath.Join(stateDir, "saved", "pr-7.json")
	if _, err := os.Stat(saved); err != nil {
		t.Fatalf("the reviewed changes were not saved: %v", err)
	}
	// A second push to the pull request edits the comment.
	runJob("plan")

	// The merge.
	out := runJob("apply")
	if !strings.Contains(out, "Apply complete! 6 changes: 6 ok") {
		t.Errorf("apply:\n%s", out)
	}
	var start *state.Record
	if err := state.ReadRecords(filepath.Join(stateDir, "state"), func(r *state.Record) bool {
		if r.Type == state.TypeApplyStart {
			c := *r
			start = &c
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if start == nil || start.Approver != "reviewer (pull request #7)" || start.ChangesFile != saved || start.ChangesHash == "" || start.PlanHash == "" {
		b, _ := json.Marshal(start)
		t.Errorf("apply-start record: %s", b)
	}
	if report, err := os.ReadFile(filepath.Join(checkout, "report-abc123.md")); err != nil || !strings.Contains(string(report), "### mailmig report") {
		t.Errorf("report: %v\n%s", err, report)
	}
}
