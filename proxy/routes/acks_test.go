package routes

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestAwaitFreeze: the wait ends when every live proxy acknowledged the
// current frozen generation (an older acknowledgement does not count, a
// newer one does), proxies whose heartbeat is older than the lease are not
// waited for, unregistered ones neither, and an active route is an error.
func TestAwaitFreeze(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	if _, err := s.Set(ctx, "a@example.test", "legacy"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AwaitFreeze(ctx, "a@example.test", time.Second); !errors.Is(err, ErrNotFrozen) {
		t.Fatalf("active route: %v", err)
	}
	r, _ := s.Freeze(ctx, "a@example.test")
	// No proxy: nothing to wait for.
	if w, err := s.AwaitFreeze(ctx, "a@example.test", time.Second); err != nil || len(w.Proxies) != 0 || w.Generation != r.Generation {
		t.Fatalf("no proxies: %+v %v", w, err)
	}
	for _, id := range []string{"p1", "p2"} {
		if err := s.RegisterProxy(ctx, id, "test"); err != nil {
			t.Fatal(err)
		}
	}
	short := func() (FreezeWait, error) {
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return s.AwaitFreeze(c, "a@example.test", 5*time.Second)
	}
	s.AckFreeze(ctx, "p1", "A@example.test", r.Generation)
	s.AckFreeze(ctx, "p2", "a@example.test", r.Generation-1) // an older freeze
	if _, err := short(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("p2 has not acknowledged this freeze: %v", err)
	}
	s.AckFreeze(ctx, "p2", "a@example.test", r.Generation)
	s.AckFreeze(ctx, "p2", "a@example.test", r.Generation-1) // late, ignored
	if w, err := short(); err != nil || len(w.Proxies) != 2 {
		t.Fatalf("both acknowledged: %+v %v", w, err)
	}
	// A new freeze: p1 acknowledges, p2 is dead (no heartbeat for longer
	// than the lease), p3 stopped cleanly.
	s.Unfreeze(ctx, "a@example.test")
	r, _ = s.Freeze(ctx, "a@example.test")
	s.RegisterProxy(ctx, "p3", "test")
	advance(6 * time.Second)
	s.Heartbeat(ctx, "p1")
	s.AckFreeze(ctx, "p1", "a@example.test", r.Generation)
	if err := s.UnregisterProxy(ctx, "p3"); err != nil {
		t.Fatal(err)
	}
	if w, err := short(); err != nil || len(w.Proxies) != 1 || w.Proxies[0] != "p1" {
		t.Fatalf("dead proxy waited for: %+v %v", w, err)
	}
	ps, err := s.Proxies(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("proxies %+v %v", ps, err)
	}
}

func TestUIDLMap(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if b, m, err := s.UIDLMap(ctx, "a@example.test"); b != "" || m != nil || err != nil {
		t.Fatalf("no map: %q %v %v", b, m, err)
	}
	if err := s.SetUIDLMap(ctx, "A@example.test", "cyrus", map[string]string{"1.1": "0000000100000001", "1.2": "0000000200000001"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUIDLMap(ctx, "a@example.test", "cyrus", map[string]string{"1.1": "0000000100000001"}); err != nil {
		t.Fatal(err)
	}
	b, m, err := s.UIDLMap(ctx, "a@example.test")
	if b != "cyrus" || len(m) != 1 || m["1.1"] != "0000000100000001" || err != nil {
		t.Fatalf("map: %q %v %v", b, m, err)
	}
	v, _ := s.Version(ctx)
	if v != 0 {
		t.Errorf("writing a UIDL map moved the change counter to %d", v)
	}
}
