package state

import (
	"sort"
	"time"
)

// State is the fold of the journal: what is known about every account that
// the journal mentions. The zero value is the state of an empty journal.
type State struct {
	// Lineage names the migration; empty until the first record.
	Lineage string `json:"lineage"`
	// Serial is the number of records folded.
	Serial uint64 `json:"serial"`
	// Accounts maps the account address to its state.
	Accounts map[string]*Account `json:"accounts"`
	// Breakers are the backends whose circuit breaker is open, by name:
	// the next apply probes each once before dispatching to it.
	Breakers map[string]*Breaker `json:"breakers,omitempty"`
}

// Breaker is an open circuit breaker of a backend.
type Breaker struct {
	// Error is the redacted last failure (of the work or of the probe).
	Error string `json:"error,omitempty"`
	// Opened is when the breaker opened; Seq its record.
	Opened time.Time `json:"opened,omitzero"`
	Seq    uint64    `json:"seq"`
}

// Account is the folded state of one account.
type Account struct {
	Address string `json:"address"`
	// Phase is the last phase entered. Default: pending.
	Phase Phase `json:"phase"`
	// Wave, Source and Target are those of the last action started.
	Wave   string `json:"wave,omitempty"`
	Source string `json:"source,omitempty"`
	Target string `json:"target,omitempty"`
	// Imported and Exported say whether a first full import and export
	// completed.
	Imported bool `json:"imported,omitempty"`
	Exported bool `json:"exported,omitempty"`
	// LastImport and LastExport are the finish times of the last
	// successful import and export halves (including catch-ups).
	LastImport time.Time `json:"last_import,omitzero"`
	LastExport time.Time `json:"last_export,omitzero"`
	// LastPass is the finish time of the last successful import or
	// catch-up and LastPassCounts what it copied: a cut-over waits until
	// this was small.
	LastPass       time.Time `json:"last_pass,omitzero"`
	LastPassCounts Counts    `json:"last_pass_counts,omitzero"`
	// LastCatchUpMS is how long the last successful catch-up took and
	// LastCatchUpChanges what it changed (Counts.Changes): a cut-over's
	// final sync does what a catch-up does, so plan estimates the time
	// frozen from them.
	LastCatchUpMS      int64 `json:"last_catch_up_ms,omitempty"`
	LastCatchUpChanges int64 `json:"last_catch_up_changes,omitempty"`
	// InFlight is the action started and not finished (a crash or kill
	// during it), with the seq of its start record.
	InFlight    string `json:"in_flight,omitempty"`
	InFlightSeq uint64 `json:"in_flight_seq,omitempty"`
	// LastError is the redacted error of the last failed action.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// FailedCutovers counts cut-overs that failed or rolled back since the
	// last successful one or release.
	FailedCutovers int `json:"failed_cutovers,omitempty"`
	// Mismatches is the number of verify mismatches of the last failed
	// cut-over since the last success or release.
	Mismatches int64 `json:"mismatches,omitempty"`
	// VerifyMismatches are the mismatches the journal names for the last
	// failed cut-over (at most MaxRecordedMismatches of Mismatches).
	VerifyMismatches []Mismatch `json:"verify_mismatches,omitempty"`
	// Held is set by a manual rollback: no cut-over is planned until
	// "mailmig state release".
	Held     bool   `json:"held,omitempty"`
	HoldNote string `json:"hold_note,omitempty"`
	// Adopted says the account was recorded as migrated without copying.
	Adopted bool `json:"adopted,omitempty"`
	// TakenOver is the note of the last takeover record (an apply worker
	// took the account over from a dead one) since the account's last
	// cut-over; empty when none. Its archive may lack messages the other
	// worker exported: apply -worker explains a verify that finds only
	// extra target emails with it, and -prune-on-takeover prunes them.
	TakenOver string `json:"taken_over,omitempty"`
	// Changed is the time of the last record about the account.
	Changed time.Time `json:"changed,omitzero"`
	// LastSeq is the seq of the last record about the account.
	LastSeq uint64 `json:"last_seq"`
}

// Account returns the state of addr, or nil when the journal never
// mentioned it.
func (s *State) Account(addr string) *Account {
	if s == nil || s.Accounts == nil {
		return nil
	}
	return s.Accounts[addr]
}

// Addresses returns the addresses of every account in the state, sorted.
func (s *State) Addresses() []string {
	out := make([]string, 0, len(s.Accounts))
	for a := range s.Accounts {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Apply folds one record into the state. Records must be applied in seq
// order.
func (s *State) Apply(r *Record) {
	s.Serial = r.Seq
	if r.Type == TypeInit {
		s.Lineage = r.Lineage
		return
	}
	switch r.Type {
	case TypeBreakerOpen:
		if s.Breakers == nil {
			s.Breakers = make(map[string]*Breaker)
		}
		s.Breakers[r.Backend] = &Breaker{Error: r.Error, Opened: r.Time, Seq: r.Seq}
		return
	case TypeBreakerClosed:
		delete(s.Breakers, r.Backend)
		return
	}
	if r.Account == "" {
		return
	}
	if s.Accounts == nil {
		s.Accounts = make(map[string]*Account)
	}
	a := s.Accounts[r.Account]
	if a == nil {
		a = &Account{Address: r.Account, Phase: PhasePending}
		s.Accounts[r.Account] = a
	}
	a.Changed = r.Time
	a.LastSeq = r.Seq
	switch r.Type {
	case TypeStart:
		a.InFlight, a.InFlightSeq = r.Action, r.Seq
		if r.Wave != "" {
			a.Wave = r.Wave
		}
		if r.Source != "" {
			a.Source = r.Source
		}
		if r.Target != "" {
			a.Target = r.Target
		}
	case TypeFinish:
		a.InFlight, a.InFlightSeq = "", 0
		var c Counts
		if r.Counts != nil {
			c = *r.Counts
		}
		switch r.Outcome {
		case OutcomeOK:
			a.LastError = ""
			switch r.Action {
			case "import":
				a.Imported = true
				a.LastImport, a.LastPass, a.LastPassCounts = r.Time, r.Time, c
			case "export":
				a.Exported = true
				a.LastExport = r.Time
			case "catch-up":
				a.LastImport, a.LastExport, a.LastPass, a.LastPassCounts = r.Time, r.Time, r.Time, c
				// A catch-up under 1 ms has no duration_ms: count it as 1,
				// so that a journaled catch-up is always known here.
				a.LastCatchUpMS, a.LastCatchUpChanges = max(r.DurationMS, 1), c.Changes()
			case "cutover":
				a.FailedCutovers, a.Mismatches, a.VerifyMismatches = 0, 0, nil
				a.TakenOver = ""
				a.LastImport, a.LastExport, a.LastPass, a.LastPassCounts = r.Time, r.Time, r.Time, c
			case "adopt":
				a.Adopted = true
			}
		case OutcomeFailed, OutcomeRolledBack:
			a.LastError, a.LastErrorTime = r.Error, r.Time
			if r.Action == "cutover" {
				a.FailedCutovers++
				a.Mismatches, a.VerifyMismatches = c.Mismatches, r.Mismatches
			}
		case OutcomeInterrupted:
			a.LastError, a.LastErrorTime = "interrupted", r.Time
		}
	case TypeTransition:
		a.Phase = r.Phase
	case TypeTakeover:
		a.TakenOver = r.Note
	case TypeHold:
		a.Held, a.HoldNote = true, r.Note
	case TypeRelease:
		a.Held, a.HoldNote, a.FailedCutovers, a.Mismatches, a.VerifyMismatches = false, "", 0, 0, nil
	}
}
