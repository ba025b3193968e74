package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// TestStateMigrateBatches copies a route table of more than two batches
// (routeCopyBatch), with frozen routes, aliases and a POP3 UIDL map, into
// PostgreSQL and back into an empty directory: the same routes, states,
// aliases and map on each side.
func TestStateMigrateBatches(t *testing.T) {
	ctx := context.Background()
	p := newPGStatePlan(t)
	p.ok(p.local, "routes", "set", "seed@example.test", "legacy")
	lite, err := routes.Open(ctx, filepath.Join(p.dir, "state", "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	n := 2*routeCopyBatch + 7
	rs := make([]routes.Route, n)
	aliases := map[string]string{}
	for i := range rs {
		rs[i] = routes.Route{Account: fmt.Sprintf("user%05d@example.test", i), Backend: "legacy", State: routes.Active}
		if i%3 == 0 {
			rs[i].Backend = "legacy2"
		}
		if i%1000 == 0 {
			rs[i].State = routes.Frozen
			aliases[fmt.Sprintf("alias%05d@example.test", i)] = rs[i].Account
		}
	}
	if err := lite.LoadRoutes(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := lite.LoadAliases(ctx, aliases); err != nil {
		t.Fatal(err)
	}
	uidls := map[string]string{"1700000000.1": "000000016b1628b2", "1700000000.2": "000000026b1628b2"}
	if err := lite.SetUIDLMap(ctx, "user00003@example.test", "legacy2", uidls); err != nil {
		t.Fatal(err)
	}
	lite.Close()
	listBefore := p.routes(p.local)

	out := p.ok(p.remote, "state", "migrate", "-to", "postgres")
	if !strings.Contains(out, fmt.Sprintf("%d routes, 1 POP3 UIDL maps", n+1)) {
		t.Fatalf("migrate output:\n%s", out)
	}
	if got := p.routes(p.remote); got != listBefore {
		t.Fatalf("routes in PostgreSQL differ (%d and %d bytes)", len(got), len(listBefore))
	}
	pg, err := pgroutes.Open(ctx, p.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if b, m, err := pg.UIDLMap(ctx, "user00003@example.test"); err != nil || b != "legacy2" || !maps.Equal(m, uidls) {
		t.Fatalf("UIDL map in PostgreSQL: %q %v %v", b, m, err)
	}
	// One change number per batch, not per route.
	if v, err := pg.Version(ctx); err != nil || v > 10 {
		t.Fatalf("the copy took %d change numbers (%v)", v, err)
	}

	if err := os.Rename(filepath.Join(p.dir, "state"), filepath.Join(p.dir, "state.old")); err != nil {
		t.Fatal(err)
	}
	p.ok(p.remote, "state", "migrate", "-to", "local")
	if got := p.routes(p.local); got != listBefore {
		t.Fatalf("routes copied back differ (%d and %d bytes)", len(got), len(listBefore))
	}
	lite, err = routes.Open(ctx, filepath.Join(p.dir, "state", "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if b, m, err := lite.UIDLMap(ctx, "user00003@example.test"); err != nil || b != "legacy2" || !maps.Equal(m, uidls) {
		t.Fatalf("UIDL map copied back: %q %v %v", b, m, err)
	}
}
