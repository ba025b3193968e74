package main

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVandelayCardDAV runs "mailmig vandelay import carddav" against the
// real Radicale and "export-carddav" onto the real Cyrus, twice each.
func TestVandelayCardDAV(t *testing.T) {
	s := needPeers(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "PUT", s.Radicale.HomeURL(acct.Email)+"contacts/a.vcf",
		strings.NewReader("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a-1\r\nFN:Änne\r\nN:Änne;;;;\r\nEND:VCARD\r\n"))
	req.SetBasicAuth(acct.Email, acct.Password)
	req.Header.Set("Content-Type", "text/vcard")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT at radicale: %v %v", resp, err)
	}
	resp.Body.Close()
	db := filepath.Join(t.TempDir(), "a.db")
	t.Setenv("DAV_PW", acct.Password)
	radicale := strings.TrimSuffix(strings.TrimPrefix(s.Radicale.URL, "http://"), "/")
	runs := []struct {
		args []string
		want string
	}{
		{[]string{"vandelay", "import", "carddav", "--server", radicale, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "DAV_PW", db},
			"addressbook collections: 1 synced, 0 retired; items: 1 added, 0 changed, 0 deleted, 0 unchanged\n"},
		{[]string{"vandelay", "import", "carddav", "--server", radicale, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "DAV_PW", db},
			"addressbook collections: 1 synced, 0 retired; items: 0 added, 0 changed, 0 deleted, 0 unchanged\n"},
		{[]string{"vandelay", "export-carddav", "--server", s.Cyrus.HTTP, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "DAV_PW", db},
			"collections created: 1; items: 1 put, 0 updated, 0 deleted, 0 unchanged\n"},
		{[]string{"vandelay", "export-carddav", "--server", s.Cyrus.HTTP, "--tls", "none", "--allow-cleartext", "--user", acct.Email, "--password-env", "DAV_PW", db},
			"collections created: 0; items: 0 put, 0 updated, 0 deleted, 1 unchanged\n"},
	}
	for i, r := range runs {
		var out, errb bytes.Buffer
		if code := run(ctx, r.args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, errb.String())
		}
		if out.String() != r.want {
			t.Errorf("run %d: %q, want %q", i, out.String(), r.want)
		}
		if strings.Contains(out.String()+errb.String(), acct.Password) {
			t.Errorf("run %d printed the password", i)
		}
	}
}
