package main

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/proxy/routes"
)

// routeCopyBatch is how many routes (or aliases) "state migrate" writes
// per transaction: one transaction per route took minutes per 100,000
// routes (docs/fleet.md has the figures); one for all would hold a
// million rows' locks and change-log rows in one transaction.
const routeCopyBatch = routes.LoadBatch

// loadRoutes writes the routes and aliases into a table in batches of
// routeCopyBatch (both stores are routes.Loaders; any other table gets
// one transaction per entry).
func loadRoutes(ctx context.Context, into routes.DB, rs []routes.Route, aliases map[string]string) error {
	l, ok := into.(routes.Loader)
	if !ok {
		for _, r := range rs {
			if _, err := into.Update(ctx, r.Account, func(n *routes.Route, _ bool) error {
				n.Backend, n.State = r.Backend, r.State
				return nil
			}); err != nil {
				return fmt.Errorf("copy route %s: %w", r.Account, err)
			}
		}
		for id, acct := range aliases {
			if err := into.AddAlias(ctx, id, acct); err != nil {
				return fmt.Errorf("copy alias %s: %w", id, err)
			}
		}
		return nil
	}
	for i := 0; i < len(rs); i += routeCopyBatch {
		b := rs[i:min(i+routeCopyBatch, len(rs))]
		if err := l.LoadRoutes(ctx, b); err != nil {
			return fmt.Errorf("copy routes %s to %s: %w", b[0].Account, b[len(b)-1].Account, err)
		}
	}
	batch := make(map[string]string, min(len(aliases), routeCopyBatch))
	for id, acct := range aliases {
		batch[id] = acct
		if len(batch) == routeCopyBatch {
			if err := l.LoadAliases(ctx, batch); err != nil {
				return fmt.Errorf("copy aliases: %w", err)
			}
			clear(batch)
		}
	}
	if err := l.LoadAliases(ctx, batch); err != nil {
		return fmt.Errorf("copy aliases: %w", err)
	}
	return nil
}

// uidlMapStore is a route table holding POP3 UIDL maps (both stores).
type uidlMapStore interface {
	UIDLMapAccounts(ctx context.Context) ([]string, error)
	UIDLMap(ctx context.Context, account string) (string, map[string]string, error)
	SetUIDLMap(ctx context.Context, account, backend string, m map[string]string) error
}

// copyUIDLMaps copies the POP3 UIDL maps the cut-overs wrote, so that
// POP3 clients of accounts already migrated keep their UIDLs behind the
// moved route table; it returns how many it copied.
func copyUIDLMaps(ctx context.Context, from, into routes.DB) (int, error) {
	f, ok1 := from.(uidlMapStore)
	t, ok2 := into.(uidlMapStore)
	if !ok1 || !ok2 {
		return 0, nil
	}
	accts, err := f.UIDLMapAccounts(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range accts {
		backend, m, err := f.UIDLMap(ctx, a)
		if err != nil {
			return n, err
		}
		if backend == "" {
			continue
		}
		if err := t.SetUIDLMap(ctx, a, backend, m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
