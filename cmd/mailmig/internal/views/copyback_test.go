package views

import (
	"testing"

	"github.com/mailmig/mailmig/engine"
)

func TestCopyBackText(t *testing.T) {
	tests := map[string]struct {
		cb             *engine.CopyBack
		text, question string
	}{
		"not counted": {nil, "", "Do you want to roll a@example.test back to legacy?"},
		"nothing":     {&engine.CopyBack{}, "nothing arrived on stalwart after the cut-over: nothing to copy back", "Do you want to roll a@example.test back to legacy?"},
		"mail": {&engine.CopyBack{Messages: 5}, "copies back 5 messages that arrived on stalwart after the cut-over to legacy first",
			"Do you want to roll a@example.test back to legacy? 5 messages that arrived on stalwart after the cut-over will be copied back to legacy first."},
		"mail and flags": {&engine.CopyBack{Messages: 1, Flags: 2}, "copies back 1 message that arrived on stalwart after the cut-over to legacy first, and the flags of 2 messages changed there",
			"Do you want to roll a@example.test back to legacy? 1 message that arrived on stalwart after the cut-over will be copied back to legacy first."},
		"flags only": {&engine.CopyBack{Flags: 1}, "nothing arrived on stalwart after the cut-over; copies the flags of 1 message changed there to legacy first",
			"Do you want to roll a@example.test back to legacy? The flags of 1 message changed on stalwart after the cut-over will be set on legacy first."},
		"mail and data": {&engine.CopyBack{Messages: 2, Sieve: 1, Contacts: 2, Files: 1},
			"copies back 2 messages that arrived on stalwart after the cut-over, and 1 Sieve script, 2 contacts and 1 file created or changed there, to legacy first",
			"Do you want to roll a@example.test back to legacy? 2 messages that arrived on stalwart after the cut-over, and 1 Sieve script, 2 contacts and 1 file created or changed there will be copied back to legacy first."},
		"data only": {&engine.CopyBack{Calendars: 1}, "copies back 1 calendar item created or changed on stalwart after the cut-over to legacy first",
			"Do you want to roll a@example.test back to legacy? 1 calendar item created or changed on stalwart after the cut-over will be copied back to legacy first."},
		"data and flags": {&engine.CopyBack{Flags: 1, Sieve: 2}, "copies back 2 Sieve scripts created or changed on stalwart after the cut-over to legacy first, and the flags of 1 message changed there",
			"Do you want to roll a@example.test back to legacy? 2 Sieve scripts created or changed on stalwart after the cut-over will be copied back to legacy first."},
		"not countable": {&engine.CopyBack{Error: "target down"}, "copies back the mail that arrived on stalwart after the cut-over; it could not be counted now: target down",
			"Do you want to roll a@example.test back to legacy? The mail that arrived on stalwart after the cut-over could not be counted (target down); the rollback copies it back first and stops if it cannot."},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := &engine.Change{Account: "a@example.test", Action: engine.Rollback, Source: "legacy", Target: "stalwart", CopyBack: tc.cb}
			if got := CopyBackText(c); got != tc.text {
				t.Errorf("text:\n got %q\nwant %q", got, tc.text)
			}
			if got := CopyBackQuestion(c); got != tc.question {
				t.Errorf("question:\n got %q\nwant %q", got, tc.question)
			}
		})
	}
}
