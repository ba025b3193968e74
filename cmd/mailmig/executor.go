package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// newExecutor returns the executor that moves data for apply: vandelay
// import into the account's archive, JMAP export and verify.
func newExecutor(m *plan.Migration, log *slog.Logger) engine.Executor {
	return unwiredExecutor{}
}

// newDetector returns the change detector for -refresh, or nil.
func newDetector(m *plan.Migration, log *slog.Logger) engine.ChangeDetector {
	return nil
}

// unwiredExecutor fails every step: it stands in until vandelay's import
// and export are wired (see docs/engine.md).
type unwiredExecutor struct{}

var errUnwired = errors.New("data movement is not wired into apply in this build")

func (unwiredExecutor) Import(context.Context, *engine.Job) (state.Counts, error) {
	return state.Counts{}, errUnwired
}
func (unwiredExecutor) Export(context.Context, *engine.Job) (state.Counts, error) {
	return state.Counts{}, errUnwired
}
func (unwiredExecutor) Verify(context.Context, *engine.Job) (state.Counts, error) {
	return state.Counts{}, errUnwired
}
