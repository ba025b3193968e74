package pgroutes_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/tcprelay"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// TestPendingMarks: a mark is a change of its own, made once (marking
// again keeps its number); a rollback to the source keeps it, the account
// active on its target clears it in the same change, and pruning removes
// the marks of accounts no longer migrated.
func TestPendingMarks(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	if _, err := st.Set(ctx, "alice@example.test", "source"); err != nil {
		t.Fatal(err)
	}
	v0, _ := st.Version(ctx)
	seq, err := st.MarkPending(ctx, "Alice@Example.test", "target")
	if err != nil || seq != v0+1 {
		t.Fatalf("MarkPending = %d, %v; want change %d", seq, err, v0+1)
	}
	for _, target := range []string{"target", "elsewhere"} {
		again, err := st.MarkPending(ctx, "alice@example.test", target)
		if v, _ := st.Version(ctx); err != nil || again != seq || v != seq {
			t.Fatalf("marking again (%s): %d, %v, version %d; want the mark's number %d and no new change", target, again, err, v, seq)
		}
	}
	if _, err := st.MarkPending(ctx, "bob@example.test", "target"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkPending(ctx, "", "target"); !errors.Is(err, routes.ErrInvalid) {
		t.Fatalf("MarkPending without an account: %v", err)
	}
	ms, err := st.PendingMarks(ctx)
	if err != nil || len(ms) != 2 || ms[0].Account != "alice@example.test" || ms[0].Target != "elsewhere" || ms[0].Seq != seq {
		t.Fatalf("PendingMarks = %+v, %v", ms, err)
	}
	// A cut-over to "elsewhere": frozen on the source, flipped, rolled
	// back (active on the source: still pending), then done.
	for _, step := range []struct {
		backend string
		frozen  bool
		marked  bool
	}{{"source", true, true}, {"elsewhere", true, true}, {"source", false, true}, {"elsewhere", true, true}, {"elsewhere", false, false}} {
		r, err := st.Update(ctx, "alice@example.test", func(r *routes.Route, _ bool) error {
			r.Backend, r.State = step.backend, routes.Active
			if step.frozen {
				r.State = routes.Frozen
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ms, _ := st.PendingMarks(ctx)
		marked := len(ms) == 2
		if marked != step.marked {
			t.Fatalf("after %+v: marks %+v", step, ms)
		}
		if !marked {
			// Cleared in the route's own change: a follower reads both.
			rs, _ := st.RouteSeq(ctx, r.Account)
			d, marks, upto, _, err := pgroutes.ChangesWithMarks(st, ctx, rs-1)
			if err != nil || upto != rs || d.Routes["alice@example.test"] == nil || marks["alice@example.test"] != 0 {
				t.Fatalf("change %d: %+v %v %d %v", rs, d, marks, upto, err)
			}
			if _, ok := marks["alice@example.test"]; !ok {
				t.Fatalf("change %d does not carry the cleared mark: %v", rs, marks)
			}
		}
	}
	// Already active on the target, marked again (a plan that changed its
	// mind), then set there by hand: cleared without a route change.
	if _, err := st.MarkPending(ctx, "alice@example.test", "elsewhere"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, "alice@example.test", "elsewhere"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := st.PendingMarks(ctx); len(ms) != 1 || ms[0].Account != "bob@example.test" {
		t.Fatalf("marks after setting the route to the target: %+v", ms)
	}
	v1, _ := st.Version(ctx)
	if gone, err := st.PrunePending(ctx, []string{"BOB@example.test"}); err != nil || len(gone) != 0 {
		t.Fatalf("prune keeping bob: %v %v", gone, err)
	}
	if v, _ := st.Version(ctx); v != v1 {
		t.Fatalf("a prune that removes nothing used change %d", v)
	}
	if gone, err := st.PrunePending(ctx, nil); err != nil || len(gone) != 1 || gone[0] != "bob@example.test" {
		t.Fatalf("prune: %v %v", gone, err)
	}
}

// TestStrict: a proxy out of contact refuses frozen accounts, accounts in
// transition and pending accounts (one without a route of its own through
// the default backend too), and serves everything else.
func TestStrict(t *testing.T) {
	now := time.Now()
	old, recent := now.Add(-time.Hour), now.Add(-time.Second)
	tb := routes.NewTable(7, "legacy", []routes.Route{
		{Account: "quiet@example.test", Backend: "legacy", State: routes.Active, Generation: 1, Updated: old},
		{Account: "frozen@example.test", Backend: "legacy", State: routes.Frozen, Generation: 2, Updated: old},
		{Account: "moved@example.test", Backend: "new", State: routes.Active, Generation: 3, Updated: recent},
		{Account: "pending@example.test", Backend: "legacy", State: routes.Active, Generation: 1, Updated: old},
	}, map[string]string{"p@example.test": "pending@example.test"}, nil)
	strict, n := pgroutes.Strict(tb, now.Add(-time.Minute), []string{"pending@example.test", "unrouted@example.test", "frozen@example.test"})
	if n != 4 || strict.Version != 7 {
		t.Errorf("Strict counted %d accounts at version %d, want 4 at 7", n, strict.Version)
	}
	for acct, want := range map[string]routes.State{
		"quiet@example.test": routes.Active, "frozen@example.test": routes.Frozen, "moved@example.test": routes.Frozen,
		"pending@example.test": routes.Frozen, "p@example.test": routes.Frozen, "unrouted@example.test": routes.Frozen,
		"other@example.test": routes.Active,
	} {
		r, ok := strict.Resolve(acct)
		if !ok || r.State != want {
			t.Errorf("%s: %+v %v, want %s", acct, r, ok, want)
		}
	}
	if r, _ := strict.Resolve("unrouted@example.test"); r.Backend != "legacy" {
		t.Errorf("a pending account without a route: %+v, want frozen on the default backend", r)
	}
	// Without a default backend an unknown account is refused anyway.
	tb.Default = ""
	if _, n := pgroutes.Strict(tb, now.Add(-time.Minute), []string{"unrouted@example.test"}); n != 2 {
		t.Errorf("Strict without a default counted %d, want 2 (frozen, moved)", n)
	}
}

// relayed opens a second store on dsn whose connections go through a
// relay the test can pause: a follower on it loses the database alone.
func relayed(t *testing.T, dsn string) (*pgroutes.Store, *tcprelay.Relay) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tcprelay.Start(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	u.Host = r.Addr()
	st, err := pgroutes.Open(context.Background(), u.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, r
}

// TestPendingOutage: a proxy cut off from the database (through a paused
// relay, so only this proxy) refuses after its lease the account whose
// mark it had seen, and a barrier on that account leaves it out; an
// account marked after the cut is still served from its source by that
// proxy (it cannot know), so the barrier of its freeze waits and times out
// naming the proxy and how to forget it. Forgotten, the barrier passes;
// back in contact, the proxy catches up and registers again.
func TestPendingOutage(t *testing.T) {
	ctx := context.Background()
	st, dsn := newStore(t)
	for _, a := range []string{"alice@example.test", "bob@example.test", "carol@example.test"} {
		if _, err := st.Set(ctx, a, "source"); err != nil {
			t.Fatal(err)
		}
	}
	// None of them is in transition when contact is lost.
	if _, err := st.Pool().Exec(ctx, `UPDATE mailmig_routes SET updated = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	aliceMark, err := st.MarkPending(ctx, "alice@example.test", "target")
	if err != nil {
		t.Fatal(err)
	}
	rst, relay := relayed(t, dsn)
	const lease = time.Second
	cut, _ := follow(t, rst, "cut", lease)
	alive, stopAlive := follow(t, st, "alive", 5*time.Second)
	waitFor(t, "both proxies to apply alice's mark", func() bool {
		return cut.Applied() >= aliceMark && alive.Applied() >= aliceMark && cut.Pending() == 1
	})
	relay.Pause()
	waitFor(t, "the cut-off proxy to turn strict", cut.Degraded)
	tb := cut.Watcher().Table()
	for acct, want := range map[string]routes.State{"alice@example.test": routes.Frozen, "bob@example.test": routes.Active, "carol@example.test": routes.Active} {
		if r, ok := tb.Resolve(acct); !ok || r.State != want {
			t.Errorf("cut-off proxy, %s: %+v, want %s", acct, r, want)
		}
	}

	// alice: the proxy saw her mark, so the barrier of her freeze leaves
	// it out once its lease has run out.
	if _, err := st.Freeze(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	b := &pgroutes.Barrier{Store: st, Timeout: 15 * time.Second}
	if err := b.AwaitRoute(ctx, "alice@example.test"); err != nil {
		t.Fatalf("barrier of a freeze the cut-off proxy saw coming: %v", err)
	}
	// carol: marked after the cut. The proxy serves her from its old
	// table, so her freeze waits for it.
	if _, err := st.MarkPending(ctx, "carol@example.test", "target"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Freeze(ctx, "carol@example.test"); err != nil {
		t.Fatal(err)
	}
	if r, _ := cut.Watcher().Table().Resolve("carol@example.test"); r.State != routes.Active {
		t.Fatalf("the cut-off proxy learnt of carol: %+v", r)
	}
	short := &pgroutes.Barrier{Store: st, Timeout: 2 * time.Second}
	err = short.AwaitRoute(ctx, "carol@example.test")
	if !errors.Is(err, pgroutes.ErrBarrier) || !strings.Contains(err.Error(), "cut (out of contact") ||
		!strings.Contains(err.Error(), "routes proxies -forget cut") || strings.Contains(err.Error(), "alive") {
		t.Fatalf("barrier of carol's freeze: %v; want it to wait for the cut-off proxy and say how to forget it", err)
	}
	// bob has no mark at all: an edit of his waits for the proxy too.
	if _, err := st.Freeze(ctx, "bob@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := short.AwaitRoute(ctx, "bob@example.test"); !errors.Is(err, pgroutes.ErrBarrier) {
		t.Fatalf("barrier of an unmarked account with a proxy out of contact: %v", err)
	}

	// A live proxy cannot be forgotten; an unknown one is an error.
	if _, err := st.ForgetProxy(ctx, "alive"); !errors.Is(err, pgroutes.ErrLiveProxy) {
		t.Fatalf("ForgetProxy(alive) = %v, want ErrLiveProxy", err)
	}
	if _, err := st.ForgetProxy(ctx, "nobody"); err == nil || !strings.Contains(err.Error(), "no proxy") {
		t.Fatalf("ForgetProxy(nobody) = %v", err)
	}
	p, err := st.ForgetProxy(ctx, "cut")
	if err != nil || p.ID != "cut" || p.Live {
		t.Fatalf("ForgetProxy(cut) = %+v, %v", p, err)
	}
	if err := short.AwaitRoute(ctx, "carol@example.test"); err != nil {
		t.Fatalf("barrier after forgetting the proxy: %v", err)
	}

	// Back in contact: it catches up (carol frozen now, her mark known)
	// and registers again.
	relay.Resume()
	v, _ := st.Version(ctx)
	waitFor(t, "the proxy to catch up", func() bool { return !cut.Degraded() && cut.Applied() >= v })
	if r, _ := cut.Watcher().Table().Resolve("carol@example.test"); r.State != routes.Frozen || cut.Pending() != 2 {
		t.Fatalf("after catching up: carol %+v, %d pending", r, cut.Pending())
	}
	if r, _ := cut.Watcher().Table().Resolve("bob@example.test"); r.State != routes.Frozen {
		t.Fatalf("after catching up: bob %+v", r)
	}
	waitFor(t, "the proxy to register again", func() bool {
		ps, _, err := st.Proxies(ctx)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.ID == "cut" && p.Live {
				return true
			}
		}
		return false
	})
	// Cut over: active on the target, the mark goes, on the follower too.
	if _, err := st.Set(ctx, "alice@example.test", "target"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Unfreeze(ctx, "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower to drop alice's mark", func() bool { return cut.Pending() == 1 })
	// A proxy that stops cleanly leaves the registry: no barrier waits
	// for it, and there is nothing to forget.
	stopAlive()
	waitFor(t, "the stopped proxy to deregister", func() bool {
		ps, _, err := st.Proxies(ctx)
		return err == nil && len(ps) == 1 && ps[0].ID == "cut"
	})
}
