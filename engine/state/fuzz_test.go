package state

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzJournal writes arbitrary bytes as a journal (and a snapshot) and
// checks that Open, Verify and ReadRecords fail cleanly instead of
// panicking, and that a journal Open accepts also verifies.
func FuzzJournal(f *testing.F) {
	good := []byte(`{"seq":1,"time":"2026-11-28T10:00:00Z","type":"init","lineage":"l","prev":""}` + "\n")
	f.Add(good, []byte(nil))
	f.Add(append(good, `{"seq":2,"time":"2026-11-28T10:00:00Z","type":"start","account":"a@example.test","action":"import","prev":"x"}`...), []byte(nil))
	f.Add([]byte("{\n}\n{"), []byte(`{"format_version":1,"offset":3,"head":"","state":{"lineage":"","serial":1,"accounts":null}}`))
	f.Add([]byte(""), []byte(`{"format_version":1,"offset":99999,"head":"","state":{}}`))
	f.Fuzz(func(t *testing.T, journal, snap []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, JournalFile), journal, 0o640); err != nil {
			t.Fatal(err)
		}
		if snap != nil {
			if err := os.WriteFile(filepath.Join(dir, SnapshotFile), snap, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		_ = ReadRecords(dir, func(*Record) bool { return true })
		res, verr := Verify(dir)
		j, err := Open(dir, &Options{ReadOnly: true})
		if err != nil {
			return
		}
		defer j.Close()
		if snap == nil && verr == nil && !res.OK {
			t.Fatalf("Open accepted a journal that Verify rejects: %+v", res)
		}
	})
}
