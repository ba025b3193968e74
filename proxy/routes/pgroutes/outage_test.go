package pgroutes_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// takeAway makes the test's database refuse connections and ends its
// sessions (the shared server keeps running); the returned func brings it
// back (also at cleanup).
func takeAway(t *testing.T, dsn string) (back func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin := func(q string) {
		t.Helper()
		c, err := pgx.Connect(ctx, peers.Get(t).Postgres.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	admin(`ALTER DATABASE ` + cfg.Database + ` ALLOW_CONNECTIONS false`)
	admin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + cfg.Database + `'`)
	back = func() { admin(`ALTER DATABASE ` + cfg.Database + ` ALLOW_CONNECTIONS true`) }
	t.Cleanup(back)
	return back
}

// TestBarrierThroughOutage: the barrier waits through an outage of the
// database (AwaitRouteThrough), and a route write waits for it
// (RetryWrite). Every proxy lost the database too, so once it is back a
// proxy that was live before the outage is still waited for although its
// heartbeat is now older than its lease — for one lease, then it is dead
// as before — whether the barrier saw the outage itself or the freeze
// before it waited through it (the shared OutageMark). An outage longer
// than the wait ends the barrier.
func TestBarrierThroughOutage(t *testing.T) {
	ctx := context.Background()
	st, dsn := newStore(t)
	if _, err := st.Set(ctx, "alice@example.test", "source"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, "bob@example.test", "source"); err != nil {
		t.Fatal(err)
	}
	// Both accounts are pending before the proxies start (as an apply
	// marks them at their first import), so a proxy out of contact that
	// had seen the marks may be left out (TestPendingOutage).
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := st.MarkPending(ctx, a, "target"); err != nil {
			t.Fatal(err)
		}
	}
	alive, _ := follow(t, st, "alive", 3*time.Second)
	// "stuck" is registered, live when the database goes away, and never
	// comes back (its process died during the outage).
	if _, err := pgroutes.Follow(ctx, st, &pgroutes.FollowOptions{ID: "stuck", Lease: 4 * time.Second}); err != nil {
		t.Fatal(err)
	}
	liveStuck := func() {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, `UPDATE mailmig_proxies SET heartbeat = now() WHERE id = 'stuck'`); err != nil {
			t.Fatal(err)
		}
	}
	r, err := st.Freeze(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	seq, _ := st.RouteSeq(ctx, r.Account)
	waitFor(t, "alive to apply the freeze", func() bool { return alive.Applied() >= seq })

	// The barrier sees the outage: stuck is behind, and after the outage
	// it is waited for longer than this barrier's timeout.
	mark := &pgroutes.OutageMark{}
	o := pgroutes.OutageOptions{Wait: 30 * time.Second, Mark: mark}
	liveStuck()
	barred := make(chan error, 1)
	short := &pgroutes.Barrier{Store: st, Timeout: 2 * time.Second}
	go func() { barred <- short.AwaitRouteThrough(ctx, "alice@example.test", o) }()
	back := takeAway(t, dsn)
	time.Sleep(5 * time.Second) // longer than both leases
	back()
	if err := <-barred; !errors.Is(err, pgroutes.ErrBarrier) || !strings.Contains(err.Error(), "stuck") {
		t.Fatalf("barrier after the outage: %v, want ErrBarrier naming stuck", err)
	}

	// The freeze waits through the outage; the barrier after it knows of
	// the outage through the mark.
	liveStuck()
	back = takeAway(t, dsn)
	froze := make(chan error, 1)
	var told int
	go func() {
		oo := o
		oo.OnOutage = func(error) { told++ }
		froze <- pgroutes.RetryWrite(ctx, oo, func(ctx context.Context) error {
			_, err := st.Freeze(ctx, "bob@example.test")
			return err
		})
	}()
	time.Sleep(5 * time.Second)
	select {
	case err := <-froze:
		t.Fatalf("the freeze did not wait for the database: %v", err)
	default:
	}
	back()
	if err := <-froze; err != nil || told != 1 {
		t.Fatalf("freeze through the outage: %v (told %d times)", err, told)
	}
	seq, err = st.RouteSeq(ctx, "bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	long := &pgroutes.Barrier{Store: st, Timeout: 15 * time.Second}
	if err := long.AwaitRouteThrough(ctx, "bob@example.test", o); err != nil {
		t.Fatalf("barrier after the outage: %v", err)
	}
	if alive.Applied() < seq {
		t.Fatalf("the barrier passed before the live proxy applied change %d (it has %d)", seq, alive.Applied())
	}

	// An outage longer than the wait ends the barrier.
	takeAway(t, dsn)
	err = long.AwaitRouteThrough(ctx, "bob@example.test", pgroutes.OutageOptions{Wait: 2 * time.Second})
	if !errors.Is(err, pgdb.ErrOutageTooLong) {
		t.Fatalf("barrier through a long outage: %v", err)
	}
}
