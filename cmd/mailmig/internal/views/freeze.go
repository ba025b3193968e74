package views

import (
	"fmt"

	"github.com/mailmig/mailmig/engine"
)

// FreezeText says how long a planned cut-over is expected to keep the
// account frozen ("" when not estimated): "frozen about 3 s (the last
// catch-up took 3 s for 12 changes)".
func FreezeText(c *engine.Change) string {
	f := c.Freeze
	if f == nil {
		return ""
	}
	var t string
	if f.Seconds <= 1 {
		t = fmt.Sprintf("frozen 1 s or less (the last catch-up: %s in 1 s or less", countNoun(int(f.LastCatchUpChanges), "change"))
	} else {
		t = fmt.Sprintf("frozen about %s (the last catch-up took %s for %s", seconds(f.Seconds), seconds(f.LastCatchUpSeconds), countNoun(int(f.LastCatchUpChanges), "change"))
	}
	if f.Pending > max(f.LastCatchUpChanges, 1) {
		t += fmt.Sprintf("; %d wait now", f.Pending)
	}
	return t + ")"
}

// seconds words whole seconds as an operator reads a freeze: seconds
// below 2 minutes, else minutes.
func seconds(s int64) string {
	if s < 120 {
		return fmt.Sprintf("%d s", s)
	}
	return fmt.Sprintf("%d min", (s+59)/60)
}
