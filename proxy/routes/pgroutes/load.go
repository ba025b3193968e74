package pgroutes

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

var _ routes.Loader = (*Store)(nil)

// LoadRoutes implements routes.Loader: the routes in one write, that is
// one change number, one multi-row INSERT through unnest and one row per
// route in the change log (followers read the changed keys as for any
// write; a follower further behind reloads). The caller bounds the batch
// ("state migrate" loads 5,000 at a time).
func (s *Store) LoadRoutes(ctx context.Context, rs []routes.Route) error {
	rs, err := routes.CheckLoad(rs)
	if err != nil || len(rs) == 0 {
		return err
	}
	accts, backends, states := make([]string, len(rs)), make([]string, len(rs)), make([]string, len(rs))
	for i, r := range rs {
		accts[i], backends[i], states[i] = r.Account, r.Backend, string(r.State)
	}
	_, err = s.write(ctx, fmt.Sprintf("load %d routes", len(rs)), func(tx pgx.Tx, now time.Time) ([]change, error) {
		// Only rows that change are written and logged (RETURNING).
		rows, err := tx.Query(ctx, `INSERT INTO mailmig_routes AS r (account, backend, state, generation, updated, seq)
			SELECT a, b, s, 1, $4, (SELECT seq FROM mailmig_route_meta)
			FROM unnest($1::text[], $2::text[], $3::text[]) AS u(a, b, s)
			ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, state = excluded.state,
				generation = r.generation + 1, updated = excluded.updated, seq = excluded.seq
			WHERE r.backend <> excluded.backend OR r.state <> excluded.state
			RETURNING account`, accts, backends, states, now.UTC())
		if err != nil {
			return nil, err
		}
		var cs []change
		var a string
		_, err = pgx.ForEachRow(rows, []any{&a}, func() error { cs = append(cs, change{"route", a}); return nil })
		return cs, err
	})
	return err
}

// LoadAliases implements routes.Loader: one write, one INSERT.
func (s *Store) LoadAliases(ctx context.Context, aliases map[string]string) error {
	if len(aliases) == 0 {
		return nil
	}
	ids, accts := make([]string, 0, len(aliases)), make([]string, 0, len(aliases))
	for id, acct := range aliases {
		id, acct = routes.Normalize(id), routes.Normalize(acct)
		if id == "" || acct == "" || id == acct {
			return fmt.Errorf("load aliases: %w: alias %q → %q", routes.ErrInvalid, id, acct)
		}
		ids, accts = append(ids, id), append(accts, acct)
	}
	_, err := s.write(ctx, fmt.Sprintf("load %d aliases", len(ids)), func(tx pgx.Tx, _ time.Time) ([]change, error) {
		var clash *string
		if err := tx.QueryRow(ctx, `SELECT min(account) FROM mailmig_routes WHERE account = ANY($1)`, ids).Scan(&clash); err != nil {
			return nil, err
		}
		if clash != nil {
			return nil, fmt.Errorf("%w: %s is an account, not an alias", routes.ErrInvalid, *clash)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mailmig_route_aliases (identifier, account)
			SELECT i, a FROM unnest($1::text[], $2::text[]) AS u(i, a)
			ON CONFLICT (identifier) DO UPDATE SET account = excluded.account`, ids, accts); err != nil {
			return nil, err
		}
		cs := make([]change, len(ids))
		for i, id := range ids {
			cs[i] = change{"alias", id}
		}
		return cs, nil
	})
	return err
}
