package pgroutes_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// TestBarrierWaitsForQuiet: a proxy that acknowledges freezes (a follower
// with proxy.FreezeAcker on its router) holds the cut-over's barrier while
// a delivery of the frozen account is in flight on it, and releases it
// when the delivery ends; the flip (still frozen, a new generation) is
// acknowledged again; the unfreeze removes the account's rows. A follower
// without an acker is waited for until it applied the change, a dead
// proxy that had seen the account's pending mark not at all, and an acknowledgement of a generation the route has
// left is dropped.
func TestBarrierWaitsForQuiet(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	const acct = "alice@example.test"
	if _, err := st.Set(ctx, acct, "old"); err != nil {
		t.Fatal(err)
	}
	p1, _ := follow(t, st, "p1", 2*time.Second)
	router := proxy.NewRouter(p1.Watcher(), []*proxy.Backend{{Name: "old"}, {Name: "new"}}, nil)
	defer router.Close()
	acker := proxy.NewFreezeAcker(router, p1.Watcher(), p1.FreezeAcks(), p1.ID(), "test", nil)
	stop, err := acker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	p2, _ := follow(t, st, "p2", 2*time.Second) // no acker: waited for until applied
	// A proxy whose lease ran out long ago, after it had seen the
	// account's pending mark (else it would be waited for: see
	// TestPendingOutage).
	mark, err := st.MarkPending(ctx, acct, "new")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO mailmig_proxies (id, address, started, heartbeat, lease_ms, applied, applied_at, acks_freezes)
		VALUES ('dead', 'x', now(), now() - interval '1 hour', 2000, $1, now(), true)`, mark); err != nil {
		t.Fatal(err)
	}
	ackRows := func() (n int, gen int64) {
		t.Helper()
		if err := st.Pool().QueryRow(ctx, `SELECT count(*), coalesce(max(generation), 0) FROM mailmig_freeze_acks WHERE account = $1`, acct).Scan(&n, &gen); err != nil {
			t.Fatal(err)
		}
		return n, gen
	}

	done := router.BeginDelivery(acct)
	fr, err := st.Freeze(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	// The admin API's wait (applied) is not held by the delivery.
	long := &pgroutes.Barrier{Store: st, Timeout: 20 * time.Second}
	if err := long.AwaitRoute(ctx, acct); err != nil {
		t.Fatalf("AwaitRoute: %v", err)
	}
	// The cut-over's is: p1 has applied the freeze, but not acknowledged it.
	short := &pgroutes.Barrier{Store: st, Timeout: 300 * time.Millisecond}
	err = short.AwaitQuiet(ctx, acct)
	if !errors.Is(err, pgroutes.ErrBarrier) || !strings.Contains(err.Error(), "p1 (live, a session or delivery of the account still open)") ||
		strings.Contains(err.Error(), "dead") {
		t.Fatalf("AwaitQuiet with a delivery in flight: %v", err)
	}
	if n, _ := ackRows(); n != 0 {
		t.Fatalf("%d acknowledgements while the delivery is in flight", n)
	}
	done()
	if err := long.AwaitQuiet(ctx, acct); err != nil {
		t.Fatalf("AwaitQuiet after the delivery ended: %v", err)
	}
	if n, g := ackRows(); n != 1 || g != fr.Generation {
		t.Fatalf("acknowledgements after the freeze: %d, generation %d (want 1 at %d)", n, g, fr.Generation)
	}
	if p2.Applied() < 1 {
		t.Fatalf("p2 applied %d", p2.Applied())
	}

	// The flip: still frozen, a new generation, acknowledged again.
	fl, err := st.Set(ctx, acct, "new")
	if err != nil || fl.State != routes.Frozen || fl.Generation != fr.Generation+1 {
		t.Fatalf("flip: %+v %v", fl, err)
	}
	if err := long.AwaitQuiet(ctx, acct); err != nil {
		t.Fatalf("AwaitQuiet after the flip: %v", err)
	}
	if n, g := ackRows(); n != 1 || g != fl.Generation {
		t.Fatalf("acknowledgements after the flip: %d, generation %d", n, g)
	}

	// An acknowledgement of the freeze's generation, late, is dropped.
	if err := p1.FreezeAcks().AckFreeze(ctx, "p1", acct, fr.Generation); err != nil {
		t.Fatal(err)
	}
	if _, g := ackRows(); g != fl.Generation {
		t.Fatalf("a late acknowledgement replaced the flip's: %d", g)
	}
	if err := p1.FreezeAcks().RegisterProxy(ctx, "other", ""); err == nil {
		t.Fatal("registered the follower under another id")
	}

	// The unfreeze forgets the account's acknowledgements.
	if _, err := st.Unfreeze(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if n, _ := ackRows(); n != 0 {
		t.Fatalf("%d acknowledgements left after the unfreeze", n)
	}
	if err := long.AwaitQuiet(ctx, acct); !errors.Is(err, routes.ErrNotFrozen) {
		t.Fatalf("AwaitQuiet of an active route: %v", err)
	}
	// A late acknowledgement of an active route writes nothing either.
	if err := p1.FreezeAcks().AckFreeze(ctx, "p1", acct, fl.Generation); err != nil {
		t.Fatal(err)
	}
	if n, _ := ackRows(); n != 0 {
		t.Fatalf("an acknowledgement of an active route was written")
	}
	if err := long.AwaitQuiet(ctx, "nobody@example.test"); !errors.Is(err, routes.ErrNotFound) {
		t.Fatalf("AwaitQuiet without a route: %v", err)
	}
}

// TestBarrierQuietSession: an open session of the frozen account holds the
// barrier like a delivery (the router ends it at the freeze; the
// acknowledgement follows once it has ended), and a live proxy that
// acknowledges freezes but never does makes the barrier fail naming it.
func TestBarrierQuietSession(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	const acct = "bob@example.test"
	if _, err := st.Set(ctx, acct, "old"); err != nil {
		t.Fatal(err)
	}
	p1, _ := follow(t, st, "p1", 2*time.Second)
	router := proxy.NewRouter(p1.Watcher(), []*proxy.Backend{{Name: "old"}}, nil)
	defer router.Close()
	acker := proxy.NewFreezeAcker(router, p1.Watcher(), p1.FreezeAcks(), p1.ID(), "test", nil)
	stop, err := acker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	d, err := router.Lookup(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	untrack := router.Track(d, proxy.IMAP, func(reason string) { ended <- reason })
	if _, err := st.Freeze(ctx, acct); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the session was not told to end at the freeze")
	}
	short := &pgroutes.Barrier{Store: st, Timeout: 300 * time.Millisecond}
	if err := short.AwaitQuiet(ctx, acct); !errors.Is(err, pgroutes.ErrBarrier) {
		t.Fatalf("AwaitQuiet with the session still open: %v", err)
	}
	untrack()
	long := &pgroutes.Barrier{Store: st, Timeout: 20 * time.Second}
	if err := long.AwaitQuiet(ctx, acct); err != nil {
		t.Fatalf("AwaitQuiet after the session ended: %v", err)
	}
	// A live proxy that says it acknowledges freezes and never does.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO mailmig_proxies (id, address, started, heartbeat, lease_ms, applied, applied_at, acks_freezes)
		VALUES ('stuck', 'x', now(), now() + interval '1 hour', 2000, 1000000, now(), true)`); err != nil {
		t.Fatal(err)
	}
	if err := short.AwaitQuiet(ctx, acct); !errors.Is(err, pgroutes.ErrBarrier) || !strings.Contains(err.Error(), "stuck (live, a session") || strings.Contains(err.Error(), "p1") {
		t.Fatalf("AwaitQuiet with a stuck proxy: %v", err)
	}
}
