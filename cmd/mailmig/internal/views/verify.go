package views

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// MismatchText words one journaled verify mismatch on one line: the kind,
// the mailbox, the message (Message-ID, else the archive or target id)
// and what differs.
func MismatchText(m state.Mismatch) string {
	parts := []string{m.Kind}
	if m.Mailbox != "" {
		parts = append(parts, m.Mailbox)
	}
	switch {
	case m.MessageID != "":
		parts = append(parts, "<"+m.MessageID+">")
	case m.ArchiveID != 0:
		parts = append(parts, fmt.Sprintf("archive message %d", m.ArchiveID))
	case m.TargetID != "":
		parts = append(parts, "target email "+m.TargetID)
	case m.Item != "":
		parts = append(parts, m.Item)
	}
	s := strings.Join(parts, " ")
	switch {
	case m.Want != "" || m.Got != "":
		s += fmt.Sprintf(": expected %s, found %s", orDash(m.Want), orDash(m.Got))
	case m.Kind == "extra":
		s += ": on the target, not in the archive"
	case m.Kind == "missing":
		s += ": in the archive, not on the target"
	}
	return s
}

// verifyAdvice is what the operator can do about each kind of mismatch,
// worded short: the first sentence says what it means.
var verifyAdvice = map[string]string{
	"extra":           "mail on the target that the source does not have, usually delivered to the target outside the proxy; find it by its Message-ID and move it to the source (append it there, delete it on the target), then apply again",
	"missing":         "archive mail not on the target; the next apply's catch-up exports it again",
	"duplicate":       "a message is on the target more than once; delete the copies on the target, then apply again",
	"content":         "the target's bytes differ from the archive's; check the target for rewriting (filters, antivirus), delete the email there and apply again",
	"size":            "the target's size differs from the archive's; check the target for rewriting (filters, antivirus), delete the email there and apply again",
	"keywords":        "flags changed on the target after the export; apply again (the catch-up sets them), or change them back on the target",
	"receivedAt":      "the internal date differs; delete the email on the target and apply again",
	"membership":      "the message is in other mailboxes on the target; it was moved there outside the proxy: move it back, then apply again",
	"count":           "a mailbox holds another number of messages; see the other mismatches of the same mailbox",
	"mailbox-missing": "a mailbox is missing on the target; apply again (the catch-up creates it)",
	"hierarchy":       "a mailbox has another parent on the target; it was moved there: move it back, then apply again",
	"role":            "a mailbox lacks its role on the target (Sent, Trash, …); set it there, then apply again",
	"subscription":    "the subscription differs; apply again, or change it on the target",
	"source":          "the source changed during the freeze, i.e. mail reached the source around the proxy; find what delivers there directly, then apply again",
}

// VerifyAdvice words what the operator can do about the mismatches that
// rolled an account's last cut-over back: one line per kind, with its
// count among the named ones, in the order the kinds first appear.
func VerifyAdvice(account string, lv *engine.LastVerify) []string {
	if lv == nil {
		return nil
	}
	var kinds []string
	n := map[string]int{}
	for _, m := range lv.Mismatches {
		if n[m.Kind] == 0 {
			kinds = append(kinds, m.Kind)
		}
		n[m.Kind]++
	}
	out := []string{fmt.Sprintf("last cut-over rolled back: verify found %s", plural(lv.Total, "mismatch"))}
	switch {
	case len(lv.Mismatches) == 0:
		// A journal from before mismatches were named: the count only.
	case int64(len(lv.Mismatches)) < lv.Total:
		out[0] += fmt.Sprintf(" (the journal names %d; \"mailmig state show %s\" lists them)", len(lv.Mismatches), account)
	default:
		out[0] += fmt.Sprintf(" (\"mailmig state show %s\" lists them)", account)
	}
	for _, k := range kinds {
		adv, ok := verifyAdvice[k]
		switch {
		case ok:
		case strings.HasPrefix(k, "sieve-"):
			adv = "the sieve scripts differ on the target; apply again (the catch-up rewrites them), or change them on the target"
		case strings.HasSuffix(k, "-missing") || strings.HasSuffix(k, "-content"):
			adv = "contacts or calendar items differ on the target; apply again (the catch-up rewrites them)"
		default:
			adv = "run \"mailmig vandelay verify\" on the account for details"
		}
		out = append(out, fmt.Sprintf("%d %s: %s", n[k], k, adv))
	}
	return out
}

// MismatchList prints every mismatch of an account's last verify, one a
// line: when it ran (zero: no verify ran), the verify's total count and
// the mismatches it named.
func (v *View) MismatchList(account string, when time.Time, total int64, ms []state.Mismatch) {
	switch {
	case when.IsZero():
		fmt.Fprintf(v.Out, "No verify of %s has run yet.\n", account)
		return
	case len(ms) == 0 && total == 0:
		fmt.Fprintf(v.Out, "The last verify of %s (%s) found no mismatch.\n", account, fmtWhen(when))
		return
	}
	noun := "mismatches"
	if total == 1 {
		noun = "mismatch"
	}
	fmt.Fprintf(v.Out, "The last verify of %s (%s) found %d %s", account, fmtWhen(when), total, noun)
	if int64(len(ms)) < total {
		fmt.Fprintf(v.Out, "; %d named (the others are source differences a dry-run import counts)", len(ms))
	}
	fmt.Fprintln(v.Out, ":")
	for _, m := range ms {
		fmt.Fprintf(v.Out, "  %s\n", MismatchText(m))
	}
}
