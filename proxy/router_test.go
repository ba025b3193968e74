package proxy

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy/routes"
)

func newTestRouter(t *testing.T, hold time.Duration) (*TableRouter, *routes.Store, *routes.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := routes.Open(ctx, filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := routes.NewWatcher(ctx, st, &routes.WatchOptions{Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx)
	r := NewRouter(w, []*Backend{{Name: "a"}, {Name: "b"}}, &RouterOptions{FrozenHold: hold})
	t.Cleanup(r.Close)
	return r, st, w
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRouterLookup(t *testing.T) {
	ctx := context.Background()
	r, st, w := newTestRouter(t, time.Second)
	st.Set(ctx, "alice@example.test", "a")
	st.Set(ctx, "gone@example.test", "nowhere")
	st.AddAlias(ctx, "alice", "alice@example.test")
	w.Refresh(ctx)
	tests := map[string]struct {
		id      string
		backend string
		err     error
	}{
		"account":        {"alice@example.test", "a", nil},
		"alias":          {"ALICE", "a", nil},
		"master login":   {"alice@example.test*admin", "a", nil},
		"unknown":        {"bob@example.test", "", ErrUnknown},
		"unknown master": {"bob@example.test*admin", "", ErrUnknown},
		"bad backend":    {"gone@example.test", "", ErrBackend},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, err := r.Lookup(ctx, tc.id)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && d.Backend.Name != tc.backend {
				t.Errorf("backend = %s, want %s", d.Backend.Name, tc.backend)
			}
		})
	}
	st.SetDefault(ctx, "b")
	w.Refresh(ctx)
	if d, err := r.Lookup(ctx, "bob@example.test"); err != nil || d.Backend.Name != "b" || !d.Route.Implicit {
		t.Errorf("default: %+v %v", d, err)
	}
	if !r.KnownDomain("x@example.test") || r.KnownDomain("evil.test") {
		t.Error("KnownDomain")
	}
}

func TestRouterAwaitAndTrack(t *testing.T) {
	ctx := context.Background()
	r, st, w := newTestRouter(t, 300*time.Millisecond)
	st.Set(ctx, "alice@example.test", "a")
	w.Refresh(ctx)

	d, err := r.Lookup(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	var ended atomic.Value
	untrack := r.Track(d, IMAP, func(reason string) { ended.Store(reason) })
	defer untrack()
	if got := r.Sessions()[IMAP]; got != 1 {
		t.Errorf("sessions = %d", got)
	}
	st.Freeze(ctx, "alice@example.test")
	waitFor(t, func() bool { return ended.Load() != nil })
	if ended.Load() != "account frozen for migration" {
		t.Errorf("reason = %v", ended.Load())
	}

	// Still frozen after the hold: ErrFrozen, not before the hold.
	start := time.Now()
	if _, err := r.Await(ctx, "alice@example.test"); !errors.Is(err, ErrFrozen) {
		t.Fatalf("Await = %v, want ErrFrozen", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("Await returned before the hold time")
	}
	// Unfrozen during the hold: the new route.
	done := make(chan Decision, 1)
	go func() {
		d, _ := r.Await(ctx, "alice@example.test")
		done <- d
	}()
	st.Update(ctx, "alice@example.test", func(rt *routes.Route, _ bool) error {
		rt.Backend, rt.State = "b", routes.Active
		return nil
	})
	select {
	case d := <-done:
		if d.Backend == nil || d.Backend.Name != "b" {
			t.Errorf("released to %+v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Await not released")
	}

	// Writing a route that names the backend the session already uses
	// (default → explicit) does not end it.
	st.SetDefault(ctx, "a")
	w.Refresh(ctx)
	dd, err := r.Lookup(ctx, "carol@example.test")
	if err != nil || !dd.Route.Implicit {
		t.Fatalf("default route: %+v %v", dd, err)
	}
	var ended3 atomic.Value
	defer r.Track(dd, IMAP, func(reason string) { ended3.Store(reason) })()
	st.Set(ctx, "carol@example.test", "a")
	w.Refresh(ctx)
	st.Set(ctx, "carol@example.test", "b")
	waitFor(t, func() bool { return ended3.Load() != nil })

	// A session tracked with a stale decision ends at once.
	var ended2 atomic.Value
	defer r.Track(d, POP3, func(reason string) { ended2.Store(reason) })()
	waitFor(t, func() bool { return ended2.Load() != nil })
}

// TestRouterAliasAndDefault: re-pointing an alias ends the sessions opened
// under that alias (and only those); a new default backend ends the
// sessions it moves.
func TestRouterAliasAndDefault(t *testing.T) {
	ctx := context.Background()
	r, st, w := newTestRouter(t, time.Second)
	st.Set(ctx, "alice@example.test", "a")
	st.Set(ctx, "other@example.test", "b")
	st.AddAlias(ctx, "alice", "alice@example.test")
	st.AddAlias(ctx, "al", "alice@example.test")
	st.SetDefault(ctx, "a")
	w.Refresh(ctx)
	track := func(id string) *atomic.Value {
		t.Helper()
		d, err := r.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var v atomic.Value
		t.Cleanup(r.Track(d, IMAP, func(reason string) { v.Store(reason) }))
		return &v
	}
	byAlias, byMaster, byOtherAlias, byAddress := track("alice"), track("alice*admin"), track("al"), track("alice@example.test")
	implicitA, implicitB := track("carol@example.test"), track("dave@example.test")
	if err := st.AddAlias(ctx, "alice", "other@example.test"); err != nil { // re-point
		t.Fatal(err)
	}
	waitFor(t, func() bool { return byAlias.Load() != nil && byMaster.Load() != nil })
	if byAlias.Load() != "account moved" {
		t.Errorf("reason = %v", byAlias.Load())
	}
	// Removing an alias whose identifier then falls to the default
	// backend under another account key ends its sessions too.
	st.RemoveAlias(ctx, "al")
	waitFor(t, func() bool { return byOtherAlias.Load() != nil })
	// A new default backend: sessions on the old default end; explicit
	// routes and sessions already on the new default stay.
	st.Set(ctx, "dave@example.test", "b")
	waitFor(t, func() bool { return implicitB.Load() != nil })
	st.SetDefault(ctx, "b")
	waitFor(t, func() bool { return implicitA.Load() != nil })
	w.Refresh(ctx)
	if v := byAddress.Load(); v != nil {
		t.Errorf("session by the account's own address ended: %v", v)
	}
}
