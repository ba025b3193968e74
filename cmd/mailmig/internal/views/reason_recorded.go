package views

import (
	"fmt"

	"github.com/mailmig/mailmig/engine"
)

// ReasonText words a change's structured reason (engine.Reason) for the
// human and Markdown views. waveNote is the note of the change's wave:
// cut-over reasons end with it, since it says why the wave may cut over.
// When the account's archive is on another machine and the plan used what
// that machine recorded, it says so: "…; archive observed by worker w1 at
// 2026-12-07 09:40 UTC".
func ReasonText(c *engine.Change, waveNote string) string {
	s := reasonText(c, waveNote)
	if a := c.Archive; a != nil && a.Recorded != nil {
		s += fmt.Sprintf("; archive observed by worker %s at %s", a.Recorded.Worker, fmtReasonTime(a.Recorded.At))
	}
	return s
}
