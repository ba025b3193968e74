package views

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// StateAccount is one row of "mailmig state list" and the body of "state
// show": the journal's fold for an account plus its route and wave.
type StateAccount struct {
	*state.Account
	// InPlan is false for accounts the plan no longer lists.
	InPlan bool `json:"in_plan"`
	// PlanWave is the wave the plan puts the account in.
	PlanWave string `json:"plan_wave,omitempty"`
	// Route and Frozen are the route table's entry ("" when none).
	Route  string `json:"route,omitempty"`
	Frozen bool   `json:"frozen,omitempty"`
	// Archive is what the account's archive says now ("state show" only;
	// nil when there is none). ArchiveError says why it could not be read.
	Archive      *engine.ArchiveInfo `json:"archive,omitempty"`
	ArchiveError string              `json:"archive_error,omitempty"`
	// InFlightStatus tells a running action from an interrupted one:
	// "running" (the apply holding the lock is alive), "maybe running"
	// (the lock is held on another host), "interrupted" (no live holder).
	// RunningApply is that holder. Set when InFlight is.
	InFlightStatus string               `json:"in_flight_status,omitempty"`
	RunningApply   *engine.RunningApply `json:"running_apply,omitempty"`
	// Breakers are the open circuit breakers of the account's source and
	// target backends.
	Breakers []OpenBreaker `json:"open_breakers,omitempty"`
}

// OpenBreaker is a backend whose circuit breaker is open: apply sends it
// no work until a probe at the start of the next apply succeeds.
type OpenBreaker struct {
	Backend   string    `json:"backend"`
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
}

// OpenBreakers lists the state's open breakers by backend name; only
// those of the named backends when any are given.
func OpenBreakers(st *state.State, backends ...string) []OpenBreaker {
	var out []OpenBreaker
	for name, b := range st.Breakers {
		if len(backends) > 0 && !slices.Contains(backends, name) {
			continue
		}
		out = append(out, OpenBreaker{Backend: name, Since: b.Opened, LastError: b.Error})
	}
	slices.SortFunc(out, func(x, y OpenBreaker) int { return strings.Compare(x.Backend, y.Backend) })
	return out
}

func (v *View) breakerLines(bs []OpenBreaker) {
	for _, b := range bs {
		fmt.Fprintf(v.Out, "  %s: open since %s; last error: %s\n", b.Backend, fmtWhen(b.Since), orDash(b.LastError))
	}
	if len(bs) > 0 {
		fmt.Fprintln(v.Out, "  The next apply probes each once and sends it work again when the probe succeeds.")
	}
}

// StateList is the JSON form of "mailmig state list".
type StateList struct {
	FormatVersion string          `json:"format_version"`
	Lineage       string          `json:"lineage"`
	Serial        uint64          `json:"serial"`
	Accounts      []*StateAccount `json:"accounts"`
	// Running is the apply that holds the lock, when it is not known to
	// be gone.
	Running *engine.RunningApply `json:"running,omitempty"`
	// Breakers are the backends whose circuit breaker is open.
	Breakers []OpenBreaker `json:"open_breakers,omitempty"`
}

// StateListHuman prints a table of accounts.
func (v *View) StateListHuman(l *StateList) {
	fmt.Fprintf(v.Out, "State: serial %d, lineage %s, %s.\n", l.Serial, orDash(l.Lineage), countNoun(len(l.Accounts), "account"))
	if line := RunningLine(l.Running); line != "" {
		fmt.Fprintln(v.Out, line)
	}
	fmt.Fprintln(v.Out)
	tw := tabwriter.NewWriter(v.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tPHASE\tWAVE\tROUTE\tLAST PASS\tNOTE")
	for _, a := range l.Accounts {
		route := orDash(a.Route)
		if a.Frozen {
			route += " (frozen)"
		}
		var notes []string
		if !a.InPlan {
			notes = append(notes, "not in plan")
		}
		if a.InFlight != "" {
			notes = append(notes, a.InFlight+" "+orDash(a.InFlightStatus))
		}
		if a.Held {
			notes = append(notes, "held")
		}
		if a.LastError != "" {
			notes = append(notes, "last error")
		}
		wave := a.PlanWave
		if wave == "" {
			wave = a.Wave
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Address, a.Phase, orDash(wave), route, fmtWhen(a.LastPass), strings.Join(notes, ", "))
	}
	tw.Flush()
	if len(l.Breakers) > 0 {
		fmt.Fprintf(v.Out, "\nOpen circuit breakers (%d):\n", len(l.Breakers))
		v.breakerLines(l.Breakers)
	}
}

// StateShowHuman prints everything known about one account.
func (v *View) StateShowHuman(a *StateAccount) {
	tw := tabwriter.NewWriter(v.Out, 0, 4, 2, ' ', 0)
	row := func(k, val string) { fmt.Fprintf(tw, "%s:\t%s\n", k, val) }
	row("account", a.Address)
	row("phase", string(a.Phase))
	row("in plan", fmt.Sprint(a.InPlan))
	row("wave", orDash(a.PlanWave))
	row("source → target", orDash(a.Source)+" → "+orDash(a.Target))
	route := orDash(a.Route)
	if a.Frozen {
		route += " (FROZEN)"
	}
	row("route", route)
	row("imported", fmt.Sprint(a.Imported))
	row("exported", fmt.Sprint(a.Exported))
	row("last import", fmtWhen(a.LastImport))
	row("last export", fmtWhen(a.LastExport))
	row("last pass", fmt.Sprintf("%s (%d messages, %d bytes)", fmtWhen(a.LastPass), a.LastPassCounts.Messages, a.LastPassCounts.Bytes))
	switch ar := a.Archive; {
	case a.ArchiveError != "":
		row("archive", "unreadable: "+a.ArchiveError)
	case ar == nil:
		row("archive", "none")
	case ar.InUse:
		row("archive", "in use by a running import or export")
	default:
		seen := ""
		if r := ar.Recorded; r != nil {
			seen = fmt.Sprintf(" (not on this machine: observed by worker %s at %s)", r.Worker, fmtReasonTime(r.At))
		}
		row("archive", fmt.Sprintf("%d messages, %d bytes in %d mailboxes%s", ar.Messages, ar.Bytes, ar.Mailboxes, seen))
		row("archive import", fmt.Sprintf("last complete %s, last run %s", fmtWhen(ar.LastImport), fmtWhen(ar.LastRun)))
		row("archive export", fmt.Sprintf("%d on the target, next export: %d new, %d changed, %d deleted (last %s)", ar.Exported, ar.Unexported, ar.ExportChanged, ar.ExportDeleted, fmtWhen(ar.LastExport)))
	}
	if a.InFlight != "" {
		row("in flight", inFlightText(a))
	}
	if a.LastError != "" {
		row("last error", fmt.Sprintf("%s (%s)", a.LastError, fmtWhen(a.LastErrorTime)))
	}
	if a.FailedCutovers > 0 {
		row("failed cut-overs", fmt.Sprint(a.FailedCutovers))
	}
	if a.Held {
		row("held", a.HoldNote)
	}
	if a.Adopted {
		row("adopted", "true")
	}
	if a.Mismatches > 0 {
		row("verify mismatches", fmt.Sprintf("%d of the last failed cut-over", a.Mismatches))
	}
	row("last record", fmt.Sprintf("seq %d at %s", a.LastSeq, fmtWhen(a.Changed)))
	tw.Flush()
	if len(a.Breakers) > 0 {
		fmt.Fprintf(v.Out, "\nOpen circuit breakers of its backends:\n")
		v.breakerLines(a.Breakers)
	}
	if len(a.VerifyMismatches) > 0 {
		fmt.Fprintf(v.Out, "\nMismatches of the last failed cut-over (%d of %d):\n", len(a.VerifyMismatches), max(a.Mismatches, int64(len(a.VerifyMismatches))))
		for _, m := range a.VerifyMismatches {
			fmt.Fprintf(v.Out, "  %s\n", MismatchText(m))
		}
	}
}

// JournalRecords prints journal records, one line each.
func (v *View) JournalRecords(recs []*state.Record) {
	tw := tabwriter.NewWriter(v.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACCOUNT\tEVENT")
	for _, r := range recs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format("2006-01-02 15:04:05"), actorOf(r), orDash(r.Account), event(r))
	}
	tw.Flush()
}

// JSONLines writes values as JSON lines.
func (v *View) JSONLines(vals ...any) error {
	enc := json.NewEncoder(v.Out)
	for _, x := range vals {
		if err := enc.Encode(x); err != nil {
			return err
		}
	}
	return nil
}

// JSON writes one indented JSON value; an object carries the held
// warnings (WarningsInJSON) as "diagnostics".
func (v *View) JSON(x any) error {
	return v.withHeld(x)
}

func actorOf(r *state.Record) string {
	a := orDash(r.Actor)
	if r.RunID != "" {
		a += " [" + r.RunID + "]"
	}
	return a
}

func event(r *state.Record) string {
	switch r.Type {
	case state.TypeInit:
		return "journal created, lineage " + r.Lineage
	case state.TypeStart:
		s := r.Action + " started"
		if r.Source != "" || r.Target != "" {
			s += fmt.Sprintf(" (%s → %s", r.Source, r.Target)
			if r.Wave != "" {
				s += ", wave " + r.Wave
			}
			s += ")"
		}
		return s
	case state.TypeFinish:
		s := fmt.Sprintf("%s %s", r.Action, r.Outcome)
		var parts []string
		if r.Counts != nil {
			if r.Counts.Messages > 0 {
				parts = append(parts, countNoun(int(r.Counts.Messages), "message"))
			}
			if r.Counts.Mismatches > 0 {
				parts = append(parts, fmt.Sprintf("%d verify mismatches", r.Counts.Mismatches))
			}
			if r.Counts.Conflicts > 0 {
				// Kept at the target's version: a warning, not a failure.
				parts = append(parts, countNoun(int(r.Counts.Conflicts), "conflict")+" (target's version kept)")
			}
			if r.Counts.Pruned > 0 || r.Counts.PrunedMailboxes > 0 {
				// apply -worker -prune-on-takeover destroyed them on the target.
				parts = append(parts, fmt.Sprintf("pruned %s and %d mailbox(es) on the target", countNoun(int(r.Counts.Pruned), "email"), r.Counts.PrunedMailboxes))
			}
		}
		if r.DurationMS > 0 {
			parts = append(parts, (time.Duration(r.DurationMS) * time.Millisecond).String())
		}
		if len(parts) > 0 {
			s += " (" + strings.Join(parts, ", ") + ")"
		}
		if r.Error != "" {
			s += ": " + r.Error
		}
		return s
	case state.TypeTransition:
		return "→ " + string(r.Phase)
	case state.TypeHold:
		return "held: " + r.Note
	case state.TypeRelease:
		return "released: " + r.Note
	case state.TypeApplyStart:
		s := "apply started"
		var parts []string
		if r.ChangesFile != "" {
			parts = append(parts, "saved changes "+r.ChangesFile+" ("+shortHash(r.ChangesHash)+")")
		}
		if r.PlanFile != "" {
			parts = append(parts, "plan "+r.PlanFile)
		}
		if r.PlanHash != "" {
			parts = append(parts, "plan hash "+shortHash(r.PlanHash))
		}
		if r.Approver != "" {
			parts = append(parts, "approved by "+r.Approver)
		}
		if len(parts) > 0 {
			s += ": " + strings.Join(parts, ", ")
		}
		return s
	case state.TypeRouteEdit:
		s := "routes " + r.Action + " by hand"
		if r.Backend != "" {
			s += " → " + r.Backend
		}
		if r.Note != "" {
			s += " (" + r.Note + ")"
		}
		return s
	case state.TypeBreakerOpen:
		return "circuit breaker of " + r.Backend + " open: " + r.Error
	case state.TypeBreakerClosed:
		return "circuit breaker of " + r.Backend + " closed"
	}
	return string(r.Type)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtWhen(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// shortHash is the first 12 hex digits of a hash, enough to tell runs
// apart in a table.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// inFlightText says what the action in flight is doing.
func inFlightText(a *StateAccount) string {
	r := a.RunningApply
	switch a.InFlightStatus {
	case "running":
		return fmt.Sprintf("%s since seq %d, running now (%s by %s, pid %d, since %s)", a.InFlight, a.InFlightSeq, r.Operation, r.Owner, r.PID, r.Created.UTC().Format("2006-01-02 15:04 UTC"))
	case "maybe running":
		return fmt.Sprintf("%s since seq %d, maybe running (%s by %s holds the lock on host %s, pid %d; it cannot be checked from here)", a.InFlight, a.InFlightSeq, r.Operation, r.Owner, r.Host, r.PID)
	}
	return fmt.Sprintf("%s since seq %d, interrupted (no apply runs: the next apply repeats or finishes it)", a.InFlight, a.InFlightSeq)
}
