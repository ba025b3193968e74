package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestVandelayExportIMAP runs "mailmig vandelay import imap" from Dovecot
// and "mailmig vandelay export-imap" onto Cyrus twice: the messages arrive
// hash-equal (bodies compares by SHA-256 per Message-ID) and the second
// run appends nothing.
func TestVandelayExportIMAP(t *testing.T) {
	s := needPeers(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := imapclient.DialInsecure(s.Dovecot.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(acct.Email, acct.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		m := testMessage(acct.Email, "exp-"+string(rune('a'+i))+"@example.test")
		cmd := c.Append("INBOX", int64(len(m)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
		cmd.Write(m)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	db := filepath.Join(t.TempDir(), "a.db")
	t.Setenv("EXP_PW", acct.Password)
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("mailmig %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
		}
		return out.String()
	}
	cli("vandelay", "import", "imap", "--server", s.Dovecot.IMAP, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "EXP_PW", db)
	export := []string{"vandelay", "export-imap", "--server", s.Cyrus.IMAP, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "EXP_PW"}
	if out := cli(append(export, db)...); !strings.Contains(out, ": 5 appended, 0 found there already, 0 unchanged") {
		t.Errorf("first export: %s", out)
	}
	var res struct{ Appended, Unchanged int }
	if err := json.Unmarshal([]byte(cli(append(export, "-json", db)...)), &res); err != nil || res.Appended != 0 || res.Unchanged != 5 {
		t.Errorf("second export: %+v %v", res, err)
	}
	src, _ := bodies(t, s.Dovecot.IMAP, acct)
	dst, _ := bodies(t, s.Cyrus.IMAP, acct)
	for id, h := range src {
		if len(dst[id]) != 1 || dst[id][0] != h[0] {
			t.Errorf("%s: %d copies on Cyrus, hash-equal %v", id, len(dst[id]), len(dst[id]) == 1 && dst[id][0] == h[0])
		}
	}
}
