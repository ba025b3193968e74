package pgroutes

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

// Alias returns the account an alias names; ok is false when identifier
// is no alias.
func (s *Store) Alias(ctx context.Context, identifier string) (account string, ok bool, err error) {
	id := routes.Normalize(identifier)
	err = s.pool.QueryRow(ctx, `SELECT account FROM mailmig_route_aliases WHERE identifier = $1`, id).Scan(&account)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read alias %s: %w", id, err)
	}
	return account, true, nil
}

// DomainListed reports whether the domain is listed explicitly.
func (s *Store) DomainListed(ctx context.Context, domain string) (bool, error) {
	var ok bool
	d := routes.Normalize(domain)
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailmig_route_domains WHERE domain = $1)`, d).Scan(&ok); err != nil {
		return false, fmt.Errorf("read domain %s: %w", d, err)
	}
	return ok, nil
}

// Default returns the default backend ("" when there is none).
func (s *Store) Default(ctx context.Context) (string, error) {
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT default_backend FROM mailmig_route_meta`).Scan(&v); err != nil {
		return "", fmt.Errorf("read the default backend: %w", err)
	}
	return v, nil
}
