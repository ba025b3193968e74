package routes

import (
	"context"
	"fmt"
)

// UIDLMapAccounts lists the accounts that have a POP3 UIDL map, sorted
// ("state migrate" copies them between this table and PostgreSQL).
func (s *Store) UIDLMapAccounts(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT account FROM pop3_uidl_maps ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("list the POP3 UIDL maps in %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("list the POP3 UIDL maps in %s: %w", s.path, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
