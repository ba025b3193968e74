package main

import (
	"fmt"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// journalRouteEdit records a change of the route table made by hand (every
// "routes" subcommand that writes: set, freeze, unfreeze, delete, alias,
// default, domain, import) in the journal, in the same hash chain as
// apply's records, so that the history shows who moved an account, an
// alias or the default and when. e names the edit: Action is the
// subcommand (with "add"/"rm" for alias and domain), Account and Backend
// the route, Note the other arguments; the journal adds the actor. It runs
// under the state lock that the edit took. With -db (no plan, so no
// journal) nothing is recorded, and the operator is told so. A journal
// that cannot be written is an error: the table did change, and the
// operator must know the journal does not say so.
func journalRouteEdit(g *globals, v *views.View, s Streams, m *plan.Migration, e state.Record) int {
	if m == nil {
		fmt.Fprintln(s.Err, "Note: this edit is not journaled: with -db no plan is read, so there is no journal to record it in.")
		return exitOK
	}
	j, err := openJournal(m, false, g.logger(s))
	if err != nil {
		fmtErr(v, "The route table changed, but the journal cannot record it", err)
		return exitError
	}
	defer j.Close()
	e.Type = state.TypeRouteEdit
	if _, err := j.Append(e); err != nil {
		fmtErr(v, "The route table changed, but the journal cannot record it", err)
		return exitError
	}
	return exitOK
}
