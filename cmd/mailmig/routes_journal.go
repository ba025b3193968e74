package main

import (
	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// journalRouteEdit records a route changed by hand ("routes set",
// "freeze", "unfreeze", "delete") in the journal, in the same hash chain as
// apply's records, so that the history shows who moved an account and
// when. It runs under the state lock that the edit took; with -db (no
// plan, so no journal) nothing is recorded. A journal that cannot be
// written is an error: the route did change, and the operator must know
// the journal does not say so.
func journalRouteEdit(g *globals, v *views.View, s Streams, m *plan.Migration, op, account, backend string) int {
	if m == nil {
		return exitOK
	}
	j, err := openJournal(m, false, g.logger(s))
	if err != nil {
		fmtErr(v, "The route changed, but the journal cannot record it", err)
		return exitError
	}
	defer j.Close()
	if _, err := j.Append(state.Record{Type: state.TypeRouteEdit, Action: op, Account: account, Backend: backend}); err != nil {
		fmtErr(v, "The route changed, but the journal cannot record it", err)
		return exitError
	}
	return exitOK
}
