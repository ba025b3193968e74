package pgroutes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

// Pending marks close a gap of the lease: a proxy that lost the database
// cannot learn that an account's freeze has begun, so it must already know
// which accounts may be frozen while it is away. An apply marks an account
// "pending" when it first works on it (its import or catch-up, long before
// its cut-over). The mark is a route change of its own, with its own
// change number, so a proxy's applied number says whether it has seen it:
//
//   - a proxy in contact treats a pending account like any active one;
//   - a proxy out of contact for longer than its lease treats pending
//     accounts as frozen (like frozen accounts and those in transition);
//   - a barrier leaves out a proxy whose lease expired only if that proxy
//     had applied the account's mark; one that never saw it may still be
//     serving the account from its source, so it is waited for.
//
// The mark goes when the account is active on the mark's target (the
// unfreeze ending its cut-over, in the same change) or leaves the plan
// (PrunePending).

// Mark is an account's pending mark.
type Mark struct {
	Account string `json:"account"`
	// Target is the backend the account is being migrated to.
	Target string `json:"target"`
	// Seq is the change number of the mark.
	Seq    int64     `json:"seq"`
	Marked time.Time `json:"marked"`
}

// MarkPending marks account as having a cut-over to target ahead and
// returns the mark's change number. An account already marked keeps its
// mark and number (a proxy that saw it need not see it again); only the
// target is updated when the plan changed it.
func (s *Store) MarkPending(ctx context.Context, account, target string) (int64, error) {
	account = routes.Normalize(account)
	if account == "" || target == "" {
		return 0, fmt.Errorf("mark %q pending: %w: need an account and a target", account, routes.ErrInvalid)
	}
	var seq int64
	var oldTarget string
	err := s.pool.QueryRow(ctx, `SELECT seq, target FROM mailmig_route_pending WHERE account = $1`, account).Scan(&seq, &oldTarget)
	switch {
	case err == nil && oldTarget == target:
		return seq, nil
	case err == nil:
		// Proxies only need to know that the account is pending, not
		// where it goes: no new change.
		if _, err := s.pool.Exec(ctx, `UPDATE mailmig_route_pending SET target = $2 WHERE account = $1`, account, target); err != nil {
			return 0, fmt.Errorf("mark %s pending: %w", account, err)
		}
		return seq, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, fmt.Errorf("mark %s pending: %w", account, err)
	}
	n, err := s.write(ctx, "mark "+account+" pending", func(tx pgx.Tx, _ time.Time) ([]change, error) {
		tag, err := tx.Exec(ctx, `INSERT INTO mailmig_route_pending (account, target, seq)
			VALUES ($1, $2, (SELECT seq FROM mailmig_route_meta)) ON CONFLICT (account) DO NOTHING`, account, target)
		if err != nil || tag.RowsAffected() == 0 {
			return nil, err // marked meanwhile by another writer
		}
		return []change{{"pending", account}}, nil
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		if err := s.pool.QueryRow(ctx, `SELECT seq FROM mailmig_route_pending WHERE account = $1`, account).Scan(&n); err != nil {
			return 0, fmt.Errorf("mark %s pending: %w", account, err)
		}
	}
	return n, nil
}

// PendingMarks lists the pending marks by account.
func (s *Store) PendingMarks(ctx context.Context) ([]Mark, error) {
	rows, err := s.pool.Query(ctx, `SELECT account, target, seq, marked FROM mailmig_route_pending ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("read the pending marks: %w", err)
	}
	var out []Mark
	var m Mark
	if _, err := pgx.ForEachRow(rows, []any{&m.Account, &m.Target, &m.Seq, &m.Marked}, func() error {
		m.Marked = m.Marked.UTC()
		out = append(out, m)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the pending marks: %w", err)
	}
	return out, nil
}

// PrunePending removes the marks of accounts that are not in keep (the
// accounts the plan still migrates), in one change, and returns them.
func (s *Store) PrunePending(ctx context.Context, keep []string) ([]string, error) {
	ks := make([]string, len(keep))
	for i, k := range keep {
		ks[i] = routes.Normalize(k)
	}
	var gone []string
	// Most runs remove nothing: look first, so that they use no number.
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM mailmig_route_pending WHERE NOT (account = ANY($1))`, ks).Scan(&n); err != nil {
		return nil, fmt.Errorf("prune the pending marks: %w", err)
	}
	if n == 0 {
		return nil, nil
	}
	_, err := s.write(ctx, "prune the pending marks", func(tx pgx.Tx, _ time.Time) ([]change, error) {
		rows, err := tx.Query(ctx, `DELETE FROM mailmig_route_pending WHERE NOT (account = ANY($1)) RETURNING account`, ks)
		if err != nil {
			return nil, err
		}
		gone, err = pgx.CollectRows(rows, pgx.RowTo[string])
		var cs []change
		for _, a := range gone {
			cs = append(cs, change{"pending", a})
		}
		return cs, err
	})
	slices.Sort(gone)
	return gone, err
}

// clearMark removes account's mark when next is active on the mark's
// target, and returns the change to log.
func clearMark(ctx context.Context, tx pgx.Tx, account string, next routes.Route) ([]change, error) {
	if next.State != routes.Active {
		return nil, nil
	}
	tag, err := tx.Exec(ctx, `DELETE FROM mailmig_route_pending WHERE account = $1 AND target = $2`, account, next.Backend)
	if err != nil || tag.RowsAffected() == 0 {
		return nil, err
	}
	return []change{{"pending", account}}, nil
}

// readMarks reads the marks of accounts (all when nil): account → change
// number of the mark.
func readMarks(ctx context.Context, tx pgx.Tx, accounts []string) (map[string]int64, error) {
	q, args := `SELECT account, seq FROM mailmig_route_pending`, []any{}
	if accounts != nil {
		q, args = q+` WHERE account = ANY($1)`, []any{accounts}
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	var a string
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&a, &seq}, func() error { out[a] = seq; return nil })
	return out, err
}

// ErrLiveProxy means ForgetProxy was asked to forget a live proxy.
var ErrLiveProxy = errors.New("the proxy is live")

// ForgetProxy removes a proxy that is not live from the registry, so that
// barriers stop waiting for it. Only for a proxy that is gone for good (a
// machine decommissioned without a clean stop): a proxy that comes back
// registers again once it has caught up. A live proxy is refused
// (ErrLiveProxy): stop it instead, a clean stop deregisters it.
func (s *Store) ForgetProxy(ctx context.Context, id string) (Proxy, error) {
	ps, _, err := s.Proxies(ctx)
	if err != nil {
		return Proxy{}, err
	}
	for _, p := range ps {
		if p.ID != id {
			continue
		}
		if p.Live {
			return p, fmt.Errorf("%w: %s sent a heartbeat at %s (lease %s); stop it (a proxy that stops cleanly leaves the registry) instead of forgetting it", ErrLiveProxy, id, p.Heartbeat.Format(time.RFC3339), p.Lease)
		}
		// Only while it is still not live: it may have come back.
		tag, err := s.pool.Exec(ctx, `DELETE FROM mailmig_proxies WHERE id = $1
			AND heartbeat <= now() - lease_ms * interval '1 millisecond'`, id)
		if err != nil {
			return p, fmt.Errorf("forget proxy %s: %w", id, err)
		}
		if tag.RowsAffected() == 0 {
			return p, fmt.Errorf("%w: %s came back while it was being forgotten", ErrLiveProxy, id)
		}
		return p, nil
	}
	return Proxy{}, fmt.Errorf("no proxy %q is registered in %s", id, s.where)
}

// PendingSummary returns how many accounts are pending and the change
// number of the newest mark (0 when none): a proxy that applied that
// number has seen every mark.
func (s *Store) PendingSummary(ctx context.Context) (n int, last int64, err error) {
	if err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(max(seq), 0) FROM mailmig_route_pending`).Scan(&n, &last); err != nil {
		return 0, 0, fmt.Errorf("read the pending marks: %w", err)
	}
	return n, last, nil
}
