package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// FormatVersion is the version of the Changes JSON form. The major number
// changes when a field is removed or changes meaning; the minor number when
// fields are added. Readers must accept unknown fields. 2.2: waves carry
// their schedule (after, cutover_window, not_before, canaries) and a change
// may carry "data" (how each data kind moves). 2.1: the -json
// output (not the saved file) may carry "diagnostics" (warnings). 2.0: a change's
// reason is an object (code and fields, see [Reason]), no longer text.
const FormatVersion = "2.2"

// Changes is the computed difference between the plan and the observed
// state: what apply will do, grouped by wave. It is also the saved form of
// "mailmig plan -out FILE" and the -json output; the human and Markdown
// views are rendered from it.
type Changes struct {
	// FormatVersion is FormatVersion.
	FormatVersion string `json:"format_version"`
	// Lineage and Serial identify the journal state the changes were
	// computed from; apply refuses saved changes when they differ.
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	// PlanHash is the plan files' hash (plan.Migration.Hash).
	PlanHash string `json:"plan_hash"`
	// PlanPath is the plan file or directory as given on the command line.
	PlanPath string `json:"plan_path,omitempty"`
	// Created is when Diff ran (the clock the waves were judged by).
	Created time.Time `json:"created"`
	// Refreshed says whether the sources were asked for changes.
	Refreshed bool `json:"refreshed"`
	// Targets are the -target accounts, when given.
	Targets []string `json:"targets,omitempty"`
	// Running is the apply that holds the state lock while these changes
	// were computed, when its process is alive (or runs on another host,
	// where that cannot be checked): actions the journal shows in flight
	// are running, not interrupted.
	Running *RunningApply `json:"running,omitempty"`
	// OnlyWaves are the -wave waves, when given: Waves holds those alone.
	OnlyWaves []string `json:"only_waves,omitempty"`
	// PlanFiles maps each plan file (and accounts CSV) to the hex SHA-256
	// of its contents, named as in PlanHash, so that a stale saved file
	// can say which file changed (format 2.2).
	PlanFiles map[string]string `json:"plan_files,omitempty"`
	// Waves lists every wave in plan order, then "(no wave)" when some
	// accounts are in none.
	Waves []*WaveChanges `json:"waves"`
	// Removed lists accounts that the journal knows and the plan does not.
	Removed []*Removed `json:"removed,omitempty"`
	// Summary counts the changes.
	Summary Summary `json:"summary"`
}

// RunningApply is the holder of the state lock and whether it runs.
type RunningApply struct {
	state.LockInfo
	Liveness state.Liveness `json:"liveness"`
}

// MarkRunning records that run holds the lock and marks every change that
// repeats or finishes an in-flight action as running rather than
// interrupted.
func (c *Changes) MarkRunning(run *RunningApply) {
	c.Running = run
	for _, ch := range c.All() {
		if ch.Reason.Interrupted != "" || ch.Reason.RetryAction != "" {
			ch.Reason.Running = true
		}
	}
}

// NoWave is the name of the pseudo-wave of accounts that are in no wave.
const NoWave = "(no wave)"

// WaveStatus says where a wave stands for cut-overs.
type WaveStatus string

// Wave statuses.
const (
	// WaveOpen: cut-overs may run now.
	WaveOpen WaveStatus = "open"
	// WaveWaiting: cut-overs wait (window, not_before, after, canaries).
	WaveWaiting WaveStatus = "waiting"
	// WaveHalted: too many failures; nothing is cut over.
	WaveHalted WaveStatus = "halted"
	// WaveDone: every account is done.
	WaveDone WaveStatus = "done"
)

// WaveChanges are the changes of one wave.
type WaveChanges struct {
	Name   string     `json:"name"`
	Status WaveStatus `json:"status"`
	// Note explains Status ("window 22:00-05:00 Europe/Berlin opens in
	// 3h10m", "waiting for wave pilot: 2 of 3 accounts done").
	Note string `json:"note,omitempty"`
	// Accounts is the number of accounts in the wave (in the plan).
	Accounts int `json:"accounts"`
	// Phases counts the wave's accounts per lifecycle phase.
	Phases map[state.Phase]int `json:"phases"`
	// MaxParallel is the wave's max_parallel.
	MaxParallel int `json:"max_parallel,omitempty"`
	// After, Window, NotBefore and Canaries are the wave's schedule from
	// the plan (format 2.2): the waves that must be done first, the
	// cut-over window's text, the earliest cut-over, and the canary
	// accounts (cut over first).
	After     []string  `json:"after,omitempty"`
	Window    string    `json:"cutover_window,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	Canaries  []string  `json:"canaries,omitempty"`
	// Changes are the wave's changes in account order.
	Changes []*Change `json:"changes"`
	// Waiting lists accounts that have nothing to do now although they are
	// not done, with the reason, when it is specific to the account.
	Waiting []*Waiting `json:"waiting,omitempty"`
	// Idle counts the wave's accounts that are not done and have no
	// change now (whether or not they are listed in Waiting).
	Idle int `json:"idle"`
}

// Change is one action for one account.
type Change struct {
	// ID is "action:account", unique within Changes.
	ID      string `json:"id"`
	Account string `json:"account"`
	Action  Action `json:"action"`
	// Reason says why the change is due, as data; the views word it.
	Reason Reason `json:"reason"`
	// Phase is the account's phase when planned.
	Phase state.Phase `json:"phase"`
	Wave  string      `json:"wave"`
	// Source and Target are backend names.
	Source string `json:"source"`
	Target string `json:"target"`
	// Canary marks a canary cut-over.
	Canary bool `json:"canary,omitempty"`
	// Destructive flags changes to review with care (rollback).
	Destructive bool `json:"destructive,omitempty"`
	// Resume marks a cut-over that finishes an interrupted one whose route
	// already points at the target: only unfreezing is left.
	Resume bool `json:"resume,omitempty"`
	// DependsOn are IDs of changes that must succeed first.
	DependsOn []string `json:"depends_on,omitempty"`
	// Delta is the refresh result the change is based on, if any.
	Delta *Delta `json:"delta,omitempty"`
	// Archive is what the account's archive said when planned, if it has
	// one.
	Archive *ArchiveInfo `json:"archive,omitempty"`
	// LastVerify is what the verify of the account's last cut-over found
	// when it rolled that cut-over back, if so.
	LastVerify *LastVerify `json:"last_verify,omitempty"`
	// CopyBack is what a rollback of an account that was cut over will
	// copy from the target back to the source, when counted (see
	// CountCopyBacks).
	CopyBack *CopyBack `json:"copy_back,omitempty"`
	// Freeze estimates how long a cut-over keeps the account frozen, from
	// its last catch-up (nil when none was journaled with its duration).
	Freeze *FreezeEstimate `json:"freeze_estimate,omitempty"`
	// Fingerprint digests what was observed about the account; apply
	// refuses saved changes whose fingerprints no longer match.
	Fingerprint string `json:"fingerprint"`
	// Data is how each data kind of the account moves, set when the
	// account's data names more than mail (the executor decides it:
	// executor.Transports).
	Data []DataTransport `json:"data,omitempty"`
}

// DataTransport is how one data kind of an account moves: Via is the
// protocol written at the target ("jmap", "managesieve", "caldav",
// "carddav", "webdav"), "" when the kind stays at the source, with Note
// saying what is missing.
type DataTransport struct {
	Kind plan.DataKind `json:"kind"`
	Via  string        `json:"via,omitempty"`
	Note string        `json:"note,omitempty"`
}

// CopyBack is the count of what a rollback copies back.
type CopyBack struct {
	// Messages arrived on the target after the cut-over (or were read
	// back by an interrupted rollback and not yet copied).
	Messages int64 `json:"messages"`
	// Flags counts exported messages whose flags (keywords) the user
	// changed on the target; the rollback sets them on the source too.
	Flags int64 `json:"flags,omitempty"`
	// Sieve, Contacts, Calendars and Files count the Sieve scripts,
	// contacts, calendar objects and files created or changed on the
	// target after the cut-over (for the data kinds the account moves)
	// that the rollback copies back too.
	Sieve     int64 `json:"sieve,omitempty"`
	Contacts  int64 `json:"contacts,omitempty"`
	Calendars int64 `json:"calendars,omitempty"`
	Files     int64 `json:"files,omitempty"`
	// Error says why they could not be counted ("" when counted).
	Error string `json:"error,omitempty"`
}

// NeedsCopyBack reports whether the change is a rollback of an account
// whose route was on the target (cut over, or flipped), so that mail may
// have arrived there: the rollback copies it back before routing back.
func (c *Change) NeedsCopyBack() bool {
	return c.Action == Rollback && c.Target != "" && c.Target != c.Source &&
		(c.Phase == state.PhaseDone || c.Phase == state.PhaseCutOver)
}

// Waiting is an account with nothing to do now.
type Waiting struct {
	Account string      `json:"account"`
	Phase   state.Phase `json:"phase"`
	Reason  string      `json:"reason"`
	// LastVerify is what the verify of the account's last cut-over found
	// when it rolled that cut-over back, if so.
	LastVerify *LastVerify `json:"last_verify,omitempty"`
}

// Removed is an account the journal knows that the plan no longer lists.
// Nothing is done to it.
type Removed struct {
	Account string      `json:"account"`
	Phase   state.Phase `json:"phase"`
	// Route is where the route table sends it, "" when it has no entry.
	Route  string `json:"route,omitempty"`
	Frozen bool   `json:"frozen,omitempty"`
	Note   string `json:"note"`
}

// Summary counts changes by action, and accounts by situation.
type Summary struct {
	Import   int `json:"import"`
	Export   int `json:"export"`
	CatchUp  int `json:"catch_up"`
	Cutover  int `json:"cutover"`
	Rollback int `json:"rollback"`
	Adopt    int `json:"adopt"`
	// Changes is the total number of changes.
	Changes int `json:"changes"`
	// Accounts is the number of accounts in the plan.
	Accounts int `json:"accounts"`
	// Done counts accounts already done.
	Done int `json:"done"`
	// Waiting counts accounts not done with nothing to do now.
	Waiting int `json:"waiting"`
	// Removed counts accounts in the journal but not in the plan.
	Removed int `json:"removed"`
	// Halted counts waves halted by failed cut-overs or an open circuit
	// breaker; Drifted counts done accounts whose route no longer points
	// at their target. Either needs an operator ("plan
	// -detailed-exitcode" exits 3).
	Halted  int `json:"halted_waves,omitempty"`
	Drifted int `json:"drifted_routes,omitempty"`
}

// Empty reports whether there is nothing to apply.
func (c *Changes) Empty() bool { return c.Summary.Changes == 0 }

// All returns every change in wave order.
func (c *Changes) All() []*Change {
	var out []*Change
	for _, w := range c.Waves {
		out = append(out, w.Changes...)
	}
	return out
}

func (s *Summary) add(a Action) {
	s.Changes++
	switch a {
	case Import:
		s.Import++
	case Export:
		s.Export++
	case CatchUp:
		s.CatchUp++
	case Cutover:
		s.Cutover++
	case Rollback:
		s.Rollback++
	case Adopt:
		s.Adopt++
	}
}

// Count returns the number of changes of action a.
func (s Summary) Count(a Action) int {
	switch a {
	case Import:
		return s.Import
	case Export:
		return s.Export
	case CatchUp:
		return s.CatchUp
	case Cutover:
		return s.Cutover
	case Rollback:
		return s.Rollback
	case Adopt:
		return s.Adopt
	}
	return 0
}

// WriteJSON writes the changes as indented JSON.
func (c *Changes) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// ReadChanges decodes saved changes and checks the format version.
func ReadChanges(r io.Reader) (*Changes, error) {
	// The version is checked before the rest is decoded: another major
	// version may not decode at all (1.0 had reasons as text).
	var raw json.RawMessage
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode saved changes: %w", err)
	}
	var v struct {
		FormatVersion string `json:"format_version"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("decode saved changes: %w", err)
	}
	if major(v.FormatVersion) != major(FormatVersion) {
		return nil, fmt.Errorf("saved changes have format version %q; this mailmig reads %s.x", v.FormatVersion, major(FormatVersion))
	}
	var c Changes
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode saved changes: %w", err)
	}
	return &c, nil
}

func major(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] == '.' {
			return v[:i]
		}
	}
	return v
}

// Fingerprint digests what Diff saw of one account: its journal position
// and phase, and its route. Refresh results are left out, so that apply can
// check saved changes without asking the sources again.
func Fingerprint(a *state.Account, r Route, hasRoute bool) string {
	h := sha256.New()
	b := make([]byte, 0, 128)
	if a != nil {
		b = strconv.AppendUint(b, a.LastSeq, 10)
		b = append(b, '|')
		b = append(b, a.Phase...)
	}
	b = append(b, '|')
	if hasRoute {
		b = append(b, r.Backend...)
		b = strconv.AppendBool(append(b, '|'), r.Frozen)
		b = strconv.AppendInt(append(b, '|'), r.Generation, 10)
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
