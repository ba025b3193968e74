package views

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// TestMismatchText words one journaled mismatch per kind of identity.
func TestMismatchText(t *testing.T) {
	for _, tc := range []struct {
		m    state.Mismatch
		want string
	}{
		{state.Mismatch{Kind: "extra", Mailbox: "INBOX", MessageID: "stray@example.test", TargetID: "M1"},
			"extra INBOX <stray@example.test>: on the target, not in the archive"},
		{state.Mismatch{Kind: "missing", Mailbox: "Sent", ArchiveID: 42},
			"missing Sent archive message 42: in the archive, not on the target"},
		{state.Mismatch{Kind: "keywords", Mailbox: "INBOX", MessageID: "a@b", ArchiveID: 7, Want: "$seen", Got: "$flagged $seen"},
			"keywords INBOX <a@b>: expected $seen, found $flagged $seen"},
		{state.Mismatch{Kind: "count", Mailbox: "INBOX", Want: "25", Got: "26"},
			"count INBOX: expected 25, found 26"},
		{state.Mismatch{Kind: "extra", TargetID: "M9"},
			"extra target email M9: on the target, not in the archive"},
		{state.Mismatch{Kind: "sieve-content", Item: "vacation"},
			"sieve-content vacation"},
		{state.Mismatch{Kind: "role", Mailbox: "Sent", Want: "sent"},
			"role Sent: expected sent, found -"},
	} {
		if got := MismatchText(tc.m); got != tc.want {
			t.Errorf("MismatchText(%+v)\n got %q\nwant %q", tc.m, got, tc.want)
		}
	}
}

// TestVerifyAdvice: one line for the total, then one per kind in the
// order the kinds first appear, with the count among the named ones.
func TestVerifyAdvice(t *testing.T) {
	if got := VerifyAdvice("a@x", nil); got != nil {
		t.Fatalf("nil LastVerify: %q", got)
	}
	lv := &engine.LastVerify{Total: 30, Mismatches: []state.Mismatch{
		{Kind: "extra", Mailbox: "INBOX", MessageID: "s1@x"},
		{Kind: "count", Mailbox: "INBOX", Want: "2", Got: "4"},
		{Kind: "extra", Mailbox: "INBOX", MessageID: "s2@x"},
		{Kind: "missing", Mailbox: "Sent", ArchiveID: 3},
		{Kind: "content", Mailbox: "Sent", MessageID: "c@x"},
		{Kind: "sieve-active", Item: "main"},
		{Kind: "something-new"},
	}}
	want := []string{
		`last cut-over rolled back: verify found 30 mismatches (the journal names 7; "mailmig state show a@x" lists them)`,
		`2 extra: mail on the target that the source does not have, usually delivered to the target outside the proxy; find it by its Message-ID and move it to the source (append it there, delete it on the target), then apply again`,
		`1 count: a mailbox holds another number of messages; see the other mismatches of the same mailbox`,
		`1 missing: archive mail not on the target; the next apply's catch-up exports it again`,
		`1 content: the target's bytes differ from the archive's; check the target for rewriting (filters, antivirus), delete the email there and apply again`,
		`1 sieve-active: the sieve scripts differ on the target; apply again (the catch-up rewrites them), or change them on the target`,
		`1 something-new: run "mailmig vandelay verify" on the account for details`,
	}
	if diff := cmp.Diff(want, VerifyAdvice("a@x", lv)); diff != "" {
		t.Errorf("advice (-want +got):\n%s", diff)
	}
	// Every kind verify reports has its own advice.
	for _, k := range []string{"count", "missing", "extra", "duplicate", "content", "size", "keywords", "receivedAt",
		"membership", "mailbox-missing", "hierarchy", "role", "subscription", "source"} {
		if verifyAdvice[k] == "" {
			t.Errorf("no advice for kind %q", k)
		}
	}
	// A journal from before mismatches were named: the count only.
	if diff := cmp.Diff([]string{"last cut-over rolled back: verify found 1 mismatch"}, VerifyAdvice("a@x", &engine.LastVerify{Total: 1})); diff != "" {
		t.Errorf("count only (-want +got):\n%s", diff)
	}
}

// TestStateShowMismatches: state show lists the named mismatches under
// the account's rows.
func TestStateShowMismatches(t *testing.T) {
	var out bytes.Buffer
	v := New(&out, &out, false)
	v.StateShowHuman(&StateAccount{Account: &state.Account{Address: "a@x", Phase: state.PhaseCatchingUp, FailedCutovers: 1,
		LastError: "verify found 2 mismatches between source and target", Mismatches: 2,
		VerifyMismatches: []state.Mismatch{
			{Kind: "extra", Mailbox: "INBOX", MessageID: "stray@x", TargetID: "M1"},
			{Kind: "count", Mailbox: "INBOX", Want: "25", Got: "26"},
		}}})
	got := out.String()
	for _, want := range []string{
		"verify mismatches:  2 of the last failed cut-over\n",
		"\nMismatches of the last failed cut-over (2 of 2):\n  extra INBOX <stray@x>: on the target, not in the archive\n  count INBOX: expected 25, found 26\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("state show lacks %q:\n%s", want, got)
		}
	}
}

// TestChangesVerifyAdvice: plan prints the advice under a planned change
// and under a waiting account of a halted wave.
func TestChangesVerifyAdvice(t *testing.T) {
	lv := &engine.LastVerify{Total: 1, Mismatches: []state.Mismatch{{Kind: "missing", Mailbox: "INBOX", ArchiveID: 1}}}
	ch := &engine.Changes{Waves: []*engine.WaveChanges{{Name: "w", Status: engine.WaveHalted, Note: "halted",
		Changes: []*engine.Change{{ID: "catch-up:b@x", Account: "b@x", Action: engine.CatchUp, Reason: engine.Reason{Code: engine.ReasonRepeatPass}, LastVerify: lv}},
		Waiting: []*engine.Waiting{{Account: "a@x", Phase: state.PhaseCatchingUp, Reason: "its last cut-over was rolled back by verify", LastVerify: lv}},
	}}}
	var out bytes.Buffer
	New(&out, &out, false).Changes(ch, nil)
	got := out.String()
	for _, want := range []string{
		"catch-up b@x (repeat the pass)\n      last cut-over rolled back: verify found 1 mismatch (\"mailmig state show b@x\" lists them)\n      1 missing: ",
		"· waiting  a@x (its last cut-over was rolled back by verify)\n      last cut-over rolled back: verify found 1 mismatch (\"mailmig state show a@x\" lists them)\n      1 missing: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	if err := New(&out, &out, false).ChangesMarkdown(ch); err != nil {
		t.Fatal(err)
	}
	got = out.String()
	for _, want := range []string{
		"| `~` | catch-up | b@x | repeat the pass; last cut-over rolled back: verify found 1 mismatch (\"mailmig state show b@x\" lists them); 1 missing: ",
		"- `a@x`: its last cut-over was rolled back by verify\n  - last cut-over rolled back: verify found 1 mismatch (\"mailmig state show a@x\" lists them)\n  - 1 missing: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q:\n%s", want, got)
		}
	}
}
