package views

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// resultLine formats one finished change.
func resultLine(r *engine.Result) string {
	c := r.Change
	switch r.Outcome {
	case state.OutcomeOK:
		return fmt.Sprintf("%s %s: done%s", c.Account, c.Action, countsSuffix(r))
	case engine.OutcomeSkipped:
		return fmt.Sprintf("%s %s: skipped (%s)", c.Account, c.Action, r.Skipped)
	case state.OutcomeRolledBack:
		return fmt.Sprintf("%s %s: ROLLED BACK to %s, unfrozen: %s", c.Account, c.Action, c.Source, r.Error)
	case state.OutcomeInterrupted:
		return fmt.Sprintf("%s %s: interrupted (%s)", c.Account, c.Action, r.Error)
	}
	return fmt.Sprintf("%s %s: FAILED: %s", c.Account, c.Action, r.Error)
}

func countsSuffix(r *engine.Result) string {
	var parts []string
	if n := r.Counts.Messages; n > 0 {
		parts = append(parts, countNoun(int(n), "message"))
	}
	if r.Duration > 0 {
		parts = append(parts, r.Duration.Round(time.Millisecond).String())
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// ApplyFailed reports whether a run did not do everything it set out to
// do: a change failed, rolled back or was interrupted, a change was
// skipped (a stop, a halted wave, a failed dependency), or a backend's
// circuit breaker is open. apply then exits 1.
func ApplyFailed(res *engine.ApplyResult) bool {
	return res.Failed+res.RolledBack+res.Interrupted+res.Skipped > 0 || len(res.OpenBreakers) > 0
}

// ApplySummary prints the outcome of a run: a closing line that says what
// happened ("Apply complete!" only when every change succeeded), then, on
// standard error, each change that did not succeed and each unreachable
// backend. stoppedBy names what stopped the run (Ctrl-C, SIGTERM), "" when
// nothing did.
func (v *View) ApplySummary(res *engine.ApplyResult, stoppedBy string) {
	total := len(res.Results)
	counts := fmt.Sprintf("%s: %d ok, %d failed, %d rolled back, %d interrupted, %d not run.",
		countNoun(total, "change"), res.OK, res.Failed, res.RolledBack, res.Interrupted, res.Skipped)
	if !ApplyFailed(res) {
		msg := "Apply complete! " + counts
		if res.Stopped {
			msg += " (" + stoppedBy + " came after the last change had started; nothing was left out.)"
		}
		fmt.Fprintf(v.Out, "\n%s\n", v.paint(colorBold+colorGreen, msg))
		v.collapsedSummary(res)
		return
	}
	var msg string
	switch {
	case res.Stopped:
		msg = fmt.Sprintf("Apply stopped by %s: running actions finished, %d did not start. %s", stoppedBy, res.Skipped, counts)
	case len(res.OpenBreakers) > 0:
		names := slices.Sorted(maps.Keys(res.OpenBreakers))
		msg = fmt.Sprintf("Apply halted: backend %s unreachable, circuit breaker open, its waves halted. %s", strings.Join(names, ", "), counts)
	case res.Failed+res.RolledBack+res.Interrupted > 0:
		var what []string
		if n := rolledBackCutovers(res); n > 0 {
			what = append(what, countNoun(n, "cut-over")+" rolled back (accounts back on their source, unfrozen)")
		}
		if res.Failed > 0 {
			what = append(what, fmt.Sprintf("%d failed", res.Failed))
		}
		if res.Interrupted > 0 {
			what = append(what, fmt.Sprintf("%d interrupted", res.Interrupted))
		}
		msg = "Apply finished with errors: " + strings.Join(what, ", ") + ". " + counts
	default:
		msg = "Apply incomplete: " + skipReasons(res) + ". " + counts
	}
	fmt.Fprintf(v.Out, "\n%s\n", v.paint(colorBold+colorYellow, msg))
	v.collapsedSummary(res)
	for _, r := range res.Results {
		switch r.Outcome {
		case state.OutcomeFailed, state.OutcomeRolledBack, state.OutcomeInterrupted:
			fmt.Fprintf(v.Err, "  %s\n", resultLine(r))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(res.OpenBreakers)) {
		fmt.Fprintf(v.Err, "  backend %s is unreachable, its circuit breaker opened and its waves halted: %s\n", name, res.OpenBreakers[name])
	}
	fmt.Fprintf(v.Out, "Run \"mailmig plan\" to see what is left; a new apply resumes (it probes an unreachable backend first).\n")
}

func rolledBackCutovers(res *engine.ApplyResult) int {
	n := 0
	for _, r := range res.Results {
		if r.Outcome == state.OutcomeRolledBack {
			n++
		}
	}
	return n
}

// skipReasons says why changes did not run, most frequent first.
func skipReasons(res *engine.ApplyResult) string {
	n := map[string]int{}
	for _, r := range res.Results {
		if r.Outcome == engine.OutcomeSkipped {
			n[r.Skipped]++
		}
	}
	keys := slices.SortedFunc(maps.Keys(n), func(a, b string) int {
		if n[a] != n[b] {
			return n[b] - n[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d not run (%s)", n[k], k))
	}
	return strings.Join(parts, "; ")
}

// collapsedSummary lists, per account, the copies the JMAP target folded
// together: duplicates in one mailbox kept as one Email, and messages
// whose keyword sets from several mailboxes were merged (docs/export.md
// says why). Nothing when there are none.
func (v *View) collapsedSummary(res *engine.ApplyResult) {
	type folded struct{ dups, kws int64 }
	per := map[string]folded{}
	for _, r := range res.Results {
		if c := r.Counts; c.Duplicates > 0 || c.KeywordsMerged > 0 {
			per[r.Change.Account] = folded{c.Duplicates, c.KeywordsMerged}
		}
	}
	if len(per) == 0 {
		return
	}
	var dups, kws int64
	for _, f := range per {
		dups += f.dups
		kws += f.kws
	}
	fmt.Fprintf(v.Out, "On the target (one Email per message in a mailbox, one keyword set per Email): %s.\n", foldedText(dups, kws))
	for _, a := range slices.Sorted(maps.Keys(per)) {
		fmt.Fprintf(v.Out, "  %s: %s\n", a, foldedText(per[a].dups, per[a].kws))
	}
}

func foldedText(dups, kws int64) string {
	copies := "duplicate copies"
	if dups == 1 {
		copies = "duplicate copy"
	}
	return fmt.Sprintf("%s %s collapsed, keywords of %s merged", fmtInt(dups), copies, plural(kws, "message"))
}
