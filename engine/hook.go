package engine

import (
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// Result is how one change ended.
type Result struct {
	Change *Change `json:"change"`
	// Outcome is ok, failed, rolled-back or interrupted; "skipped" when
	// the change never started.
	Outcome state.Outcome `json:"outcome"`
	// Err is the error of a failed change (not serialised: Error is).
	Err   error  `json:"-"`
	Error string `json:"error,omitempty"`
	// Skipped says why a change did not start.
	Skipped  string        `json:"skipped,omitempty"`
	Counts   state.Counts  `json:"counts"`
	Duration time.Duration `json:"duration"`
	// Mismatches are the first differences a failed cut-over's verify
	// named (see VerifyError).
	Mismatches []state.Mismatch `json:"mismatches,omitempty"`

	started time.Time
}

// OutcomeSkipped marks a change that did not start (a dependency failed,
// the wave halted, or the run was stopped).
const OutcomeSkipped state.Outcome = "skipped"

// Hook observes Apply. Methods are called from worker goroutines, possibly
// concurrently; implementations must be safe for concurrent use and fast.
type Hook interface {
	// PreAction is called before a change starts.
	PreAction(c *Change)
	// Step is called when a change enters a step ("freeze", "final
	// catch-up", "verify", "flip", "unfreeze", "copy back", "rollback",
	// "import", "export").
	Step(c *Change, step string)
	// Progress reports work within a step: done of total units (total 0:
	// unknown).
	Progress(c *Change, done, total int64)
	// PostAction is called when a change ended or was skipped.
	PostAction(c *Change, r *Result)
}

// Work is how far a change's current step is, in messages and bytes.
// Totals are what the step knows so far (a source discovers its mailboxes
// one after the other; an export knows the archive's totals at once); 0
// means unknown.
type Work struct {
	Messages, TotalMessages int64
	Bytes, TotalBytes       int64
}

// WorkHook is implemented by hooks that show messages and bytes (apply's
// progress display). Apply calls Work, besides Progress, whenever an
// executor reports through Job.Work; like every Hook method it may be
// called concurrently and must be fast.
type WorkHook interface {
	Work(c *Change, w Work)
}

// NopHook implements Hook and does nothing; embed it to implement only some
// methods.
type NopHook struct{}

// PreAction does nothing.
func (NopHook) PreAction(*Change) {}

// Step does nothing.
func (NopHook) Step(*Change, string) {}

// Progress does nothing.
func (NopHook) Progress(*Change, int64, int64) {}

// PostAction does nothing.
func (NopHook) PostAction(*Change, *Result) {}

var _ Hook = NopHook{}

type hooks []Hook

func (h hooks) pre(c *Change) {
	for _, x := range h {
		x.PreAction(c)
	}
}
func (h hooks) step(c *Change, s string) {
	for _, x := range h {
		x.Step(c, s)
	}
}
func (h hooks) progress(c *Change, d, t int64) {
	for _, x := range h {
		x.Progress(c, d, t)
	}
}
func (h hooks) work(c *Change, w Work) {
	for _, x := range h {
		if wh, ok := x.(WorkHook); ok {
			wh.Work(c, w)
		}
	}
}
func (h hooks) post(c *Change, r *Result) {
	for _, x := range h {
		x.PostAction(c, r)
	}
}
