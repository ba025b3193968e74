package state

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func fixedNow() time.Time { return time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC) }

func openT(t testing.TB, dir string, o *Options) *Journal {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	if o.Now == nil {
		o.Now = fixedNow
	}
	j, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func mustAppend(t testing.TB, j *Journal, r Record) Record {
	t.Helper()
	out, err := j.Append(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func lifecycle(t testing.TB, j *Journal, acct string) {
	mustAppend(t, j, Record{Type: TypeStart, Account: acct, Action: "import", Source: "legacy", Target: "new", Wave: "w"})
	mustAppend(t, j, Record{Type: TypeFinish, Account: acct, Action: "import", Outcome: OutcomeOK, Counts: &Counts{Messages: 40}})
	mustAppend(t, j, Record{Type: TypeStart, Account: acct, Action: "export"})
	mustAppend(t, j, Record{Type: TypeFinish, Account: acct, Action: "export", Outcome: OutcomeOK, Counts: &Counts{Messages: 40}})
	mustAppend(t, j, Record{Type: TypeTransition, Account: acct, Phase: PhaseStaged})
}

func TestAppendFoldReopen(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, &Options{Actor: "ann@host", RunID: "github:7", PlanHash: "abc"})
	if j.Serial() != 0 || j.Lineage() != "" {
		t.Fatal("new journal not empty")
	}
	lifecycle(t, j, "a@example.test")
	if j.Serial() != 6 {
		t.Fatalf("serial = %d, want 6 (init + 5)", j.Serial())
	}
	lin := j.Lineage()
	if lin == "" {
		t.Fatal("no lineage")
	}
	a := j.Account("a@example.test")
	if a.Phase != PhaseStaged || !a.Imported || !a.Exported || a.LastPassCounts.Messages != 40 || a.Source != "legacy" || a.InFlight != "" {
		t.Fatalf("fold: %+v", a)
	}
	head := j.Head()
	j.Close()

	var recs []Record
	if err := ReadRecords(dir, func(r *Record) bool { recs = append(recs, *r); return true }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 6 || recs[1].Actor != "ann@host" || recs[1].RunID != "github:7" || recs[1].PlanHash != "abc" || recs[0].Type != TypeInit {
		t.Fatalf("records: %+v", recs[:2])
	}
	j2 := openT(t, dir, nil)
	if j2.Serial() != 6 || j2.Lineage() != lin || j2.Head() != head {
		t.Fatalf("reopen: serial %d lineage %q head %q", j2.Serial(), j2.Lineage(), j2.Head())
	}
	if got := j2.Account("a@example.test").Phase; got != PhaseStaged {
		t.Fatalf("phase after reopen = %s", got)
	}
}

func TestSnapshot(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, nil)
	lifecycle(t, j, "a@example.test")
	if err := j.WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, j, Record{Type: TypeStart, Account: "a@example.test", Action: "catch-up"})
	j.Close()

	j2 := openT(t, dir, nil)
	if j2.snapPos == 0 {
		t.Fatal("snapshot not used")
	}
	a := j2.Account("a@example.test")
	if a.InFlight != "catch-up" || a.Phase != PhaseStaged || j2.Serial() != 7 {
		t.Fatalf("fold from snapshot + tail: serial %d %+v", j2.Serial(), a)
	}
	j2.Close()

	// A snapshot that no longer matches the journal is ignored.
	path := filepath.Join(dir, JournalFile)
	b, _ := os.ReadFile(path)
	b = bytes.Replace(b, []byte(`"messages":40`), []byte(`"messages":41`), 1)
	os.WriteFile(path, b, 0o640)
	j3 := openT(t, dir, &Options{ReadOnly: true})
	if j3.Serial() != 7 {
		t.Fatalf("serial = %d", j3.Serial())
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	build := func(t *testing.T, snapshot bool) string {
		dir := t.TempDir()
		j := openT(t, dir, nil)
		lifecycle(t, j, "a@example.test")
		lifecycle(t, j, "b@example.test")
		if snapshot {
			if err := j.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
		}
		j.Close()
		return dir
	}
	lines := func(dir string) []string {
		b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
		return strings.SplitAfter(string(b), "\n")
	}
	write := func(dir string, ls []string) {
		os.WriteFile(filepath.Join(dir, JournalFile), []byte(strings.Join(ls, "")), 0o640)
	}
	tests := map[string]struct {
		snapshot bool
		edit     func([]string) []string
		broken   uint64
		contains string
	}{
		"intact": {edit: func(l []string) []string { return l }},
		"edited middle record": {edit: func(l []string) []string {
			l[2] = strings.Replace(l[2], `"messages":40`, `"messages":4000`, 1)
			return l
		}, broken: 4, contains: "does not carry the hash of record 3"},
		"removed record": {edit: func(l []string) []string { return append(l[:4], l[5:]...) }, broken: 5, contains: "seq 6, want 5"},
		"garbage line":   {edit: func(l []string) []string { l[6] = "{not json\n"; return l }, broken: 7, contains: "not a valid record"},
		"edited last record with snapshot": {snapshot: true, edit: func(l []string) []string {
			n := len(l) - 2
			l[n] = strings.Replace(l[n], `"staged"`, `"done"`, 1)
			return l
		}, broken: 11, contains: "snapshot"},
		"truncated tail with snapshot": {snapshot: true, edit: func(l []string) []string { return l[:len(l)-3] }, broken: 10, contains: "removed from the end"},
		"incomplete last line is a warning": {edit: func(l []string) []string {
			return append(l, `{"seq":12,"ti`)
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := build(t, tc.snapshot)
			write(dir, tc.edit(lines(dir)))
			res, err := Verify(dir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.broken == 0 {
				if !res.OK {
					t.Fatalf("verify failed: %+v", res)
				}
				return
			}
			if res.OK || res.BrokenSeq != tc.broken || !strings.Contains(res.Problem, tc.contains) {
				t.Fatalf("got broken=%d problem=%q, want %d containing %q", res.BrokenSeq, res.Problem, tc.broken, tc.contains)
			}
		})
	}
}

func TestTruncatedLastLine(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, nil)
	lifecycle(t, j, "a@example.test")
	j.Close()
	path := filepath.Join(dir, JournalFile)
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":7,"time":"2026-11-28T10:00:00Z","type":"sta`)
	f.Close()

	ro := openT(t, dir, &Options{ReadOnly: true})
	if ro.Serial() != 6 || ro.Repaired() == "" {
		t.Fatalf("read-only: serial %d repaired %q", ro.Serial(), ro.Repaired())
	}
	ro.Close()
	if res, _ := Verify(dir); !res.OK || res.Warning == "" {
		t.Fatalf("verify before repair: %+v", res)
	}
	j2 := openT(t, dir, nil)
	if !strings.Contains(j2.Repaired(), "incomplete") {
		t.Fatalf("no repair: %q", j2.Repaired())
	}
	mustAppend(t, j2, Record{Type: TypeStart, Account: "a@example.test", Action: "catch-up"})
	j2.Close()
	if res, _ := Verify(dir); !res.OK || res.Warning != "" || res.Records != 7 {
		t.Fatalf("verify after repair: %+v", res)
	}
}

func TestRedact(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, &Options{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "(sensitive)") }})
	mustAppend(t, j, Record{Type: TypeFinish, Account: "a@example.test", Action: "import", Outcome: OutcomeFailed, Error: "login as a with hunter2 refused"})
	j.Close()
	b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	if bytes.Contains(b, []byte("hunter2")) || !bytes.Contains(b, []byte("(sensitive)")) {
		t.Fatalf("secret reached the journal: %s", b)
	}
}

// TestMismatchesRecorded: a rolled-back cut-over's named mismatches are
// redacted, survive a reopen, fold into the state, and a record without
// them (an older journal) reads as before; the chain verifies.
func TestMismatchesRecorded(t *testing.T) {
	dir := t.TempDir()
	j := openT(t, dir, &Options{Redact: func(s string) string { return strings.ReplaceAll(s, "hunter2", "(sensitive)") }})
	mustAppend(t, j, Record{Type: TypeFinish, Account: "b@example.test", Action: "cutover", Outcome: OutcomeRolledBack,
		Error: "verify found 1 mismatch", Counts: &Counts{Mismatches: 1}})
	ms := []Mismatch{
		{Kind: "extra", Mailbox: "INBOX", MessageID: "stray@example.test", TargetID: "M1"},
		{Kind: "keywords", Mailbox: "INBOX", ArchiveID: 3, Want: "hunter2", Got: "$seen"},
	}
	mustAppend(t, j, Record{Type: TypeFinish, Account: "a@example.test", Action: "cutover", Outcome: OutcomeRolledBack,
		Error: "verify found 2 mismatches", Counts: &Counts{Mismatches: 2}, Mismatches: ms})
	if ms[1].Want != "hunter2" {
		t.Fatal("the caller's mismatches were changed")
	}
	j.Close()
	b, _ := os.ReadFile(filepath.Join(dir, JournalFile))
	if bytes.Contains(b, []byte("hunter2")) || !bytes.Contains(b, []byte(`"message_id":"stray@example.test"`)) {
		t.Fatalf("journal: %s", b)
	}
	if res, _ := Verify(dir); !res.OK {
		t.Fatalf("verify: %+v", res)
	}
	j = openT(t, dir, &Options{ReadOnly: true})
	defer j.Close()
	a, old := j.Account("a@example.test"), j.Account("b@example.test")
	if a.Mismatches != 2 || len(a.VerifyMismatches) != 2 || a.VerifyMismatches[0] != ms[0] || a.VerifyMismatches[1].Want != "(sensitive)" {
		t.Fatalf("a: %+v", a)
	}
	if old.Mismatches != 1 || old.VerifyMismatches != nil {
		t.Fatalf("b (no names): %+v", old)
	}
}

// TestKillDuringAppend kills a process that appends as fast as it can with
// SIGKILL and checks that the journal opens, repairs and verifies.
func TestKillDuringAppend(t *testing.T) {
	if os.Getenv("MAILMIG_JOURNAL_CHILD") != "" {
		t.Skip("child")
	}
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppendForever$")
		cmd.Env = append(os.Environ(), "MAILMIG_JOURNAL_CHILD="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		want := int64(2000 + round*3000)
		for {
			st, err := os.Stat(filepath.Join(dir, JournalFile))
			if err == nil && st.Size() > want {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("child did not write")
			}
			time.Sleep(time.Millisecond) // polling a child process's progress
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		j, err := Open(dir, &Options{})
		if err != nil {
			t.Fatalf("open after kill: %v", err)
		}
		n := j.Serial()
		if _, err := j.Append(Record{Type: TypeNoteForTest, Account: "x@example.test"}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		res, err := Verify(dir)
		if err != nil || !res.OK || res.Records != n+1 {
			t.Fatalf("verify after kill: %+v %v", res, err)
		}
	}
}

// TypeNoteForTest is a record type that folds to nothing.
const TypeNoteForTest RecordType = "note"

func TestHelperAppendForever(t *testing.T) {
	dir := os.Getenv("MAILMIG_JOURNAL_CHILD")
	if dir == "" {
		t.Skip("only run as a child of TestKillDuringAppend")
	}
	j, err := Open(dir, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 3000) // long lines make a torn write likelier
	for i := 0; ; i++ {
		if _, err := j.Append(Record{Type: TypeFinish, Account: fmt.Sprintf("u%d@example.test", i%50), Action: "import", Outcome: OutcomeFailed, Error: pad}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, taken, err := Acquire(dir, "ann@host", "apply")
	if err != nil || taken != nil {
		t.Fatal(err, taken)
	}
	_, _, err = Acquire(dir, "bob@host", "apply")
	var le *LockError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Info.ID != l.Info.ID || le.Info.Owner != "ann@host" {
		t.Fatalf("second acquire: %v", err)
	}
	if !strings.Contains(err.Error(), "force-unlock "+l.Info.ID) {
		t.Fatalf("message does not say how to unlock: %v", err)
	}
	if _, err := ForceUnlock(dir, "wrong"); err == nil {
		t.Fatal("force-unlock with the wrong id succeeded")
	}
	if _, err := ForceUnlock(dir, l.Info.ID); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err == nil {
		t.Fatal("unlock after force-unlock succeeded")
	}
	if _, err := ForceUnlock(dir, "x"); !errors.Is(err, ErrNotLocked) {
		t.Fatalf("got %v", err)
	}

	// A lock of a dead process on this host is taken over.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1)")
	}
	l2, _, err := Acquire(dir, "ann@host", "apply")
	if err != nil {
		t.Fatal(err)
	}
	l2.Info.PID = cmd.Process.Pid
	b := fmt.Sprintf(`{"id":"dead","owner":"ann@host","operation":"apply","created":"2026-11-28T10:00:00Z","host":%q,"pid":%d}`, l2.Info.Host, cmd.Process.Pid)
	os.WriteFile(filepath.Join(dir, LockFile), []byte(b), 0o640)
	l3, taken, err := Acquire(dir, "bob@host", "apply")
	if err != nil || taken == nil || taken.ID != "dead" {
		t.Fatalf("takeover: %v %+v", err, taken)
	}
	if err := l3.Unlock(); err != nil {
		t.Fatal(err)
	}
}

func TestRunIDFromEnv(t *testing.T) {
	env := map[string]string{"GITHUB_RUN_ID": "42", "GITHUB_RUN_ATTEMPT": "2"}
	if got := RunIDFromEnv(func(k string) string { return env[k] }); got != "github:42.2" {
		t.Fatalf("got %q", got)
	}
	if got := RunIDFromEnv(func(string) string { return "" }); got != "" {
		t.Fatalf("got %q", got)
	}
}
