package routes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Alias returns the account an alias names; ok is false when identifier
// is no alias. (One indexed query: the admin API answers it without
// reading the whole table.)
func (s *Store) Alias(ctx context.Context, identifier string) (account string, ok bool, err error) {
	id := Normalize(identifier)
	err = s.db.QueryRowContext(ctx, `SELECT account FROM aliases WHERE identifier = ?`, id).Scan(&account)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read alias %s: %w", id, err)
	}
	return account, true, nil
}

// DomainListed reports whether the domain is listed explicitly (domains
// derived from accounts and aliases are not).
func (s *Store) DomainListed(ctx context.Context, domain string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM domains WHERE domain = ?`, Normalize(domain)).Scan(&n); err != nil {
		return false, fmt.Errorf("read domain %s: %w", Normalize(domain), err)
	}
	return n > 0, nil
}

// Default returns the default backend ("" when there is none).
func (s *Store) Default(ctx context.Context) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'default'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the default backend: %w", err)
	}
	return v, nil
}
