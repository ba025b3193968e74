package views

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
)

// interruptedText words the reasons of interrupted cut-overs.
func interruptedText(c *engine.Change, waveNote, where string) string {
	r := c.Reason
	switch r.Code {
	case engine.ReasonFinishCutover:
		return fmt.Sprintf("finish the cut-over: the route already points at %s; unfreeze it there", r.Backend)
	case engine.ReasonRetryCutover:
		return fmt.Sprintf("retry the cut-over; %s", waveNote)
	}
	return fmt.Sprintf("route it back to %s, unfrozen", r.Backend)
}

// reasonText words a change's structured reason (engine.Reason) for the
// human and Markdown views (ReasonText adds where the archive was read). waveNote is the note of the change's wave:
// cut-over reasons end with it, since it says why the wave may cut over.
// The wording is the one the engine used to build itself before reasons
// became data, so that the goldens stay as they were.
func reasonText(c *engine.Change, waveNote string) string {
	r := c.Reason
	where := string(r.At)
	if r.Interrupted != "" {
		where = r.Interrupted + " at " + where
	}
	retry := ""
	if r.RetryAction != "" {
		retry = fmt.Sprintf(" (retrying the %s interrupted at seq %d)", r.RetryAction, r.RetrySeq)
		if r.Running {
			retry = fmt.Sprintf(" (its %s, seq %d, is running now in the apply that holds the lock)", r.RetryAction, r.RetrySeq)
		}
	}
	if r.Running && r.Interrupted != "" {
		switch r.Code {
		case engine.ReasonFinishCutover, engine.ReasonRetryCutover, engine.ReasonLeftFrozen:
			return fmt.Sprintf("its %s is running now (%s) in the apply that holds the lock; if that apply stopped now: %s", r.Interrupted, r.At, interruptedText(c, waveNote, where))
		}
	}
	switch r.Code {
	case engine.ReasonFinishCutover:
		return fmt.Sprintf("finish the interrupted cut-over (%s): the route already points at %s; unfreeze it there", where, r.Backend)
	case engine.ReasonRetryCutover:
		return fmt.Sprintf("retry the cut-over interrupted at %s; %s", where, waveNote)
	case engine.ReasonLeftFrozen:
		return fmt.Sprintf("the account was left frozen (%s); route it back to %s, unfrozen", where, r.Backend)
	case engine.ReasonPlanKeeps:
		return fmt.Sprintf("the plan keeps the account on %s; route it back from %s", r.Backend, r.RoutedTo)
	case engine.ReasonRouteAtTarget:
		return fmt.Sprintf("the route already points at %s: record the account as done without copying", r.Backend)
	case engine.ReasonRequested:
		return fmt.Sprintf("requested by hand: route back to %s, unfrozen, and hold the account", r.Backend)
	case engine.ReasonFirstImport:
		have := ""
		switch a := c.Archive; {
		case a != nil && a.InUse:
			have = "; its archive is in use by another process right now"
		case a != nil && a.Messages > 0:
			have = fmt.Sprintf("; the archive already holds %s, only what is missing is fetched", plural(a.Messages, "message"))
		}
		return fmt.Sprintf("first full import from %s%s%s%s", r.Backend, sourceSize(c), have, retry)
	case engine.ReasonFirstExport:
		return fmt.Sprintf("first export onto %s", r.Backend)
	case engine.ReasonExportPending:
		what := ""
		if a := c.Archive; a != nil && !a.InUse {
			what = fmt.Sprintf("; the archive holds %s in %s, %s", plural(a.Messages, "message"), plural(a.Mailboxes, "mailbox"), fmtBytes(a.Bytes))
		}
		return fmt.Sprintf("first export onto %s (import finished %s)%s%s", r.Backend, fmtReasonTime(r.Time), what, retry)
	case engine.ReasonWithinThreshold:
		s := fmt.Sprintf("last pass %s copied %s, within the threshold of %s; %s", fmtReasonTime(r.Time), plural(r.LastPassMessages, "message"), fmtInt(r.Threshold), waveNote)
		if what := sourceChanges(c); what != "" {
			s = what + "; " + s
		}
		return s
	case engine.ReasonSourceChanged:
		return sourceChanges(c) + retry
	case engine.ReasonRepeatPass:
		return "repeat the pass" + retry
	case engine.ReasonArchiveElsewhere:
		return fmt.Sprintf("its archive is not on this machine (taken over from another worker): import it again from %s here before the cut-over; the export copies nothing the target already holds", r.Backend)
	case engine.ReasonAboveThreshold:
		what := plural(r.LastPassMessages, "message")
		if r.LastPassMessages <= r.Threshold && r.ThresholdBytes > 0 && r.LastPassBytes > r.ThresholdBytes {
			what = fmtBytes(r.LastPassBytes)
		}
		return fmt.Sprintf("last pass copied %s, above the threshold of %s: catch up first so the cut-over's frozen time stays short", what, fmtInt(r.Threshold))
	}
	return string(r.Code) // a code this mailmig does not know (a newer saved file)
}

// sourceSize words the account's size at the source that a refresh
// counted before its first import: "; 3,000 messages, 194.7 MiB at the
// source", or "; 3,000 messages at the source (size unknown)" when the
// source cannot tell bytes cheaply. It is "" without a refresh.
func sourceSize(c *engine.Change) string {
	if c.Delta == nil || c.Delta.Source == nil {
		return ""
	}
	sz := c.Delta.Source
	if sz.Bytes < 0 {
		return fmt.Sprintf("; %s at the source (size unknown)", plural(sz.Messages, "message"))
	}
	return fmt.Sprintf("; %s, %s at the source", plural(sz.Messages, "message"), fmtBytes(sz.Bytes))
}

// sourceChanges words what changed at the source (the change's refresh
// delta) and what waits in the archive: "12 new, 3 mailboxes changed since
// 2026-11-27 22:10 UTC; 7 messages in the archive not exported yet".
func sourceChanges(c *engine.Change) string {
	var parts []string
	if c.Delta != nil {
		if s := describeDelta(*c.Delta); s != "" {
			parts = append(parts, s)
		}
	}
	if n := c.Reason.Unexported; n > 0 {
		parts = append(parts, plural(n, "message")+" in the archive not exported yet")
	}
	return strings.Join(parts, "; ")
}

// describeDelta words a refresh result: "12 new, 3 mailboxes changed,
// 1 folder added since 2026-11-27 22:10 UTC". It is "" for an unknown or
// empty delta.
func describeDelta(d engine.Delta) string {
	if !d.Any() {
		return ""
	}
	if d.NotImported {
		s := "the archive has no completed import to compare with (missing?): the next pass imports everything"
		if d.New > 0 {
			s = fmt.Sprintf("%s (%s at the source)", s, plural(d.New, "message"))
		}
		return s
	}
	var parts []string
	if d.New > 0 {
		parts = append(parts, fmtInt(d.New)+" new")
	}
	if d.Changed > 0 {
		parts = append(parts, fmtInt(d.Changed)+" changed")
	}
	if d.Deleted > 0 {
		parts = append(parts, fmtInt(d.Deleted)+" deleted")
	}
	if d.Mailboxes > 0 {
		parts = append(parts, plural(d.Mailboxes, "mailbox")+" changed")
	}
	for _, f := range []struct {
		n    int
		verb string
	}{{d.FoldersAdded, "added"}, {d.FoldersRemoved, "removed"}, {d.FoldersRenamed, "renamed"}} {
		if f.n > 0 {
			parts = append(parts, plural(int64(f.n), "folder")+" "+f.verb)
		}
	}
	var items []string
	for _, it := range d.Items {
		items = append(items, plural(it.Changed, dataNoun[it.Kind]))
	}
	if len(items) > 0 {
		parts = append(parts, strings.Join(items, ", ")+" changed")
	}
	s := strings.Join(parts, ", ")
	if !d.Since.IsZero() {
		s += " since " + fmtReasonTime(d.Since)
	}
	return s
}

// dataNoun names one item of a data kind in reasons ("3 events, 1 script
// changed").
var dataNoun = map[plan.DataKind]string{plan.DataSieve: "script", plan.DataCalendars: "event",
	plan.DataContacts: "contact", plan.DataFiles: "file", plan.DataMail: "message"}

// fmtReasonTime formats a time for reasons, in UTC.
func fmtReasonTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// fmtInt formats n with thousands separators.
func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural is "1 message", "1,200 messages", "3 mailboxes".
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "ch") || strings.HasSuffix(word, "s") || strings.HasSuffix(word, "x") {
		return fmtInt(n) + " " + word + "es"
	}
	return fmtInt(n) + " " + word + "s"
}

// fmtBytes is a size in binary units: "512 B", "80.0 MiB".
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
