package views

import (
	"fmt"

	"github.com/mailmig/mailmig/engine"
)

// CopyBackText says what a rollback copies back from the target ("" when
// it copies nothing or was not counted).
func CopyBackText(c *engine.Change) string {
	cb := c.CopyBack
	switch {
	case cb == nil:
		return ""
	case cb.Error != "":
		return fmt.Sprintf("copies back the mail that arrived on %s after the cut-over; it could not be counted now: %s", c.Target, cb.Error)
	case cb.Messages == 0 && cb.Flags == 0:
		return fmt.Sprintf("nothing arrived on %s after the cut-over: nothing to copy back", c.Target)
	case cb.Messages == 0:
		return fmt.Sprintf("nothing arrived on %s after the cut-over; copies the flags of %s changed there to %s first", c.Target, countNoun(int(cb.Flags), "message"), c.Source)
	}
	t := fmt.Sprintf("copies back %s that arrived on %s after the cut-over to %s first", countNoun(int(cb.Messages), "message"), c.Target, c.Source)
	if cb.Flags > 0 {
		t += fmt.Sprintf(", and the flags of %s changed there", countNoun(int(cb.Flags), "message"))
	}
	return t
}

// CopyBackQuestion is the rollback's confirmation question when the
// account was cut over.
func CopyBackQuestion(c *engine.Change) string {
	q := fmt.Sprintf("Do you want to roll %s back to %s?", c.Account, c.Source)
	switch cb := c.CopyBack; {
	case cb == nil:
	case cb.Error != "":
		q = fmt.Sprintf("Do you want to roll %s back to %s? The mail that arrived on %s after the cut-over could not be counted (%s); the rollback copies it back first and stops if it cannot.", c.Account, c.Source, c.Target, cb.Error)
	case cb.Messages == 0 && cb.Flags > 0:
		q = fmt.Sprintf("Do you want to roll %s back to %s? The flags of %s changed on %s after the cut-over will be set on %s first.", c.Account, c.Source, countNoun(int(cb.Flags), "message"), c.Target, c.Source)
	case cb.Messages > 0:
		q = fmt.Sprintf("Do you want to roll %s back to %s? %s that arrived on %s after the cut-over will be copied back to %s first.", c.Account, c.Source, capitalizeFirst(countNoun(int(cb.Messages), "message")), c.Target, c.Source)
	}
	return q
}

func capitalizeFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
