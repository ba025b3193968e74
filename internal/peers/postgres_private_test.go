package peers

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresPrivate: a private cluster answers with the shared one's
// role and password on a port of its own; stopped, it refuses connections
// while the shared cluster keeps serving; started again, it has kept its
// data. A second private cluster at the same time gets another port.
func TestPostgresPrivate(t *testing.T) {
	s := Get(t)
	q := s.Postgres.Private(t)
	if q.Addr == s.Postgres.Addr || q.Base == s.Postgres.Base {
		t.Fatalf("private cluster %s at %s shares the set's", q.Base, q.Addr)
	}
	if i := q.portIndex(); i < privateFirstIndex || i > privateLastIndex || q.offset() != s.Offset {
		t.Fatalf("private cluster at %s: index %d, offset %d", q.Addr, i, q.offset())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := q.NewDatabase(t)
	exec := func(dsn, sql string, args ...any) error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql, args...)
		return err
	}
	if err := exec(dsn, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the stop')`); err != nil {
		t.Fatal(err)
	}

	q.Stop(t)
	if err := exec(dsn, `SELECT 1`); err == nil {
		t.Fatal("the stopped private cluster still answers")
	}
	if err := exec(s.Postgres.DSN, `SELECT 1`); err != nil {
		t.Fatalf("the set's cluster while the private one is stopped: %v", err)
	}
	q.Start(t)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("after Start: %v", err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil || v != "before the stop" {
		t.Fatalf("data after the restart: %q, %v", v, err)
	}

	r := s.Postgres.Private(t)
	if r.Addr == q.Addr || r.Base == q.Base {
		t.Fatalf("two private clusters share %s (%s)", r.Addr, r.Base)
	}
	if err := exec(r.DSN, `SELECT 1`); err != nil {
		t.Fatalf("second private cluster: %v", err)
	}
}
