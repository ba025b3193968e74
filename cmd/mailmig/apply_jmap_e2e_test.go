package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
)

// TestApplyJMAPToJMAP migrates an account from one JMAP server to another
// with "mailmig plan" and "mailmig apply": the source backend declares
// only a jmap endpoint, so the account is read by the JMAP source
// (Mailbox/changes, Email/changes) and written by the JMAP export. Both
// are accounts of the harness's Cyrus (A, the "old" server, and B, the
// "new" one). Mail that arrives at A between the passes is carried over;
// at the end the plan has no changes, every message of A is on B exactly
// once and the journal verifies.
func TestApplyJMAPToJMAP(t *testing.T) {
	s := needPeers(t)
	dir := t.TempDir()
	a := s.NewAccount(t)
	b := peers.Account{Email: "t" + strings.TrimPrefix(strings.Split(a.Email, "@")[0], "t") + "b@example.test", Password: a.Password}
	if err := s.AddAccount(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILMIG_JJ_PW", a.Password)
	csv := fmt.Sprintf("address,source_login,target_login,password_ref\n%s,%s,%s,env:MAILMIG_JJ_PW\n", a.Email, a.Email, b.Email)
	if err := os.WriteFile(filepath.Join(dir, "accounts.csv"), []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "old" {
  jmap {
    url = %q
  }
}
backend "new" {
  imap {
    address = %q
    tls     = "none"
  }
  jmap {
    url = %q
  }
}
accounts "staff" {
  from = backend.old
  to   = backend.new
  list = csv("accounts.csv")
  data = ["mail"]
}
wave "all" {
  accounts = accounts.staff
}
`, s.Cyrus.JMAPURL(), s.Cyrus.IMAP, s.Cyrus.JMAPURL())
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	x := &e2e{t: t, s: s, dir: dir, planFile: planFile, expected: map[string]map[string]bool{a.Email: {}}}
	x.cli(exitOK, "routes", "default", "old")
	x.cli(exitOK, "routes", "domain", "add", "example.test")

	appendTo := func(n int, phase string) {
		c, err := imapclient.DialInsecure(s.Cyrus.IMAP, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(a.Email, a.Password).Wait(); err != nil {
			t.Fatal(err)
		}
		for range n {
			msg := testMessage(a.Email, x.newID(a, phase))
			cmd := c.Append("INBOX", int64(len(msg)), nil)
			cmd.Write(msg)
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendTo(25, "seed")
	out := x.cli(exitOK, "apply", "-auto-approve")
	if !strings.Contains(out, "import: done") || !strings.Contains(out, "export: done") {
		t.Fatalf("staging:\n%s", out)
	}
	appendTo(3, "staged")
	converged := false
	for i := 0; i < 6 && !converged; i++ {
		out = x.cli(exitOK, "apply", "-auto-approve")
		t.Logf("apply %d:\n%s", i+2, out)
		converged = strings.Contains(x.cli(exitOK, "plan"), "No changes")
	}
	if !converged {
		t.Fatalf("not converged after 7 applies:\n%s", x.cli(exitOK, "plan"))
	}
	show := x.cli(exitOK, "state", "show", a.Email)
	if !regexpLine(show, `^phase: +done$`) || !regexpLine(show, `^route: +new$`) {
		t.Fatalf("%s:\n%s", a.Email, show)
	}
	onA, onB := messageIDs(t, s.Cyrus.IMAP, a), messageIDs(t, s.Cyrus.IMAP, b)
	for id := range x.expected[a.Email] {
		if onA[id] != 1 || onB[id] != 1 {
			t.Errorf("%s: %d times on A, %d times on B; want once on each", id, onA[id], onB[id])
		}
	}
	if len(onB) != len(onA) {
		t.Errorf("%d messages on B, %d on A", len(onB), len(onA))
	}
	// vandelay verify compares the JMAP source and the JMAP target with
	// the account's archive: nothing differs.
	t.Setenv("MAILMIG_JJ_PW_B", b.Password)
	archives, err := filepath.Glob(filepath.Join(dir, "state", "archives", "*.db"))
	if err != nil || len(archives) != 1 {
		t.Fatalf("archives: %v %v", archives, err)
	}
	out = x.cli(exitOK, "vandelay", "verify", "--url", s.Cyrus.JMAPURL(), "--auth-basic", b.Email, "--password-env", "MAILMIG_JJ_PW_B",
		"--source-kind", "jmap", "--source-url", s.Cyrus.JMAPURL(), "--source-user", a.Email, "--source-password-env", "MAILMIG_JJ_PW", archives[0])
	t.Logf("verify:\n%s", out)
	res, err := state.Verify(filepath.Join(dir, "state"))
	if err != nil || !res.OK {
		t.Fatalf("journal verify: %+v %v", res, err)
	}
}
