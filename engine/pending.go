package engine

import (
	"context"
	"log/slog"
)

// PendingMarker is implemented by route tables that proxies follow from
// afar (the PostgreSQL fleet, proxy/routes/pgroutes): a proxy that loses
// the table cannot learn that an account's freeze has begun, so it must
// know beforehand which accounts may be frozen while it is away. Apply
// marks an account "pending" when it first works on it — the import,
// export or catch-up of an account that has a cut-over ahead — and once
// more, a no-op when marked, before its cut-over. The table clears the
// mark when the account is active on its target.
//
// Marking is not what keeps a cut-over safe: the fleet's Barrier waits for
// every proxy that has not seen the account's mark, live or not. An early
// mark is what lets the barrier leave out a proxy that lost the table after
// seeing it; a mark that fails is logged and the change goes on.
type PendingMarker interface {
	MarkPending(ctx context.Context, account, target string) error
}

// markPending marks c's account when c works towards a cut-over.
func (a *applier) markPending(c *Change, log *slog.Logger) {
	if a.env.Pending == nil || c.Source == c.Target || c.Target == "" {
		return
	}
	switch c.Action {
	case Import, Export, CatchUp:
	case Cutover:
		if c.Resume {
			return // only the unfreeze is left
		}
	default:
		return
	}
	if err := a.env.Pending.MarkPending(a.ctx, Key(c.Account), c.Target); err != nil {
		log.Warn("could not mark the account pending in the route table; its cut-over will wait for every proxy out of contact",
			"err", a.redact(err.Error()))
	}
}
