package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
	"github.com/mailmig/mailmig/internal/pgdb"
)

// TestStateLockWorkers: "state lock" lists every apply worker sharing the
// lock; a command that needs it alone is refused naming them;
// force-unlock removes one worker by its lock id.
func TestStateLockWorkers(t *testing.T) {
	p := newPGStatePlan(t)
	ctx := context.Background()
	var locks []state.Unlocker
	for _, w := range []string{"w1", "w2"} {
		st, err := pgstate.Open(ctx, p.dsn, &pgdb.Options{Create: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		l, _, err := state.Remote{Store: st}.LockShared(ctx, "ops@example.test", w)
		if err != nil {
			t.Fatal(err)
		}
		locks = append(locks, l)
	}
	out := p.ok(p.remote, "state", "lock")
	for _, want := range []string{"Locked by 2 holders", "apply worker w1: ops@example.test since", "apply worker w2: ops@example.test since", "), live"} {
		if !strings.Contains(out, want) {
			t.Fatalf("state lock, want %q:\n%s", want, out)
		}
	}
	var js struct {
		Locked  bool             `json:"locked"`
		Holders []state.LockInfo `json:"holders"`
	}
	if err := json.Unmarshal([]byte(p.ok(p.remote, "state", "lock", "-json")), &js); err != nil {
		t.Fatal(err)
	}
	if !js.Locked || len(js.Holders) != 2 || js.Holders[0].Worker != "w1" || !js.Holders[1].Shared {
		t.Fatalf("state lock -json %+v", js)
	}
	code, out := p.run(p.remote, "routes", "set", "alice@example.test", "legacy")
	if code == exitOK || !strings.Contains(strings.ToLower(oneLine(out)), "apply workers w1, w2 hold the state") {
		t.Fatalf("routes set while workers run: exit %d\n%s", code, out)
	}
	out = p.ok(p.remote, "state", "force-unlock", js.Holders[0].ID)
	if !strings.Contains(out, "Removed the lock "+js.Holders[0].ID) {
		t.Fatalf("force-unlock:\n%s", out)
	}
	code, out = p.run(p.remote, "routes", "set", "alice@example.test", "legacy")
	if code == exitOK || !strings.Contains(strings.ToLower(oneLine(out)), "apply worker w2 holds the state") {
		t.Fatalf("routes set while w2 runs: exit %d\n%s", code, out)
	}
	_ = locks[0].Unlock() // its session was ended by force-unlock
	if err := locks[1].Unlock(); err != nil {
		t.Fatal(err)
	}
	if out := p.ok(p.remote, "state", "lock"); !strings.Contains(out, "not locked") {
		t.Fatalf("state lock at the end:\n%s", out)
	}
	p.ok(p.remote, "routes", "set", "alice@example.test", "legacy")
}
