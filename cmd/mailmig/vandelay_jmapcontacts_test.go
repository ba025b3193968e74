package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/recorded"
)

// TestVandelayJMAPContacts runs "mailmig vandelay import jmap-contacts"
// against the recordings of RFC 9610 exchanges the library's tests use
// (no server here offers urn:ietf:params:jmap:contacts): a first import,
// a no-change catch-up, and "export-jmap-contacts" refused by a session
// without the capability.
func TestVandelayJMAPContacts(t *testing.T) {
	const dir = "../../vandelay/testdata/contacts-jmap/"
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "a.db")
	t.Setenv("JMAP_PW", "secret-pw")
	srv := recorded.New(t, dir+"session.txtar", dir+"import-1-first.txtar")
	runs := []struct {
		script string
		args   []string
		code   int
		want   string
	}{
		{"", []string{"vandelay", "import", "jmap-contacts", "--url", srv.URL + "/jmap/session", "--user", "john@example.com", "--password-env", "JMAP_PW", db}, 0,
			"addressbook collections: 1 synced, 0 retired; items: 2 added, 0 changed, 0 deleted, 0 unchanged\n"},
		{"import-2-nochange.txtar", []string{"vandelay", "import", "jmap-contacts", "--url", srv.URL + "/jmap/session", "--user", "john@example.com", "--password-env", "JMAP_PW", db}, 0,
			"addressbook collections: 1 synced, 0 retired; items: 0 added, 0 changed, 0 deleted, 0 unchanged\n"},
		{"session-nocap.txtar", []string{"vandelay", "export-jmap-contacts", "--url", srv.URL + "/jmap/session", "--user", "john@example.com", "--password-env", "JMAP_PW", db}, exitVandelayPartial,
			""},
	}
	for i, r := range runs {
		switch {
		case r.script == "session-nocap.txtar":
			srv.Load(dir + r.script)
		case r.script != "":
			srv.Load(dir+"session.txtar", dir+r.script)
		}
		var out, errb bytes.Buffer
		if code := run(ctx, r.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != r.code {
			t.Fatalf("run %d: exit %d, want %d: %s", i, code, r.code, errb.String())
		}
		if out.String() != r.want {
			t.Errorf("run %d: %q, want %q", i, out.String(), r.want)
		}
		if strings.Contains(out.String()+errb.String(), "secret-pw") {
			t.Errorf("run %d printed the password", i)
		}
		if r.code != 0 && !strings.Contains(errb.String(), "urn:ietf:params:jmap:contacts") {
			t.Errorf("run %d: error %q does not name the missing capability", i, errb.String())
		}
	}
}
