package imap_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestOAuthImport imports an account from the real Dovecot logged in with
// an OAuth bearer token (what `vandelay import imap --auth xoauth2
// --token-env VAR` builds: Config.Auth and Config.Token, no password),
// over XOAUTH2 and OAUTHBEARER; Dovecot's oauth2 passdb checks the token
// (peers.Token). The archive is hash-equal to the source (bytes, keywords,
// dates, membership), a re-run changes nothing, and a wrong token or
// another user's token is an authentication error (vandelay.ErrAuth).
func TestOAuthImport(t *testing.T) {
	a := newAccount(t)
	a.set.RequireOAuth(t)
	a.load(t, 11, 25)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	token := func(auth, tok string) func(*imapsrc.Options) {
		return func(c *imapsrc.Options) { c.Auth, c.Token, c.Password = auth, tok, "" }
	}
	for _, auth := range []string{vandelay.AuthXOAUTH2, vandelay.AuthOAuthBearer} {
		t.Run(auth, func(t *testing.T) {
			vandelaytest.Run(t, a.factory(token(auth, peers.Token(a.user))), want)
		})
	}
	other := a.set.NewAccount(t)
	for name, mod := range map[string]func(*imapsrc.Options){
		"xoauth2 wrong token":               token(vandelay.AuthXOAUTH2, "not-a-token"),
		"oauthbearer other user's token":    token(vandelay.AuthOAuthBearer, peers.Token(other.Email)),
		"xoauth2 token as password (plain)": func(c *imapsrc.Options) { c.Auth, c.Password = vandelay.AuthPlain, peers.Token(a.user) },
	} {
		t.Run(name, func(t *testing.T) {
			src, err := imapsrc.New(a.config(mod))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			ar := vandelaytest.OpenArchive(t)
			run, err := ar.BeginRun(context.Background(), src.Describe(), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = src.Sync(context.Background(), run, nil)
			// The server's error challenge is answered as the mechanism
			// says, so a refused token is an authentication failure.
			if !errors.Is(err, vandelay.ErrAuth) {
				t.Errorf("got %v, want ErrAuth", err)
			}
		})
	}
}

// TestOAuthImportCommand runs the command itself: `mailmig vandelay
// import imap --auth xoauth2|oauthbearer --token-env VAR` imports the
// account (exit 0, the archive hash-equal to the source); a refused token is
// exit 3 with "authentication failed", and the token is not printed.
func TestOAuthImportCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	a := newAccount(t)
	a.set.RequireOAuth(t)
	a.load(t, 12, 9)
	want := vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass)
	bin := buildMailmig(t)
	run := func(auth, token, archivePath string) (int, string) {
		cmd := exec.Command(bin, "vandelay", "import", "imap", "--server", a.addr, "--tls", "none", "--allow-cleartext",
			"--user", a.user, "--auth", auth, "--token-env", "MM_TEST_TOKEN", "--progress", "none", archivePath)
		cmd.Env = append(os.Environ(), "MM_TEST_TOKEN="+token)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if strings.Contains(string(out), token) {
			t.Errorf("the output shows the token:\n%s", out)
		}
		return cmd.ProcessState.ExitCode(), string(out)
	}
	for _, auth := range []string{"xoauth2", "oauthbearer"} {
		t.Run(auth, func(t *testing.T) {
			arPath := filepath.Join(t.TempDir(), "a.db")
			if code, out := run(auth, peers.Token(a.user), arPath); code != 0 {
				t.Fatalf("exit %d:\n%s", code, out)
			}
			ar, err := archive.Open(context.Background(), arPath, &archive.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ar.Close()
			vandelaytest.Check(t, ar, want) // hash-equal to the source
			code, out := run(auth, "mmtok.not-a-valid-token", filepath.Join(t.TempDir(), "b.db"))
			if code != 3 || !strings.Contains(out, "authentication failed") {
				t.Errorf("refused token: exit %d, want 3 with \"authentication failed\":\n%s", code, out)
			}
		})
	}
}
