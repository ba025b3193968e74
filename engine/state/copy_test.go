package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCopyLines: DirLines and WriteDirJournal copy a journal byte for byte
// (a record longer than the reader's buffer included) without its
// incomplete last line, and the copy verifies with the same head.
func TestCopyLines(t *testing.T) {
	src := t.TempDir()
	j, err := Open(src, &Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, note := range []string{"short", strings.Repeat("long ", 30000), "last"} {
		if _, err := j.Append(Record{Type: TypeHold, Account: "a@example.test", Note: note}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	want, err := Verify(src)
	if err != nil || !want.OK {
		t.Fatal(want, err)
	}
	full, _ := os.ReadFile(filepath.Join(src, JournalFile))
	// An interrupted append leaves a partial line; it is not copied.
	f, _ := os.OpenFile(filepath.Join(src, JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":5,"type":"ho`)
	f.Close()

	dst := filepath.Join(t.TempDir(), "state")
	if empty, err := DirEmpty(dst); err != nil || !empty {
		t.Fatalf("empty target: %v %v", empty, err)
	}
	n, err := WriteDirJournal(dst, DirLines(src))
	if err != nil || n != 4 {
		t.Fatalf("copied %d: %v", n, err)
	}
	got, _ := os.ReadFile(filepath.Join(dst, JournalFile))
	if string(got) != string(full) {
		t.Fatal("the copy differs from the journal's complete lines")
	}
	res, err := Verify(dst)
	if err != nil || !res.OK || res.Head != want.Head || res.Records != 4 {
		t.Fatalf("copy verifies as %+v %v, want head %s", res, err, want.Head)
	}
	if empty, err := DirEmpty(dst); err != nil || empty {
		t.Fatalf("target after the copy: empty=%v %v", empty, err)
	}
}
