package views

import (
	"fmt"
	"strings"

	"github.com/mailmig/mailmig/engine"
)

// copyBackObjects lists the non-mail items a rollback copies back, per
// kind ("1 Sieve script, 2 contacts and 1 file"; "" when none).
func copyBackObjects(cb *engine.CopyBack) string {
	var parts []string
	for _, k := range []struct {
		n    int64
		noun string
	}{{cb.Sieve, "Sieve script"}, {cb.Contacts, "contact"}, {cb.Calendars, "calendar item"}, {cb.Files, "file"}} {
		if k.n > 0 {
			parts = append(parts, countNoun(int(k.n), k.noun))
		}
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// copyBackWhat says what a rollback copies back ("" when nothing): the
// messages that arrived on the target, then the other kinds' items
// created or changed there.
func copyBackWhat(c *engine.Change) string {
	cb := c.CopyBack
	objs := copyBackObjects(cb)
	switch {
	case cb.Messages > 0 && objs != "":
		return fmt.Sprintf("%s that arrived on %s after the cut-over, and %s created or changed there,", countNoun(int(cb.Messages), "message"), c.Target, objs)
	case cb.Messages > 0:
		return fmt.Sprintf("%s that arrived on %s after the cut-over", countNoun(int(cb.Messages), "message"), c.Target)
	case objs != "":
		return fmt.Sprintf("%s created or changed on %s after the cut-over", objs, c.Target)
	}
	return ""
}

// CopyBackText says what a rollback copies back from the target ("" when
// it copies nothing or was not counted).
func CopyBackText(c *engine.Change) string {
	cb := c.CopyBack
	if cb == nil {
		return ""
	}
	what := copyBackWhat(c)
	switch {
	case cb.Error != "":
		return fmt.Sprintf("copies back the mail that arrived on %s after the cut-over; it could not be counted now: %s", c.Target, cb.Error)
	case what == "" && cb.Flags == 0:
		return fmt.Sprintf("nothing arrived on %s after the cut-over: nothing to copy back", c.Target)
	case what == "":
		return fmt.Sprintf("nothing arrived on %s after the cut-over; copies the flags of %s changed there to %s first", c.Target, countNoun(int(cb.Flags), "message"), c.Source)
	}
	t := fmt.Sprintf("copies back %s to %s first", what, c.Source)
	if cb.Flags > 0 {
		t += fmt.Sprintf(", and the flags of %s changed there", countNoun(int(cb.Flags), "message"))
	}
	return t
}

// CopyBackQuestion is the rollback's confirmation question when the
// account was cut over.
func CopyBackQuestion(c *engine.Change) string {
	q := fmt.Sprintf("Do you want to roll %s back to %s?", c.Account, c.Source)
	cb := c.CopyBack
	if cb == nil {
		return q
	}
	what := copyBackWhat(c)
	switch {
	case cb.Error != "":
		q = fmt.Sprintf("Do you want to roll %s back to %s? The mail that arrived on %s after the cut-over could not be counted (%s); the rollback copies it back first and stops if it cannot.", c.Account, c.Source, c.Target, cb.Error)
	case what == "" && cb.Flags > 0:
		q = fmt.Sprintf("Do you want to roll %s back to %s? The flags of %s changed on %s after the cut-over will be set on %s first.", c.Account, c.Source, countNoun(int(cb.Flags), "message"), c.Target, c.Source)
	case what != "":
		q = fmt.Sprintf("Do you want to roll %s back to %s? %s will be copied back to %s first.", c.Account, c.Source, capitalizeFirst(strings.TrimSuffix(what, ",")), c.Source)
	}
	return q
}

func capitalizeFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
