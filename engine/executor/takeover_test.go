package executor

import (
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// TestTakeoverPruneAndHint: which exports prune (only with Takeover.Prune,
// only for an account taken over or a rehomed catch-up) and which verify
// results get the takeover hint (a taken-over account whose target holds
// only extra emails, and the counts those raise).
func TestTakeoverPruneAndHint(t *testing.T) {
	acct := &plan.Account{Address: "Ann@Example.test"}
	taken := func(a string) string {
		if a == "ann@example.test" {
			return "taken over by worker w2 from worker w1"
		}
		return ""
	}
	other := &plan.Account{Address: "bob@example.test"}
	rehomed := &engine.Change{Action: engine.CatchUp, Reason: engine.Reason{Code: engine.ReasonArchiveElsewhere}}
	cutover := &engine.Change{Action: engine.Cutover}
	for _, tc := range []struct {
		name string
		tk   Takeover
		job  *engine.Job
		want bool
	}{
		{"flag off", Takeover{TakenOver: taken}, &engine.Job{Change: cutover, Account: acct}, false},
		{"taken over", Takeover{Prune: true, TakenOver: taken}, &engine.Job{Change: cutover, Account: acct}, true},
		{"not taken over", Takeover{Prune: true, TakenOver: taken}, &engine.Job{Change: cutover, Account: other}, false},
		{"rehomed catch-up", Takeover{Prune: true}, &engine.Job{Change: rehomed, Account: other}, true},
		{"no change", Takeover{Prune: true, TakenOver: taken}, &engine.Job{Account: acct}, false},
	} {
		x := &Executor{}
		x.SetTakeover(tc.tk)
		if got := x.pruneExport(tc.job); got != tc.want {
			t.Errorf("%s: pruneExport = %v, want %v", tc.name, got, tc.want)
		}
	}

	extra := verify.Mismatch{Kind: verify.KindExtra, Mailbox: "INBOX"}
	more := verify.Mismatch{Kind: verify.KindCount, Mailbox: "INBOX", Want: "3", Got: "5"}
	fewer := verify.Mismatch{Kind: verify.KindCount, Mailbox: "INBOX", Want: "5", Got: "3"}
	missing := verify.Mismatch{Kind: verify.KindMissing, Mailbox: "INBOX"}
	x := &Executor{}
	x.SetTakeover(Takeover{TakenOver: taken})
	for _, tc := range []struct {
		name       string
		acct       *plan.Account
		src        int
		mm         []verify.Mismatch
		otherKinds int64
		wantEmails string // "" = no hint
	}{
		{"two extra and their count", acct, 0, []verify.Mismatch{extra, extra, more}, 0, "2 emails"},
		{"one extra", acct, 0, []verify.Mismatch{extra}, 0, "1 email"},
		{"not taken over", other, 0, []verify.Mismatch{extra}, 0, ""},
		{"a missing one too", acct, 0, []verify.Mismatch{extra, missing}, 0, ""},
		{"a count below", acct, 0, []verify.Mismatch{extra, fewer}, 0, ""},
		{"the source changed", acct, 1, []verify.Mismatch{extra}, 0, ""},
		{"contacts differ too", acct, 0, []verify.Mismatch{extra}, 1, ""},
		{"count only", acct, 0, []verify.Mismatch{more}, 0, ""},
	} {
		h := x.extraHint(tc.acct, tc.src, &verify.Report{Mismatches: tc.mm}, tc.otherKinds)
		switch {
		case tc.wantEmails == "" && h != "":
			t.Errorf("%s: unexpected hint %q", tc.name, h)
		case tc.wantEmails != "" && (!strings.Contains(h, "holds "+tc.wantEmails+" this worker's archive does not") || !strings.Contains(h, "-prune-on-takeover")):
			t.Errorf("%s: hint %q", tc.name, h)
		}
	}
}
