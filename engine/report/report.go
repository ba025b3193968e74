// Package report folds a migration's journal into the run report that
// "mailmig report" renders: per account and per wave what state it is in,
// what was moved, how long it was frozen, when it cut over and what went
// wrong, with totals. It reads records only; it writes nothing and talks
// to no server, so it needs no secrets.
//
// The report is data; cmd/mailmig/internal/views words and draws it
// (Markdown with Mermaid timelines, CSV).
package report

import (
	"slices"
	"sort"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// Account is what the journal says about one account over the whole
// migration.
type Account struct {
	Address string `json:"address"`
	// Wave is the plan's wave of the account (or the journal's, for an
	// account no longer in the plan); "" for none.
	Wave string `json:"wave,omitempty"`
	// InPlan is false for an account only the journal knows.
	InPlan bool `json:"in_plan"`
	// Phase is the lifecycle phase now.
	Phase state.Phase `json:"phase"`
	// Route and Frozen are the route table's entry now ("" when none).
	Route  string `json:"route,omitempty"`
	Frozen bool   `json:"frozen,omitempty"`
	// Messages counts messages copied off the source by successful
	// imports, catch-ups and cut-overs' final catch-ups; Bytes the bytes
	// those and the exports transferred.
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Duplicates are copies the JMAP target collapsed into one Email (the
	// same message twice in a mailbox); KeywordsMerged are messages whose
	// keyword sets from several mailboxes were merged into one. Both are
	// the latest export's totals (state.Counts).
	Duplicates     int64 `json:"duplicates"`
	KeywordsMerged int64 `json:"keywords_merged"`
	// Staged is when the first export completed; FrozenAt when the last
	// cut-over froze the account; CutOver when a cut-over completed (the
	// last one). Zero when it did not happen.
	Staged   time.Time `json:"staged,omitzero"`
	FrozenAt time.Time `json:"frozen_at,omitzero"`
	CutOver  time.Time `json:"cut_over,omitzero"`
	// TimeFrozen adds up every interval the account was frozen: from
	// the freeze to the end of its cut-over (done or rolled back).
	TimeFrozen time.Duration `json:"time_frozen"`
	// Frozen intervals, in order, for the timeline.
	Freezes []Interval `json:"freezes,omitempty"`
	// Errors counts actions that failed, rolled back or were interrupted;
	// RolledBack the cut-overs among them that rolled back; LastError is
	// the latest error text (redacted by the journal).
	Errors     int    `json:"errors"`
	RolledBack int    `json:"rolled_back"`
	LastError  string `json:"last_error,omitempty"`
	// Mismatches adds up what the verifies of failed cut-overs found.
	Mismatches int64 `json:"mismatches"`
	// Conflicts are the items the latest export, catch-up or cut-over
	// kept at the target's version (the user had changed them there):
	// the latest count, like Duplicates.
	Conflicts int64 `json:"conflicts,omitempty"`
}

// Interval is a span of time; End is zero while it lasts.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	// Outcome says how a freeze ended: ok (cut over), rolled-back, …
	Outcome state.Outcome `json:"outcome,omitempty"`
}

// Wave adds up its accounts.
type Wave struct {
	Name string `json:"name"`
	// Accounts are the addresses, in report order.
	Accounts []string `json:"accounts"`
	// Phases counts the accounts per phase.
	Phases map[state.Phase]int `json:"phases"`
	Totals
	// FirstCutOver and LastCutOver bound the wave's cut-overs.
	FirstCutOver time.Time `json:"first_cut_over,omitzero"`
	LastCutOver  time.Time `json:"last_cut_over,omitzero"`
}

// Totals are sums over accounts.
type Totals struct {
	Messages       int64         `json:"messages"`
	Bytes          int64         `json:"bytes"`
	Duplicates     int64         `json:"duplicates"`
	KeywordsMerged int64         `json:"keywords_merged"`
	TimeFrozen     time.Duration `json:"time_frozen"`
	Done           int           `json:"done"`
	Errors         int           `json:"errors"`
	RolledBack     int           `json:"rolled_back"`
	Mismatches     int64         `json:"mismatches"`
	Conflicts      int64         `json:"conflicts,omitempty"`
}

func (t *Totals) add(a *Account) {
	t.Messages += a.Messages
	t.Bytes += a.Bytes
	t.Duplicates += a.Duplicates
	t.KeywordsMerged += a.KeywordsMerged
	t.TimeFrozen += a.TimeFrozen
	t.Errors += a.Errors
	t.RolledBack += a.RolledBack
	t.Mismatches += a.Mismatches
	t.Conflicts += a.Conflicts
	if a.Phase == state.PhaseDone {
		t.Done++
	}
}

// Report is the whole run report.
type Report struct {
	// Lineage and Serial identify the journal the report was made from.
	Lineage string `json:"lineage"`
	Serial  uint64 `json:"serial"`
	// Created is when the report was made; First and Last the times of
	// the journal's first and last records.
	Created time.Time `json:"created"`
	First   time.Time `json:"first,omitzero"`
	Last    time.Time `json:"last,omitzero"`
	// Applies counts the apply runs the journal records (apply-start
	// records; older journals have none).
	Applies int `json:"applies"`
	// Accounts in address order; Waves in plan order, then
	// engine.NoWave when some accounts are in none.
	Accounts []*Account `json:"accounts"`
	Waves    []*Wave    `json:"waves"`
	Totals   Totals     `json:"totals"`
}

// Builder folds records into a Report. Feed it every record in journal
// order with Add, then call Report.
type Builder struct {
	accts   map[string]*Account
	frozen  map[string]int // account → index of its open freeze
	first   time.Time
	last    time.Time
	serial  uint64
	lineage string
	applies int
}

// NewBuilder returns an empty builder.
func NewBuilder() *Builder {
	return &Builder{accts: map[string]*Account{}, frozen: map[string]int{}}
}

func (b *Builder) account(addr string) *Account {
	k := engine.Key(addr)
	a := b.accts[k]
	if a == nil {
		a = &Account{Address: k, Phase: state.PhasePending}
		b.accts[k] = a
	}
	return a
}

// Add folds one record.
func (b *Builder) Add(r *state.Record) {
	if b.first.IsZero() {
		b.first = r.Time
	}
	b.last, b.serial = r.Time, r.Seq
	switch r.Type {
	case state.TypeInit:
		b.lineage = r.Lineage
		return
	case state.TypeApplyStart:
		b.applies++
		return
	}
	if r.Account == "" {
		return
	}
	a := b.account(r.Account)
	switch r.Type {
	case state.TypeStart:
		if r.Wave != "" {
			a.Wave = r.Wave
		}
	case state.TypeTransition:
		a.Phase = r.Phase
		switch r.Phase {
		case state.PhaseStaged:
			if a.Staged.IsZero() {
				a.Staged = r.Time
			}
		case state.PhaseFrozen:
			if _, open := b.frozen[a.Address]; !open {
				a.Freezes = append(a.Freezes, Interval{Start: r.Time})
				b.frozen[a.Address] = len(a.Freezes) - 1
			}
			a.FrozenAt = r.Time
		}
	case state.TypeFinish:
		b.finish(a, r)
	}
}

func (b *Builder) finish(a *Account, r *state.Record) {
	if r.Action == "cutover" || r.Action == "rollback" {
		if i, open := b.frozen[a.Address]; open {
			a.Freezes[i].End, a.Freezes[i].Outcome = r.Time, r.Outcome
			a.TimeFrozen += r.Time.Sub(a.Freezes[i].Start)
			delete(b.frozen, a.Address)
		}
	}
	var c state.Counts
	if r.Counts != nil {
		c = *r.Counts
	}
	switch r.Outcome {
	case state.OutcomeOK:
		switch r.Action {
		case "import", "catch-up", "cutover":
			a.Messages += c.Messages
			a.Bytes += c.Bytes
		case "export":
			a.Bytes += c.Bytes
		}
		switch r.Action {
		case "export", "catch-up", "cutover":
			// Totals at the export's end: the latest counts.
			a.Duplicates, a.KeywordsMerged, a.Conflicts = c.Duplicates, c.KeywordsMerged, c.Conflicts
		}
		if r.Action == "cutover" {
			a.CutOver = r.Time
		}
		if r.Action == "adopt" && a.CutOver.IsZero() {
			a.CutOver = r.Time
		}
	case state.OutcomeFailed, state.OutcomeRolledBack, state.OutcomeInterrupted:
		a.Errors++
		a.LastError = r.Error
		if r.Outcome == state.OutcomeRolledBack {
			a.RolledBack++
		}
		if r.Action == "cutover" {
			a.Mismatches += c.Mismatches
		}
	}
}

// Options add what the journal does not know. A nil *Options means
// none.
type Options struct {
	// Plan supplies the waves and their order, and the accounts that have
	// no record yet.
	Plan *plan.Migration
	// Routes is the route table now, by engine.Key.
	Routes map[string]engine.Route
	// Now is the report's creation time. Default: time.Now().
	Now time.Time
	// Waves, when not empty, limits the report to those waves.
	Waves []string
}

// Report returns the report. A freeze still open at the end lasts until
// opts.Now.
func (b *Builder) Report(opts *Options) *Report {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	rep := &Report{Lineage: b.lineage, Serial: b.serial, Created: o.Now, First: b.first, Last: b.last, Applies: b.applies}
	// Work on copies: Report may be called again after more records.
	accts := make(map[string]*Account, len(b.accts))
	for k, a := range b.accts {
		c := *a
		c.Freezes = slices.Clone(a.Freezes)
		accts[k] = &c
	}
	if o.Plan != nil {
		for _, pa := range o.Plan.Accounts {
			k := engine.Key(pa.Address)
			a := accts[k]
			if a == nil {
				a = &Account{Address: k, Phase: state.PhasePending}
				accts[k] = a
			}
			a.InPlan, a.Wave = true, pa.Wave
		}
	}
	for k, i := range b.frozen {
		a := accts[k]
		a.TimeFrozen += o.Now.Sub(a.Freezes[i].Start)
	}
	for k, a := range accts {
		if r, ok := o.Routes[k]; ok {
			a.Route, a.Frozen = r.Backend, r.Frozen
		}
	}
	keep := func(wave string) bool {
		return len(o.Waves) == 0 || slices.Contains(o.Waves, wave)
	}
	waves := map[string]*Wave{}
	var order []string
	if o.Plan != nil {
		for _, w := range o.Plan.Waves {
			if keep(w.Name) {
				waves[w.Name] = &Wave{Name: w.Name, Phases: map[state.Phase]int{}}
				order = append(order, w.Name)
			}
		}
	}
	for _, a := range accts {
		if !keep(a.Wave) && !(a.Wave == "" && keep(engine.NoWave)) {
			continue
		}
		rep.Accounts = append(rep.Accounts, a)
	}
	sort.Slice(rep.Accounts, func(i, j int) bool { return rep.Accounts[i].Address < rep.Accounts[j].Address })
	for _, a := range rep.Accounts {
		name := a.Wave
		if name == "" {
			name = engine.NoWave
		}
		w := waves[name]
		if w == nil {
			w = &Wave{Name: name, Phases: map[state.Phase]int{}}
			waves[name] = w
			order = append(order, name)
		}
		w.Accounts = append(w.Accounts, a.Address)
		w.Phases[a.Phase]++
		w.add(a)
		rep.Totals.add(a)
		if !a.CutOver.IsZero() {
			if w.FirstCutOver.IsZero() || a.CutOver.Before(w.FirstCutOver) {
				w.FirstCutOver = a.CutOver
			}
			if a.CutOver.After(w.LastCutOver) {
				w.LastCutOver = a.CutOver
			}
		}
	}
	// Waves the plan names keep its order; waves only the journal knows
	// (renamed since) and "(no wave)" follow.
	for _, name := range order {
		rep.Waves = append(rep.Waves, waves[name])
	}
	return rep
}
