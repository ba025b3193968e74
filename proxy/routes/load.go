package routes

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Loader is a route table that takes many routes in one write ("state
// migrate" copies a table of a million routes; one transaction per route
// took minutes per 100,000). Both stores implement it.
type Loader interface {
	// LoadRoutes sets every route's backend and state in one transaction:
	// a new route starts at generation 1, an existing one whose backend
	// or state changes gets the next generation.
	LoadRoutes(ctx context.Context, rs []Route) error
	// LoadAliases adds the aliases (identifier → account) in one
	// transaction; an identifier that is an account is refused.
	LoadAliases(ctx context.Context, aliases map[string]string) error
}

var _ Loader = (*Store)(nil)

// CheckLoad normalises and checks routes for LoadRoutes; of two routes of
// one account the later wins (one statement may not write a row twice).
func CheckLoad(rs []Route) ([]Route, error) {
	out := make([]Route, 0, len(rs))
	at := make(map[string]int, len(rs))
	for _, r := range rs {
		r.Account, r.Backend = Normalize(r.Account), strings.TrimSpace(r.Backend)
		if r.Account == "" || r.Backend == "" {
			return nil, fmt.Errorf("%w: route %q → %q", ErrInvalid, r.Account, r.Backend)
		}
		if r.State == "" {
			r.State = Active
		}
		if !r.State.Valid() {
			return nil, fmt.Errorf("%w: state %q of %s (want active or frozen)", ErrInvalid, r.State, r.Account)
		}
		if i, ok := at[r.Account]; ok {
			out[i] = r
			continue
		}
		at[r.Account] = len(out)
		out = append(out, r)
	}
	return out, nil
}

// LoadRoutes implements Loader.
func (s *Store) LoadRoutes(ctx context.Context, rs []Route) error {
	rs, err := CheckLoad(rs)
	if err != nil || len(rs) == 0 {
		return err
	}
	now := s.now().UTC().UnixNano()
	return s.tx(ctx, fmt.Sprintf("load %d routes", len(rs)), func(tx *sql.Tx) (bool, error) {
		st, err := tx.PrepareContext(ctx, `INSERT INTO routes (account, backend, state, generation, updated) VALUES (?, ?, ?, 1, ?)
			ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, state = excluded.state,
				generation = routes.generation + 1, updated = excluded.updated
			WHERE routes.backend <> excluded.backend OR routes.state <> excluded.state`)
		if err != nil {
			return false, err
		}
		defer st.Close()
		for _, r := range rs {
			if _, err := st.ExecContext(ctx, r.Account, r.Backend, string(r.State), now); err != nil {
				return false, fmt.Errorf("route %s: %w", r.Account, err)
			}
		}
		return true, nil
	})
}

// LoadAliases implements Loader.
func (s *Store) LoadAliases(ctx context.Context, aliases map[string]string) error {
	if len(aliases) == 0 {
		return nil
	}
	return s.tx(ctx, fmt.Sprintf("load %d aliases", len(aliases)), func(tx *sql.Tx) (bool, error) {
		st, err := tx.PrepareContext(ctx, `INSERT INTO aliases (identifier, account) VALUES (?, ?)
			ON CONFLICT (identifier) DO UPDATE SET account = excluded.account`)
		if err != nil {
			return false, err
		}
		defer st.Close()
		for id, acct := range aliases {
			id, acct = Normalize(id), Normalize(acct)
			if id == "" || acct == "" || id == acct {
				return false, fmt.Errorf("%w: alias %q → %q", ErrInvalid, id, acct)
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM routes WHERE account = ?`, id).Scan(&n); err != nil {
				return false, err
			}
			if n > 0 {
				return false, fmt.Errorf("%w: %s is an account, not an alias", ErrInvalid, id)
			}
			if _, err := st.ExecContext(ctx, id, acct); err != nil {
				return false, fmt.Errorf("alias %s: %w", id, err)
			}
		}
		return true, nil
	})
}
