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

// TestVandelayJMAPData runs "mailmig vandelay import jmap --objects …"
// and "vandelay export --objects sieve" against recorded JMAP exchanges
// (RFC 9661, RFC 8621 6 and 8, FileNode; every request checked): the
// import fills the archive with the scripts, identities, vacation and
// files; a second import is one request of /changes; the export puts the
// scripts onto a target over SieveScript/set, activates one and verifies.
func TestVandelayJMAPData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Setenv("JMAP_PW", "fixture-password")
	db := filepath.Join(t.TempDir(), "a.db")
	data := "../../vandelay/testdata/jmapdata/"
	src := recorded.New(t, data+"session.txtar", data+"import-first.txtar", data+"session.txtar", data+"import-nochange.txtar")
	tgtData := "../../vandelay/targets/jmapdata/testdata/"
	tgt := recorded.New(t, tgtData+"session.txtar", tgtData+"sieve-first.txtar", "testdata/jmapdata/sieve-verify.txtar")
	imp := []string{"vandelay", "import", "jmap", "--url", src.URL + "/jmap/session", "--user", "ken@example.com", "--password-env", "JMAP_PW",
		"--objects", "sieve,identities,vacation,files", "--progress", "none", db}
	runs := []struct {
		args []string
		code int
		out  string
	}{
		{args: imp, out: "sieve scripts over jmap: 2 added, 0 changed, 0 deleted, 0 unchanged; activations: 1\nidentities over jmap: 2 added"},
		{args: imp, out: "unchanged since the last run (/changes): sieve, identities, files"},
		{args: []string{"vandelay", "export", "--url", tgt.URL + "/jmap/session", "--auth-basic", "ken@example.com", "--password-env", "JMAP_PW",
			"--objects", "sieve", db}, out: "sieve over jmap: 3 changes\n"},
		{args: []string{"vandelay", "import", "imap", "--server", "127.0.0.1:1", "--user", "u", "--objects", "sieve", db}, code: exitVandelayUsage},
	}
	for i, r := range runs {
		var out, errb bytes.Buffer
		code := run(ctx, r.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != r.code {
			t.Errorf("run %d: exit %d, want %d: %s%s", i, code, r.code, out.String(), errb.String())
		}
		if !strings.Contains(out.String(), r.out) {
			t.Errorf("run %d: stdout %q, want %q (stderr %q)", i, out.String(), r.out, errb.String())
		}
		if strings.Contains(out.String()+errb.String(), "fixture-password") {
			t.Errorf("run %d printed the password", i)
		}
	}
}
