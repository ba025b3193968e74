package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// pgRoutesBlock is a routes block naming a fresh PostgreSQL database of
// the peers (its password from the environment, as a plan takes it).
func pgRoutesBlock(t *testing.T, s *peers.Set) string {
	t.Helper()
	u, err := url.Parse(s.Postgres.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	t.Setenv("MAILMIG_TEST_ROUTES_PGPASS", pw)
	return fmt.Sprintf("routes {\n  postgres        = %q\n  password_ref    = \"env:MAILMIG_TEST_ROUTES_PGPASS\"\n  barrier_timeout = \"15s\"\n}\n", u.String())
}

// checkPGUIDLMap asserts that the cut-over wrote the account's POP3 UIDL
// map into the plan's PostgreSQL route table, for the target.
func checkPGUIDLMap(t *testing.T, x *e2e, account string) {
	t.Helper()
	m, diags := loadMigration(&globals{PlanPath: x.planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	db, err := openRouteDB(context.Background(), m, false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pg, ok := db.(*pgroutes.Store)
	if !ok {
		t.Fatalf("the route table is %s, not PostgreSQL", db.Where())
	}
	backend, um, err := pg.UIDLMap(context.Background(), account)
	if err != nil || backend != "cyrus" || len(um) == 0 {
		t.Fatalf("UIDL map of %s in PostgreSQL: backend %q, %d pairs, %v", account, backend, len(um), err)
	}
	t.Logf("the cut-over wrote %d UIDL pairs for %s into %s", len(um), account, pg.Where())
}
