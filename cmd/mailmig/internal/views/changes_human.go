package views

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// ChangesOptions say how to render Changes for people.
type ChangesOptions struct {
	// Verb heads the listing: "mailmig will perform the following
	// actions" for plan and apply, "Saved changes" for show.
	Verb string
}

// Changes renders the changes as a Terraform-like listing grouped by wave,
// one line per account and action with its reason, then a summary line.
// Destructive changes are flagged.
func (v *View) Changes(ch *engine.Changes, opts *ChangesOptions) {
	w := bufio.NewWriterSize(v.Out, 64<<10)
	defer w.Flush()
	verb := "mailmig will perform the following actions"
	if opts != nil && opts.Verb != "" {
		verb = opts.Verb
	}
	lineage := ch.Lineage
	if lineage == "" {
		lineage = "(new)"
	} else if len(lineage) > 8 {
		lineage = lineage[:8]
	}
	refreshed := "sources checked for changes"
	if !ch.Refreshed {
		refreshed = "sources not checked"
	}
	fmt.Fprintf(w, "State: serial %d, lineage %s; %s; clock %s.\n", ch.Serial, lineage, refreshed, ch.Created.UTC().Format("2006-01-02 15:04 UTC"))
	if len(ch.Targets) > 0 {
		fmt.Fprintf(w, "Targeted: %s.\n", strings.Join(ch.Targets, ", "))
	}
	if line := RunningLine(ch.Running); line != "" {
		fmt.Fprintf(w, "%s\n", v.paint(colorBold+colorYellow, line))
	}
	if ch.Empty() {
		fmt.Fprintf(w, "\n%s\n", v.paint(colorBold+colorGreen, "No changes. The migration is where the plan wants it right now."))
	} else {
		fmt.Fprintf(w, "\n%s:\n", verb)
	}
	for _, wc := range ch.Waves {
		v.writeWave(w, wc)
	}
	if len(ch.Removed) > 0 {
		fmt.Fprintf(w, "\n%s\n", v.paint(colorBold+colorYellow, fmt.Sprintf("Not in the plan any more (%s, left alone):", countNoun(len(ch.Removed), "account"))))
		for _, r := range ch.Removed {
			route := ""
			if r.Route != "" {
				route = ", routed to " + r.Route
				if r.Frozen {
					route += " (frozen)"
				}
			}
			fmt.Fprintf(w, "  ! %s (%s%s): %s\n", r.Account, r.Phase, route, r.Note)
		}
	}
	fmt.Fprintf(w, "\n%s\n", v.paint(colorBold, SummaryLine(ch)))
	fmt.Fprintf(w, "%s\n", AccountsLine(ch))
	if n := destructive(ch); n == 1 {
		fmt.Fprintf(w, "%s\n", v.paint(colorBold+colorRed, "Warning: 1 change routes an account back to its source; review it before applying."))
	} else if n > 1 {
		fmt.Fprintf(w, "%s\n", v.paint(colorBold+colorRed, fmt.Sprintf("Warning: %d changes route accounts back to their source; review them before applying.", n)))
	}
}

func (v *View) writeWave(w io.Writer, wc *engine.WaveChanges) {
	if len(wc.Changes) == 0 && len(wc.Waiting) == 0 && wc.Status == engine.WaveDone {
		fmt.Fprintf(w, "\nWave %s: done (%s).\n", wc.Name, countNoun(wc.Accounts, "account"))
		return
	}
	title := "Wave " + wc.Name
	if wc.Name == engine.NoWave {
		title = "Accounts in no wave"
	}
	fmt.Fprintf(w, "\n%s [%s]", v.paint(colorBold, title), wc.Status)
	if wc.Note != "" {
		fmt.Fprintf(w, ": %s", wc.Note)
	}
	fmt.Fprintf(w, "\n  %s: %s\n", countNoun(wc.Accounts, "account"), phaseCounts(wc.Phases))
	for _, c := range wc.Changes {
		sym := string(c.Action.Symbol())
		color := colorGreen
		switch c.Action {
		case engine.CatchUp, engine.Adopt:
			color = colorYellow
		case engine.Rollback:
			color = colorRed
		}
		flags := ""
		if c.Canary {
			flags += " [canary]"
		}
		if c.Destructive {
			flags += " " + v.paint(colorBold+colorRed, "[DESTRUCTIVE]")
		}
		fmt.Fprintf(w, "  %s %-9s%s%s (%s)\n", v.paint(color, sym), c.Action, c.Account, flags, ReasonText(c, wc.Note))
		if l := DataText(c.Data); l != "" {
			fmt.Fprintf(w, "      %s\n", l)
		}
		if t := CopyBackText(c); t != "" {
			fmt.Fprintf(w, "      %s\n", t)
		}
		if t := FreezeText(c); t != "" {
			fmt.Fprintf(w, "      %s\n", t)
		}
		for _, l := range VerifyAdvice(c.Account, c.LastVerify) {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
	for _, x := range wc.Waiting {
		fmt.Fprintf(w, "  · %-9s%s (%s)\n", "waiting", x.Account, x.Reason)
		for _, l := range VerifyAdvice(x.Account, x.LastVerify) {
			fmt.Fprintf(w, "      %s\n", l)
		}
	}
}

// SummaryLine is the one-line summary of the changes, like Terraform's
// "Plan: 1 to add, …".
func SummaryLine(ch *engine.Changes) string {
	s := ch.Summary
	return fmt.Sprintf("Plan: %d to import, %d to export, %d to catch up, %d to cut over, %d to roll back, %d to adopt.",
		s.Import, s.Export, s.CatchUp, s.Cutover, s.Rollback, s.Adopt)
}

// AccountsLine summarises the accounts' situation.
func AccountsLine(ch *engine.Changes) string {
	s := ch.Summary
	line := fmt.Sprintf("Accounts: %d in the plan, %d done, %d waiting", s.Accounts, s.Done, s.Waiting)
	if s.Removed > 0 {
		line += fmt.Sprintf(", %d no longer in the plan", s.Removed)
	}
	return line + "."
}

func destructive(ch *engine.Changes) int {
	n := 0
	for _, w := range ch.Waves {
		for _, c := range w.Changes {
			if c.Destructive {
				n++
			}
		}
	}
	return n
}

// phaseCounts formats per-phase counts in lifecycle order.
func phaseCounts(ph map[state.Phase]int) string {
	var parts []string
	for _, p := range state.Phases {
		if n := ph[p]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, p))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// ChangesJSON writes the changes in their versioned JSON form
// (engine.FormatVersion; docs/engine.md describes the fields), with the
// held warnings as "diagnostics" (WarningsInJSON).
func (v *View) ChangesJSON(ch *engine.Changes) error {
	return v.withHeld(ch)
}

// RunningLine says that an apply holds the lock while the changes were
// computed: what is in flight runs now and is not interrupted.
func RunningLine(r *engine.RunningApply) string {
	if r == nil {
		return ""
	}
	who := fmt.Sprintf("%s by %s, pid %d on %s, since %s", r.Operation, r.Owner, r.PID, r.Host, r.Created.UTC().Format("2006-01-02 15:04 UTC"))
	if r.Liveness == state.LockElsewhere {
		return "An apply may be running on another host (" + who + "; it holds the lock, whether it is alive cannot be checked from here): actions in flight may be running."
	}
	return "An apply is running now (" + who + "): actions in flight are running, not interrupted; the changes are what a new apply would do once it ends."
}

// DataText words how each data kind moves: "data: mail over jmap, sieve
// over managesieve; stays at the source: files (needs a webdav endpoint
// at both backends …)"; "" when the change carries none.
func DataText(ts []engine.DataTransport) string {
	var moved, stays []string
	for _, t := range ts {
		if t.Via != "" {
			moved = append(moved, string(t.Kind)+" over "+t.Via)
		} else {
			stays = append(stays, string(t.Kind)+" ("+t.Note+")")
		}
	}
	out := ""
	if len(moved) > 0 {
		out = "data: " + strings.Join(moved, ", ")
	}
	if len(stays) > 0 {
		if out != "" {
			out += "; "
		}
		out += "stays at the source: " + strings.Join(stays, ", ")
	}
	return out
}
