package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/recorded"
)

// TestVandelayImportJMAPCalendars runs "mailmig vandelay import
// jmap-calendars" against the recorded JMAP Calendars exchanges of
// vandelay's testdata (no server here offers the capability): the first
// import fills the archive, the second is the one-request no-change run.
func TestVandelayImportJMAPCalendars(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("JMAP_PW", "fixture-password")
	fx := "../../vandelay/testdata/jmapcal/"
	srv := recorded.New(t, fx+"session.txtar", fx+"import-run1.txtar")
	db := filepath.Join(t.TempDir(), "a.db")
	args := []string{"vandelay", "import", "jmap-calendars", "--url", srv.URL + "/.well-known/jmap", "--allow-cleartext",
		"--user", "alice@example.test", "--password-env", "JMAP_PW", db}
	for i, want := range []string{"2 synced, 0 retired; items: 3 added, 0 changed, 0 deleted", "2 synced, 0 retired; items: 0 added, 0 changed, 0 deleted, 0 unchanged"} {
		if i == 1 {
			srv.Load(fx+"session.txtar", fx+"import-run2.txtar")
		}
		var out, errb bytes.Buffer
		code := run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != exitOK || !strings.Contains(out.String(), want) {
			t.Errorf("run %d: exit %d, stdout %q (want %q), stderr %q", i, code, out.String(), want, errb.String())
		}
		if strings.Contains(out.String()+errb.String(), "fixture-password") {
			t.Errorf("run %d printed the password", i)
		}
	}
	var out, errb bytes.Buffer
	code := run(ctx, []string{"vandelay", "import", "jmap-calendars", "--url", "http://jmap.example.test/", "--user", "a", "--password-env", "JMAP_PW", db},
		Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != exitVandelayUsage || !strings.Contains(errb.String(), "--allow-cleartext") {
		t.Errorf("cleartext: exit %d, stderr %q", code, errb.String())
	}
}
