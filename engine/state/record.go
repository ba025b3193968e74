package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// RecordType says what a journal record means.
type RecordType string

// Record types.
const (
	// TypeInit is the first record of a journal; it names the lineage.
	TypeInit RecordType = "init"
	// TypeStart records that an action started for an account.
	TypeStart RecordType = "start"
	// TypeFinish records how an action ended (see Outcome).
	TypeFinish RecordType = "finish"
	// TypeTransition records that an account entered a lifecycle phase.
	TypeTransition RecordType = "transition"
	// TypeHold records that an account's cut-over is held (after a manual
	// rollback) until it is released.
	TypeHold RecordType = "hold"
	// TypeRelease clears a hold and the failure count of an account.
	TypeRelease RecordType = "release"
	// TypeBreakerOpen records that a backend's circuit breaker opened
	// (Backend, Error: the last failure) or that the probe of an open one
	// failed: apply dispatches nothing more to it.
	TypeBreakerOpen RecordType = "breaker-open"
	// TypeBreakerClosed records that the probe of an open backend
	// succeeded: apply dispatches to it again.
	TypeBreakerClosed RecordType = "breaker-closed"
	// TypeApplyStart opens an apply run: which plan file (PlanFile, or
	// the saved changes file in ChangesFile with their hash in
	// ChangesHash), which plan hash (PlanHash) and who approved it
	// (Approver: the person who typed "yes", "auto-approve", or the
	// approver of a saved changes file). It names no account.
	TypeApplyStart RecordType = "apply-start"
	// TypeRouteEdit records a change of the route table by hand (every
	// "mailmig routes" edit made with a plan): Action is the subcommand
	// ("set", "freeze", "unfreeze", "delete", "alias add", "alias rm",
	// "default", "domain add", "domain rm", "import"), Account the route
	// (the account an alias follows), Backend the backend it (or the
	// default) points at afterwards, Note the other arguments (the alias,
	// the domains, the imported file).
	TypeRouteEdit RecordType = "route-edit"
)

// Phase is an account's place in the migration lifecycle:
// pending → staged → catching-up → frozen → final-sync → verified →
// cut-over → done.
type Phase string

// Lifecycle phases.
const (
	PhasePending    Phase = "pending"
	PhaseStaged     Phase = "staged"
	PhaseCatchingUp Phase = "catching-up"
	PhaseFrozen     Phase = "frozen"
	PhaseFinalSync  Phase = "final-sync"
	PhaseVerified   Phase = "verified"
	PhaseCutOver    Phase = "cut-over"
	PhaseDone       Phase = "done"
)

// Phases lists every phase in lifecycle order.
var Phases = []Phase{PhasePending, PhaseStaged, PhaseCatchingUp, PhaseFrozen, PhaseFinalSync, PhaseVerified, PhaseCutOver, PhaseDone}

// Valid reports whether p is one of Phases.
func (p Phase) Valid() bool {
	for _, q := range Phases {
		if p == q {
			return true
		}
	}
	return false
}

// InCutover reports whether p lies between freezing and the end of a
// cut-over, where an interrupted run leaves an account that needs attention.
func (p Phase) InCutover() bool {
	return p == PhaseFrozen || p == PhaseFinalSync || p == PhaseVerified || p == PhaseCutOver
}

// Outcome is how an action ended.
type Outcome string

// Outcomes of finish records.
const (
	OutcomeOK Outcome = "ok"
	// OutcomeFailed: the action failed and left nothing to undo.
	OutcomeFailed Outcome = "failed"
	// OutcomeRolledBack: a cut-over failed after freezing and the account
	// was routed back to its source, unfrozen.
	OutcomeRolledBack Outcome = "rolled-back"
	// OutcomeInterrupted: the run was stopped (Ctrl-C) during the action.
	OutcomeInterrupted Outcome = "interrupted"
)

// Counts are the sizes an action reports. Zero fields are omitted.
type Counts struct {
	// Messages copied (import/export) or compared (verify).
	Messages int64 `json:"messages,omitempty"`
	// New, Changed and Deleted split Messages of an incremental pass.
	New     int64 `json:"new,omitempty"`
	Changed int64 `json:"changed,omitempty"`
	Deleted int64 `json:"deleted,omitempty"`
	// Bytes transferred.
	Bytes int64 `json:"bytes,omitempty"`
	// Mailboxes created or updated.
	Mailboxes int64 `json:"mailboxes,omitempty"`
	// Objects are calendar events, contacts, files and sieve scripts.
	Objects int64 `json:"objects,omitempty"`
	// Mismatches found by verify.
	Mismatches int64 `json:"mismatches,omitempty"`
	// Duplicates are copies of one message in one mailbox that the
	// target holds as one Email (JMAP has no duplicates within a
	// mailbox); KeywordsMerged are messages whose different keyword sets
	// in several mailboxes became one set (JMAP keeps keywords per
	// Email, not per mailbox). Exports (and the passes that end with one)
	// report them as totals over the archive at the export's end, not as
	// increments: the latest value is the account's (docs/export.md).
	Duplicates     int64 `json:"duplicates,omitempty"`
	KeywordsMerged int64 `json:"keywords_merged,omitempty"`
	// CopiedBack counts the messages a rollback copied from the target
	// to the source (they arrived on the target after the cut-over).
	CopiedBack int64 `json:"copied_back,omitempty"`
	// Reflagged counts the source copies whose flags a rollback set as
	// the user had changed them on the target.
	Reflagged int64 `json:"reflagged,omitempty"`
	// CopiedBackObjects counts the Sieve scripts, contacts, calendar
	// objects and files a rollback copied from the target to the source
	// (created or changed there after the cut-over).
	CopiedBackObjects int64 `json:"copied_back_objects,omitempty"`
	// Conflicts are contacts, events, files and Sieve scripts the user
	// already had changed (or had, by the same name) on the target: the
	// export kept the target's version and verify does not count them as
	// mismatches, so the cut-over proceeds; the count is the warning.
	Conflicts int64 `json:"conflicts,omitempty"`
	// Pruned and PrunedMailboxes count the target emails and non-role
	// mailboxes an export destroyed because the archive does not hold
	// them (apply -worker -prune-on-takeover: messages another worker
	// exported that were deleted at the source before the takeover).
	// Pruned emails are counted in Deleted too.
	Pruned          int64 `json:"pruned,omitempty"`
	PrunedMailboxes int64 `json:"pruned_mailboxes,omitempty"`
}

// Add returns c+o field by field.
func (c Counts) Add(o Counts) Counts {
	return Counts{Messages: c.Messages + o.Messages, New: c.New + o.New, Changed: c.Changed + o.Changed, Deleted: c.Deleted + o.Deleted,
		Bytes: c.Bytes + o.Bytes, Mailboxes: c.Mailboxes + o.Mailboxes, Objects: c.Objects + o.Objects, Mismatches: c.Mismatches + o.Mismatches,
		Duplicates: c.Duplicates + o.Duplicates, KeywordsMerged: c.KeywordsMerged + o.KeywordsMerged,
		CopiedBack: c.CopiedBack + o.CopiedBack, Reflagged: c.Reflagged + o.Reflagged, CopiedBackObjects: c.CopiedBackObjects + o.CopiedBackObjects, Conflicts: c.Conflicts + o.Conflicts,
		Pruned: c.Pruned + o.Pruned, PrunedMailboxes: c.PrunedMailboxes + o.PrunedMailboxes}
}

// Changes is what a pass changed: its new, changed and deleted messages
// and its other objects, else (a count without the split) its messages.
func (c Counts) Changes() int64 {
	if n := c.New + c.Changed + c.Deleted + c.Objects; n > 0 {
		return n
	}
	return c.Messages
}

// IsZero reports whether every count is zero.
func (c Counts) IsZero() bool { return c == Counts{} }

// MaxRecordedMismatches caps the mismatches a finish record names: enough
// to see the pattern, few enough to keep the journal line short.
const MaxRecordedMismatches = 20

// Mismatch is one difference a cut-over's verify found, as the journal
// keeps it: what kind, where and which message, and what differs. It
// holds names and header values, never content or credentials.
type Mismatch struct {
	// Kind is the verify kind ("extra", "missing", "keywords", …;
	// vandelay/verify.Kind), or "sieve-…", "dav-…" for those data kinds.
	Kind string `json:"kind"`
	// Mailbox is the archive mailbox path (or the sieve script name,
	// the DAV collection).
	Mailbox string `json:"mailbox,omitempty"`
	// MessageID is the message's Message-ID header, without brackets.
	MessageID string `json:"message_id,omitempty"`
	// ArchiveID is the archive message (0: none, e.g. an extra target
	// email); TargetID the target email.
	ArchiveID int64  `json:"archive_id,omitempty"`
	TargetID  string `json:"target_id,omitempty"`
	// Item names the message or object in prose when the fields above
	// do not (a DAV href).
	Item string `json:"item,omitempty"`
	// Want is the archive's value, Got the target's (keywords, dates,
	// sizes, counts).
	Want string `json:"want,omitempty"`
	Got  string `json:"got,omitempty"`
}

// Record is one line of the journal. The Journal fills Seq, Lineage (init
// only), Time (when zero) and Prev.
type Record struct {
	Seq  uint64     `json:"seq"`
	Time time.Time  `json:"time"`
	Type RecordType `json:"type"`
	// Lineage is set on the init record only.
	Lineage string `json:"lineage,omitempty"`
	// Actor is user@host of whoever ran the command.
	Actor string `json:"actor,omitempty"`
	// RunID is the CI run id, when the command ran under CI.
	RunID string `json:"run_id,omitempty"`
	// PlanHash is the SHA-256 of the plan files the run acted on.
	PlanHash string `json:"plan_hash,omitempty"`
	Account  string `json:"account,omitempty"`
	// Action is the action of start and finish records (import, export,
	// catch-up, cutover, rollback, adopt).
	Action string `json:"action,omitempty"`
	// Wave is the account's wave on start records.
	Wave string `json:"wave,omitempty"`
	// Source and Target are backend names on start records.
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	// Backend names the backend of breaker records.
	Backend string `json:"backend,omitempty"`
	// Phase is the phase entered, on transition records.
	Phase   Phase   `json:"phase,omitempty"`
	Outcome Outcome `json:"outcome,omitempty"`
	// Error is the redacted error text of a failed action.
	Error string `json:"error,omitempty"`
	// Note is free text for hold and release records.
	Note string `json:"note,omitempty"`
	// PlanFile, ChangesFile, ChangesHash and Approver are set on
	// apply-start records (see TypeApplyStart).
	PlanFile    string  `json:"plan_file,omitempty"`
	ChangesFile string  `json:"changes_file,omitempty"`
	ChangesHash string  `json:"changes_hash,omitempty"`
	Approver    string  `json:"approver,omitempty"`
	Counts      *Counts `json:"counts,omitempty"`
	DurationMS  int64   `json:"duration_ms,omitempty"`
	// Mismatches are the first differences the verify of a failed
	// cut-over found (at most MaxRecordedMismatches; Counts.Mismatches
	// is the total), on its finish record.
	Mismatches []Mismatch `json:"verify_mismatches,omitempty"`
	// Prev is the hex SHA-256 of the previous line; empty on the first.
	Prev string `json:"prev"`
}

// Duration returns DurationMS as a time.Duration.
func (r *Record) Duration() time.Duration { return time.Duration(r.DurationMS) * time.Millisecond }

// parseRecord decodes one journal line.
func parseRecord(line []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return r, fmt.Errorf("decode record: %w", err)
	}
	return r, nil
}
