package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// TestVandelayImportManageSieve runs "mailmig vandelay import
// managesieve" against the real Dovecot: two scripts, a re-run without
// changes, and the archive holding the bytes.
func TestVandelayImportManageSieve(t *testing.T) {
	s := needPeers(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Put the scripts with the library's own target (Dovecot's
	// ManageSieve keeps bytes exactly).
	put := map[string]string{"a": "keep;\r\n", "b": "require \"fileinto\";\nfileinto \"Ärger\";\n"}
	tg, err := openSieve(ctx, s.Dovecot.ManageSieve, acct.Email, acct.Password)
	if err != nil {
		t.Fatal(err)
	}
	for n, b := range put {
		if err := tg.Put(ctx, n, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tg.SetActive(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	tg.Close()

	dir := t.TempDir()
	db := filepath.Join(dir, "a.db")
	t.Setenv("SIEVE_PW", s.Dovecot.MasterPassword)
	args := []string{"vandelay", "import", "managesieve", "--server", s.Dovecot.ManageSieve, "--tls", "none", "--allow-cleartext",
		"--user", acct.Email, "--master-user", s.Dovecot.MasterUser, "--password-env", "SIEVE_PW", db}
	runOnce := func() string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return out.String()
	}
	if got, want := runOnce(), "sieve scripts: 2 added, 0 changed, 0 deleted, 0 unchanged; active script changed: yes\n"; got != want {
		t.Errorf("first run: %q, want %q", got, want)
	}
	if got, want := runOnce(), "sieve scripts: 0 added, 0 changed, 0 deleted, 2 unchanged; active script changed: no\n"; got != want {
		t.Errorf("second run: %q, want %q", got, want)
	}
	// export-sieve onto Cyrus with its admin as SASL authzid, twice.
	t.Setenv("CYRUS_PW", s.Cyrus.AdminPassword)
	exp := []string{"vandelay", "export-sieve", "--server", s.Cyrus.ManageSieve, "--tls", "none", "--allow-cleartext",
		"--user", acct.Email, "--master-user", s.Cyrus.AdminUser, "--password-env", "CYRUS_PW", db}
	for i, want := range []string{"sieve scripts: 2 put, 0 updated, 0 deleted, 0 unchanged; activations: 1\n",
		"sieve scripts: 0 put, 0 updated, 0 deleted, 2 unchanged; activations: 0\n"} {
		var out, errb bytes.Buffer
		if code := run(ctx, exp, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("export %d: exit %d: %s", i, code, errb.String())
		}
		if out.String() != want {
			t.Errorf("export %d: %q, want %q", i, out.String(), want)
		}
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"vandelay", "inspect", db}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "sieve scripts: 2\n") || !strings.Contains(out.String(), "  b  (active)\n") {
		t.Errorf("inspect does not list the scripts:\n%s", out.String())
	}
	a, err := archive.Open(ctx, db, &archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ss, err := a.SieveScripts(ctx, false)
	if err != nil || len(ss) != 2 || !ss[1].Active {
		t.Fatalf("archive scripts: %+v, %v", ss, err)
	}
	for _, sc := range ss {
		if sc.Hash != archive.Hash([]byte(put[sc.Name])) {
			t.Errorf("script %q: archive hash differs from the bytes put", sc.Name)
		}
	}
}

func openSieve(ctx context.Context, addr, user, pass string) (vandelay.SieveTarget, error) {
	return sources.SieveTargets["managesieve"](ctx, &sources.Spec{
		Server: vandelay.Server{Address: addr, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: user, Password: pass},
	})
}
