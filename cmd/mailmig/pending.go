package main

import (
	"context"
	"strings"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// pendingMarks marks accounts with a cut-over ahead in the PostgreSQL route
// table (engine.PendingMarker; see docs/fleet.md, "Pending accounts"). A
// SQLite table's proxies read the file on the same machine and never lose
// it for long, so it has no marks.
type pendingMarks struct{ st *pgroutes.Store }

var _ engine.PendingMarker = pendingMarks{}

func (p pendingMarks) MarkPending(ctx context.Context, account, target string) error {
	_, err := p.st.MarkPending(ctx, account, target)
	return err
}

// prune removes the marks of accounts the plan no longer migrates (gone
// from it, or kept where they are).
func (p pendingMarks) prune(ctx context.Context, m *plan.Migration) ([]string, error) {
	keep := make([]string, 0, len(m.Accounts))
	for _, a := range m.Accounts {
		if a.From != a.To {
			keep = append(keep, engine.Key(a.Address))
		}
	}
	return p.st.PrunePending(ctx, keep)
}

// wirePending gives env the world's pending marks, after removing those of
// accounts that left the plan. A failure is only logged: marks are what
// lets a barrier leave a proxy out, never what makes it safe.
func wirePending(ctx context.Context, env *engine.Env, w *world, m *plan.Migration, log interface{ Warn(string, ...any) }) {
	if w.Pending == nil {
		return
	}
	env.Pending = w.Pending
	gone, err := w.Pending.prune(ctx, m)
	if err != nil {
		log.Warn("could not remove the pending marks of accounts no longer in the plan", "err", err)
	} else if len(gone) > 0 {
		log.Warn("removed the pending marks of accounts no longer migrated by the plan", "accounts", strings.Join(gone, ", "))
	}
}
