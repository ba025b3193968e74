package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine/state"
)

// TestApplyCutoverVerifyMismatch: after staging and a catch-up, a message
// lands in the account on Cyrus behind mailmig's back (delivered straight
// to the target, past the proxy). The final catch-up cannot explain it (the
// export adds and patches; it never destroys what it did not put there),
// so the cut-over's verify finds it, and "mailmig apply" rolls the account
// back: routed to the source, unfrozen, the journal recording why.
func TestApplyCutoverVerifyMismatch(t *testing.T) {
	x := newE2E(t, 1)
	a := x.accts[0]
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
	msg := testMessage(a.Email, "stray-on-target@example.test")
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()

	out := x.cli(exitError, "apply", "-auto-approve", "-refresh=false")
	if !strings.Contains(out, a.Email+" cutover: ROLLED BACK to legacy, unfrozen: verify found") || !strings.Contains(out, "verify found") {
		t.Fatalf("cut-over not rolled back for the mismatch:\n%s", out)
	}
	show := x.cli(exitOK, "state", "show", a.Email)
	if !regexpLine(show, `^route: +legacy$`) || regexpLine(show, `(?i)frozen`) {
		t.Fatalf("the account is not back on its source, unfrozen:\n%s", show)
	}
	j, err := state.Open(filepath.Join(x.dir, "state"), &state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	acct := j.Account(a.Email)
	j.Close()
	if acct.Phase != state.PhaseCatchingUp || acct.InFlight != "" || acct.Mismatches < 1 ||
		!strings.Contains(acct.LastError, "verify found") {
		t.Fatalf("journal after the rollback: %+v", acct)
	}
	var last *state.Record
	if err := state.ReadRecords(filepath.Join(x.dir, "state"), func(r *state.Record) bool {
		if r.Type == state.TypeFinish && r.Account == a.Email {
			rc := *r
			last = &rc
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if last == nil || last.Action != "cutover" || last.Outcome != state.OutcomeRolledBack ||
		last.Counts == nil || last.Counts.Mismatches < 1 || !strings.Contains(last.Error, "verify found") {
		t.Fatalf("last finish record: %+v", last)
	}
	// The record names the stray message: kind, mailbox and Message-ID.
	var extra *state.Mismatch
	for i, m := range last.Mismatches {
		if m.Kind == "extra" {
			extra = &last.Mismatches[i]
		}
	}
	if extra == nil || extra.Mailbox != "INBOX" || extra.MessageID != "stray-on-target@example.test" || extra.TargetID == "" {
		t.Fatalf("the finish record does not name the extra message: %+v", last.Mismatches)
	}
	if len(acct.VerifyMismatches) != len(last.Mismatches) {
		t.Fatalf("state has %d named mismatches, the record %d", len(acct.VerifyMismatches), len(last.Mismatches))
	}
	// Old readers and the chain: the journal still verifies.
	x.cli(exitOK, "journal", "verify")
	if !strings.Contains(show, "extra INBOX <stray-on-target@example.test>: on the target, not in the archive") {
		t.Fatalf("state show does not list the extra message:\n%s", show)
	}
	// The wave halts (max_verify_mismatches = 0): -detailed-exitcode says
	// an operator is needed (3); the waiting account says what verify
	// found and what to do about it.
	plan := x.cli(exitAttention, "plan", "-detailed-exitcode")
	for _, want := range []string{"last cut-over rolled back: verify found", "mailmig state show " + a.Email, "1 extra: mail on the target that the source does not have"} {
		if !strings.Contains(plan, want) {
			t.Fatalf("plan does not say %q:\n%s", want, plan)
		}
	}
	t.Logf("rolled back: %s (%d mismatches)\n%s", last.Error, last.Counts.Mismatches, plan)
}
