package pgroutes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

// POP3 UIDL maps in PostgreSQL (issue 18), the fleet's counterpart of the
// SQLite route table's (proxy/routes/uidl.go): the cut-over writes the
// account's map before its flip, every proxy's POP3 front reads it at
// login. Neither touches the change counter: a map is read when a session
// starts, not followed.

// UIDLBatch is how many UIDL pairs one INSERT carries: a map of any size
// is written in statements of bounded size.
const UIDLBatch = 5000

// SetUIDLMap replaces the account's POP3 UIDL map (target UIDL → source
// UIDL) for backend, in one transaction: the old pairs go, the new ones
// are inserted UIDLBatch at a time (one multi-row statement each). Writing
// the same map again leaves the same rows, so a cut-over that is retried
// may write it as often as it likes.
func (s *Store) SetUIDLMap(ctx context.Context, account, backend string, m map[string]string) error {
	account = routes.Normalize(account)
	err := s.uidlTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO mailmig_pop3_uidl_maps (account, backend, written) VALUES ($1, $2, now())
			ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, written = excluded.written`, account, backend); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM mailmig_pop3_uidls WHERE account = $1`, account); err != nil {
			return err
		}
		// Sorted, so that the batches (and a retry's) are the same.
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for len(keys) > 0 {
			n := min(len(keys), UIDLBatch)
			srcs := make([]string, n)
			for i, k := range keys[:n] {
				srcs[i] = m[k]
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mailmig_pop3_uidls (account, target, source)
				SELECT $1, t, s FROM unnest($2::text[], $3::text[]) AS u(t, s)`, account, keys[:n], srcs); err != nil {
				return err
			}
			keys = keys[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s into %s: %w", account, s.where, err)
	}
	return nil
}

func (s *Store) uidlTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// UIDLMap returns the account's POP3 UIDL map and the backend it was made
// for; backend is "" when the account has none. It reads both tables in
// one repeatable-read transaction, so a map being replaced is seen whole,
// old or new.
func (s *Store) UIDLMap(ctx context.Context, account string) (backend string, m map[string]string, err error) {
	account = routes.Normalize(account)
	err = s.readTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT backend FROM mailmig_pop3_uidl_maps WHERE account = $1`, account).Scan(&backend)
		if errors.Is(err, pgx.ErrNoRows) {
			backend = ""
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT target, source FROM mailmig_pop3_uidls WHERE account = $1`, account)
		if err != nil {
			return err
		}
		m = map[string]string{}
		var t, src string
		_, err = pgx.ForEachRow(rows, []any{&t, &src}, func() error { m[t] = src; return nil })
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("read the POP3 UIDL map of %s from %s: %w", account, s.where, err)
	}
	return backend, m, nil
}

// UIDLMapAccounts lists the accounts that have a POP3 UIDL map, sorted
// ("state migrate" copies them).
func (s *Store) UIDLMapAccounts(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT account FROM mailmig_pop3_uidl_maps ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("list the POP3 UIDL maps in %s: %w", s.where, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list the POP3 UIDL maps in %s: %w", s.where, err)
	}
	return out, nil
}

// UIDLMaps reads POP3 UIDL maps for a proxy's POP3 front: from the
// database at every login, like the SQLite table, so a map written by a
// cut-over applies to the next session on every proxy. The last map read
// for an account is kept (up to MaxPairs pairs in all) and answers while
// the database cannot be reached: a proxy that lost the database keeps
// routing from its table, and its migrated POP3 users keep their UIDLs
// instead of getting temporary errors. It is safe for concurrent use.
type UIDLMaps struct {
	Store *Store
	// MaxPairs bounds the pairs kept for outages. Default: 1,000,000.
	MaxPairs int

	mu    sync.Mutex
	kept  map[string]keptMap
	pairs int
}

type keptMap struct {
	backend string
	m       map[string]string
}

// UIDLMap implements the POP3 front's UIDLMaps.
func (u *UIDLMaps) UIDLMap(ctx context.Context, account string) (string, map[string]string, error) {
	account = routes.Normalize(account)
	backend, m, err := u.Store.UIDLMap(ctx, account)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if k, ok := u.kept[account]; ok && ctx.Err() == nil {
			return k.backend, k.m, nil
		}
		return "", nil, err
	}
	limit := u.MaxPairs
	if limit <= 0 {
		limit = 1_000_000
	}
	if u.kept == nil {
		u.kept = map[string]keptMap{}
	}
	if old, ok := u.kept[account]; ok {
		u.pairs -= len(old.m)
		delete(u.kept, account)
	}
	if backend != "" && len(m) <= limit {
		// Make room by forgetting other accounts (any: a kept map only
		// matters during an outage).
		for a, k := range u.kept {
			if u.pairs+len(m) <= limit {
				break
			}
			u.pairs -= len(k.m)
			delete(u.kept, a)
		}
		u.kept[account] = keptMap{backend, m}
		u.pairs += len(m)
	}
	return backend, m, nil
}
