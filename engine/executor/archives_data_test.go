package executor

import (
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// TestArchiveInfoDataTargets: the Sieve, DAV and file export targets
// (written after the mail's) are not taken for the account's target, so an
// account moving those kinds does not look unexported.
func TestArchiveInfoDataTargets(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	o := &archive.Overview{Exports: []archive.ExportStatus{
		{Name: "jmap http://cyrus/jmap/ u", Exported: 25, LastExport: t0},
		{Name: "managesieve 127.0.0.1:4190 u", LastExport: t0.Add(time.Second), Unexported: 25},
		{Name: "carddav http://cyrus/ u", LastExport: t0.Add(2 * time.Second), Unexported: 25},
		{Name: "webdav http://apache/u/ u", LastExport: t0.Add(3 * time.Second), Unexported: 25},
	}}
	o.Stats.Messages = 25
	if info := archiveInfo(o); info.Exported != 25 || info.Unexported != 0 || !info.LastExport.Equal(t0) {
		t.Errorf("archiveInfo: %+v, want the jmap target's 25 exported", info)
	}
}
