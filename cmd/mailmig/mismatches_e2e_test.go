package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine/executor"
)

// TestStateShowAllMismatches puts 25 stray messages on the target before
// the cut-over, whose verify then fails with 26 mismatches (25 extra
// emails and INBOX's count): the journal names the first 20, and "mailmig
// state show ACCOUNT -mismatches" lists all 26 (human and JSON), each
// stray message by its Message-ID.
func TestStateShowAllMismatches(t *testing.T) {
	x := newE2E(t, 1)
	a := x.accts[0]
	if out := x.cli(exitOK, "state", "show", "-mismatches", a.Email); !strings.Contains(out, "No verify of "+a.Email+" has run yet.") {
		t.Errorf("before any verify:\n%s", out)
	}
	x.cli(exitOK, "apply", "-auto-approve")
	x.cli(exitOK, "apply", "-auto-approve") // catch-up
	if out := x.cli(exitChanges, "plan", "-detailed-exitcode"); !strings.Contains(out, "> cutover") {
		t.Fatalf("no cut-over planned:\n%s", out)
	}
	c, err := imapclient.DialInsecure(x.s.Cyrus.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	const n = 25
	for i := 0; i < n; i++ {
		msg := testMessage(a.Email, fmt.Sprintf("stray-%02d@example.test", i))
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	c.Logout().Wait()
	x.cli(exitError, "apply", "-auto-approve", "-refresh=false")

	show := x.cli(exitOK, "state", "show", a.Email)
	if !strings.Contains(show, fmt.Sprintf("Mismatches of the last failed cut-over (20 of %d):", n+1)) {
		t.Errorf("state show does not say it names 20 of %d:\n%s", n+1, show)
	}
	out := x.cli(exitOK, "state", "show", "-mismatches", a.Email)
	if !strings.Contains(out, fmt.Sprintf("found %d mismatches:", n+1)) || !strings.Contains(out, fmt.Sprintf("count INBOX: expected %d, found %d", n, 2*n)) {
		t.Errorf("the listing does not count %d:\n%s", n+1, out)
	}
	for i := 0; i < n; i++ {
		if want := fmt.Sprintf("extra INBOX <stray-%02d@example.test>", i); !strings.Contains(out, want) {
			t.Errorf("the listing lacks %q:\n%s", want, out)
		}
	}
	var l executor.MismatchList
	if err := json.Unmarshal([]byte(x.cli(exitOK, "state", "show", "-mismatches", "-json", a.Email)), &l); err != nil {
		t.Fatal(err)
	}
	if l.Account != a.Email || l.Total != n+1 || len(l.Mismatches) != n+1 || l.Mismatches[0].Kind != "extra" {
		t.Errorf("JSON listing: %+v", l)
	}
}
