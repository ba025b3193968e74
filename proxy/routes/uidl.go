package routes

import (
	"context"
	"database/sql"
	"fmt"
)

// POP3 UIDL maps (issue 15).
//
// A POP3 client that leaves mail on the server remembers the UIDL of every
// message it downloaded. After a cut-over the target numbers the same
// messages with its own UIDLs, and the client would download them all
// again. The cut-over therefore writes, before the flip, a map from the
// target's UIDL of each migrated message to the UIDL the source gave it;
// the proxy's POP3 front reads it at login (one indexed query, no archive)
// and answers UIDL through it. The map names the backend it was made for:
// it applies only while the account's route points there.

const uidlSchema = `
CREATE TABLE IF NOT EXISTS pop3_uidl_maps (
	account TEXT PRIMARY KEY,
	backend TEXT NOT NULL,
	written INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pop3_uidls (
	account TEXT NOT NULL,
	target  TEXT NOT NULL,
	source  TEXT NOT NULL,
	PRIMARY KEY (account, target)
);
`

// SetUIDLMap replaces the account's POP3 UIDL map (target UIDL → source
// UIDL) for backend, in one transaction. It does not touch the change
// counter: proxies read the map at each POP3 login.
func (s *Store) SetUIDLMap(ctx context.Context, account, backend string, m map[string]string) error {
	account = Normalize(account)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `DELETE FROM pop3_uidls WHERE account = ?`, account); err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pop3_uidl_maps (account, backend, written) VALUES (?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, written = excluded.written`, account, backend, s.now().UnixNano()); err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO pop3_uidls (account, target, source) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
	}
	defer ins.Close()
	for t, src := range m {
		if _, err := ins.ExecContext(ctx, account, t, src); err != nil {
			return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write the POP3 UIDL map of %s: %w", account, err)
	}
	return nil
}

// UIDLMap returns the account's POP3 UIDL map and the backend it was made
// for; backend is "" when the account has none.
func (s *Store) UIDLMap(ctx context.Context, account string) (backend string, m map[string]string, err error) {
	account = Normalize(account)
	err = s.db.QueryRowContext(ctx, `SELECT backend FROM pop3_uidl_maps WHERE account = ?`, account).Scan(&backend)
	if err == sql.ErrNoRows {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("read the POP3 UIDL map of %s: %w", account, err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT target, source FROM pop3_uidls WHERE account = ?`, account)
	if err != nil {
		return "", nil, fmt.Errorf("read the POP3 UIDL map of %s: %w", account, err)
	}
	defer rows.Close()
	m = map[string]string{}
	for rows.Next() {
		var t, src string
		if err := rows.Scan(&t, &src); err != nil {
			return "", nil, fmt.Errorf("read the POP3 UIDL map of %s: %w", account, err)
		}
		m[t] = src
	}
	return backend, m, rows.Err()
}
