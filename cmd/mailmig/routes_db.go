package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// openRouteDB opens the plan's route table: the PostgreSQL database of its
// routes block, else the SQLite file. write creates what is missing (the
// file, or the schema); without it a table that does not exist yet is
// (nil, nil), so that read-only commands create nothing.
func openRouteDB(ctx context.Context, m *plan.Migration, write bool) (routes.DB, error) {
	if pg := m.Routes.Postgres; pg != nil {
		if pg.Password.Deferred() {
			return nil, fmt.Errorf("the route database's password_ref %s is not set", pg.PasswordRef)
		}
		st, err := pgroutes.Open(ctx, pg.DSN, &pgroutes.Options{Password: pg.Password.Reveal(), Create: write})
		if !write && errors.Is(err, pgdb.ErrNoSchema) {
			return nil, nil
		}
		return st, err
	}
	path := m.Routes.SQLite
	if path == "" {
		return nil, errors.New("the plan names no route table")
	}
	if !write {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return routes.Open(ctx, path)
}

// routeTableName names the plan's route table for messages.
func routeTableName(m *plan.Migration) string {
	if pg := m.Routes.Postgres; pg != nil {
		if cfg, err := pgdb.ParseConfig(pg.DSN, nil); err == nil {
			return "postgres " + pgdb.Where(cfg.ConnConfig)
		}
		return "the PostgreSQL route table"
	}
	return m.Routes.SQLite
}
