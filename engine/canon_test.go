package engine_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/plan/canon"
	"github.com/mailmig/mailmig/proxy/routes"
)

// TestCallSitesAgree: the plan (account lookup), the engine (journal
// keys) and the proxy's route table (stored keys) normalise an address
// the same way, through canon.Address. Each pair of spellings is written
// by one and read by the others.
func TestCallSitesAgree(t *testing.T) {
	ctx := context.Background()
	st, err := routes.Open(ctx, filepath.Join(t.TempDir(), "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct{ written, read string }{
		{"Alice@Example.TEST", " alice@example.test\t"},
		{"bob+Tag@example.test", "BOB+tag@EXAMPLE.test"},
		{" jörg@Bücher.example ", "JÖRG@bücher.example"},
	} {
		want := canon.Address(tc.written)
		if canon.Address(tc.read) != want {
			t.Fatalf("bad case: %q and %q differ", tc.written, tc.read)
		}
		if got := engine.Key(tc.read); got != want {
			t.Errorf("engine.Key(%q) = %q, want %q", tc.read, got, want)
		}
		if got := routes.Normalize(tc.read); got != want {
			t.Errorf("routes.Normalize(%q) = %q, want %q", tc.read, got, want)
		}
		m := &plan.Migration{Accounts: []*plan.Account{{Address: tc.written}}}
		if a := m.Account(tc.read); a == nil {
			t.Errorf("plan: account %q not found as %q", tc.written, tc.read)
		}
		if _, err := st.Set(ctx, tc.written, "target"); err != nil {
			t.Fatal(err)
		}
		r, err := st.Get(ctx, engine.Key(tc.read))
		if err != nil {
			t.Errorf("route of %q not found by engine key %q: %v", tc.written, engine.Key(tc.read), err)
		} else if r.Account != want {
			t.Errorf("route stored as %q, want %q", r.Account, want)
		}
	}
	// A different address is a different key everywhere.
	m := &plan.Migration{Accounts: []*plan.Account{{Address: "alice@example.test"}}}
	if m.Account("alice2@example.test") != nil || engine.Key("alice2@example.test") == engine.Key("alice@example.test") {
		t.Error("different addresses share a key")
	}
}
