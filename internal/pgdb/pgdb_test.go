package pgdb

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestMigrations: numbered from 1 in increasing order, each with SQL.
// Gaps are allowed (branches reserve numbers ahead of their merge); the
// migrator applies every number above the database's version in order.
func TestMigrations(t *testing.T) {
	ms := Migrations()
	for i, m := range ms {
		if m.Version < 1 || (i > 0 && m.Version <= ms[i-1].Version) || m.Name == "" || strings.TrimSpace(m.SQL) == "" {
			t.Errorf("migration %d: %+v", i, m)
		}
	}
	if Latest() != ms[len(ms)-1].Version {
		t.Errorf("Latest() = %d, last migration %d", Latest(), ms[len(ms)-1].Version)
	}
}

// TestExplain: server errors become advice that names what to check.
func TestExplain(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want string
	}{
		"password":    {&pgconn.PgError{Code: "28P01", Message: "password authentication failed"}, "check the user"},
		"no database": {&pgconn.PgError{Code: "3D000"}, "no such database"},
		"other":       {errors.New("boom"), "connect to PostgreSQL db"},
	} {
		t.Run(name, func(t *testing.T) {
			got := Explain("db", tc.err)
			if !strings.Contains(got.Error(), tc.want) || !errors.Is(got, tc.err) {
				t.Errorf("Explain = %v, want %q wrapping the cause", got, tc.want)
			}
		})
	}
}

// TestParseConfigHidesDSN: a DSN that does not parse is not repeated (it
// may carry a password).
func TestParseConfigHidesDSN(t *testing.T) {
	_, err := ParseConfig("postgres://u:hunter2@[::1", nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("ParseConfig: %v", err)
	}
	cfg, err := ParseConfig("postgres://u:old@h:5433/db", &Options{Password: "new"})
	if err != nil || cfg.ConnConfig.Password != "new" || Where(cfg.ConnConfig) != "u@h:5433/db" {
		t.Fatalf("ParseConfig: %+v %v", cfg, err)
	}
}
