package pgroutes_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// TestUIDLMapPG writes and reads POP3 UIDL maps in PostgreSQL as the
// SQLite table does (TestUIDLMap in proxy/routes): a map larger than one
// batch, replaced whole, written twice with the same result, without
// moving the change counter; and read back the same through the SQLite
// store's interface for the lists state migrate copies.
func TestUIDLMapPG(t *testing.T) {
	ctx := context.Background()
	pg, _ := newStore(t)
	lite, err := routes.Open(ctx, t.TempDir()+"/routes.db")
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	big := map[string]string{}
	for i := range pgroutes.UIDLBatch*2 + 17 {
		big[fmt.Sprintf("1700000000.%d", i+1)] = fmt.Sprintf("%08x%08x", i+1, 0x6b1628b2)
	}
	for _, db := range []interface {
		routes.DB
		SetUIDLMap(ctx context.Context, account, backend string, m map[string]string) error
		UIDLMap(ctx context.Context, account string) (string, map[string]string, error)
		UIDLMapAccounts(ctx context.Context) ([]string, error)
	}{pg, lite} {
		if b, m, err := db.UIDLMap(ctx, "a@example.test"); b != "" || m != nil || err != nil {
			t.Fatalf("%s: no map: %q %v %v", db.Where(), b, m, err)
		}
		if err := db.SetUIDLMap(ctx, "A@Example.test", "cyrus", map[string]string{"1.1": "x", "1.2": "y"}); err != nil {
			t.Fatal(err)
		}
		// Replaced whole, twice (a retried cut-over): the same rows.
		for range 2 {
			if err := db.SetUIDLMap(ctx, "a@example.test", "cyrus", big); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.SetUIDLMap(ctx, "b@example.test", "legacy", map[string]string{"9": "z"}); err != nil {
			t.Fatal(err)
		}
		b, m, err := db.UIDLMap(ctx, "a@Example.TEST")
		if err != nil || b != "cyrus" || !maps.Equal(m, big) {
			t.Fatalf("%s: map of a: %q, %d pairs (want %d), %v", db.Where(), b, len(m), len(big), err)
		}
		if b, m, err := db.UIDLMap(ctx, "b@example.test"); err != nil || b != "legacy" || len(m) != 1 || m["9"] != "z" {
			t.Fatalf("%s: map of b: %q %v %v", db.Where(), b, m, err)
		}
		if as, err := db.UIDLMapAccounts(ctx); err != nil || fmt.Sprint(as) != "[a@example.test b@example.test]" {
			t.Fatalf("%s: accounts with a map: %v %v", db.Where(), as, err)
		}
		if v, err := db.Version(ctx); err != nil || v != 0 {
			t.Errorf("%s: writing UIDL maps moved the change counter to %d (%v)", db.Where(), v, err)
		}
	}
}

// TestUIDLMapsKeptForOutage: the proxy's reader answers from the last map
// it read while the database cannot be reached, only for accounts it has
// read, and no more pairs than its bound.
func TestUIDLMapsKeptForOutage(t *testing.T) {
	ctx := context.Background()
	_, dsn := newStore(t)
	st, err := pgroutes.Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		if err := st.SetUIDLMap(ctx, a, "cyrus", map[string]string{"1.1": a, "1.2": a}); err != nil {
			t.Fatal(err)
		}
	}
	u := &pgroutes.UIDLMaps{Store: st, MaxPairs: 4}
	for _, a := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		if b, m, err := u.UIDLMap(ctx, a); err != nil || b != "cyrus" || m["1.1"] != a {
			t.Fatalf("%s: %q %v %v", a, b, m, err)
		}
	}
	st.Close() // the database is gone for this reader
	// c was read last; 4 pairs leave room for one of a and b.
	answered := 0
	for _, a := range []string{"a@example.test", "b@example.test", "c@example.test"} {
		b, m, err := u.UIDLMap(ctx, a)
		if err == nil && (b != "cyrus" || m["1.2"] != a) {
			t.Fatalf("%s during the outage: %q %v", a, b, m)
		}
		if err == nil {
			answered++
		} else if a == "c@example.test" {
			t.Fatalf("the account read last is not kept: %v", err)
		}
	}
	if answered != 2 {
		t.Fatalf("%d accounts answered during the outage, want 2 (4 pairs kept)", answered)
	}
	if _, _, err := u.UIDLMap(ctx, "d@example.test"); err == nil {
		t.Fatal("an account never read was answered during the outage")
	}
}
