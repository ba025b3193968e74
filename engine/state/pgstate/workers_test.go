package pgstate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/pgdb"
)

// openOther opens another Store on dsn: another worker process, with its
// own connections.
func openOther(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, &pgdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newWorkers registers n workers w1..wn, each on its own Store.
func newWorkers(t *testing.T, n int, lease time.Duration) ([]*Workers, *Store) {
	t.Helper()
	s, dsn := newStore(t)
	ws := make([]*Workers, n)
	for i := range ws {
		ws[i] = openOther(t, dsn).Workers(fmt.Sprintf("w%d", i+1), lease)
		if err := ws[i].Register(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return ws, s
}

// kill makes worker id dead as if its heartbeats had stopped a while ago:
// its heartbeat and its claims' leases are moved into the past on the
// database's clock (no test waits for a lease to run out).
func kill(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Pool().Exec(ctx, `UPDATE mailmig_workers SET heartbeat = now() - lease - interval '1 second' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE mailmig_claims SET lease_until = now() - interval '1 second' WHERE worker = $1`, id); err != nil {
		t.Fatal(err)
	}
}

func accountsOf(cs []Claim) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Account
	}
	return out
}

// TestClaimRace: workers claiming the same fresh accounts at the same
// moment, round after round: every account is claimed by exactly one of
// them. Then the same with a small max, claiming until everything is
// taken: still never an account twice.
func TestClaimRace(t *testing.T) {
	ctx := context.Background()
	ws, s := newWorkers(t, 3, time.Minute)
	const rounds, perRound = 30, 12
	for r := 0; r < rounds; r++ {
		accounts := make([]string, perRound)
		for i := range accounts {
			// Every worker asks in its own order: the inserts of fresh
			// rows must not deadlock.
			accounts[i] = fmt.Sprintf("r%02d-u%02d@example.test", r, i)
		}
		got := make([][]Claim, len(ws))
		errs := make([]error, len(ws))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, w := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine := slices.Clone(accounts)
				if i%2 == 1 {
					slices.Reverse(mine)
				}
				<-start
				got[i], _, errs[i] = w.Claim(ctx, mine, perRound)
			}()
		}
		close(start)
		wg.Wait()
		owner := map[string]string{}
		for i, cs := range got {
			if errs[i] != nil {
				t.Fatalf("round %d, %s: %v", r, ws[i].ID(), errs[i])
			}
			for _, c := range cs {
				if prev, dup := owner[c.Account]; dup {
					t.Fatalf("round %d: %s claimed by %s and %s", r, c.Account, prev, ws[i].ID())
				}
				if c.Worker != ws[i].ID() || c.Takeover || c.LeaseUntil.IsZero() {
					t.Fatalf("round %d: claim %+v", r, c)
				}
				owner[c.Account] = ws[i].ID()
			}
		}
		if len(owner) != perRound {
			t.Fatalf("round %d: %d of %d accounts claimed: %v", r, len(owner), perRound, owner)
		}
		// What the database says agrees.
		cs, err := s.Claims(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if w, ok := owner[c.Account]; ok && c.Worker != w {
				t.Fatalf("round %d: the table says %s holds %s, Claim said %s", r, c.Worker, c.Account, w)
			}
		}
	}

	// Small batches, each worker asking for what nobody has yet, until
	// everything is claimed: claims are held, so never an account twice.
	accounts := make([]string, 40)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("batch-u%02d@example.test", i)
	}
	var (
		mu    sync.Mutex
		owner = map[string]string{}
		wg    sync.WaitGroup
		fail  = make(chan error, len(ws))
	)
	rest := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, a := range accounts {
			if _, ok := owner[a]; !ok {
				out = append(out, a)
			}
		}
		return out
	}
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				todo := rest()
				if len(todo) == 0 {
					return
				}
				cs, _, err := w.Claim(ctx, todo, 3)
				if err != nil {
					fail <- err
					return
				}
				mu.Lock()
				for _, c := range cs {
					if prev, dup := owner[c.Account]; dup {
						select {
						case fail <- fmt.Errorf("%s claimed by %s and %s", c.Account, prev, w.ID()):
						default: // one error per worker is enough
						}
					}
					owner[c.Account] = w.ID()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	if len(owner) != len(accounts) {
		t.Fatalf("%d of %d accounts claimed", len(owner), len(accounts))
	}
}

// TestClaimTakeover: a worker that dies keeps its claims until their lease
// runs out; then another worker takes them over (Takeover, PrevWorker),
// and the dead worker, back, learns at its heartbeat that it lost them
// and cannot release them.
func TestClaimTakeover(t *testing.T) {
	ctx := context.Background()
	ws, s := newWorkers(t, 2, time.Minute)
	w1, w2 := ws[0], ws[1]
	all := []string{"a@example.test", "b@example.test", "c@example.test"}
	cs, _, err := w1.Claim(ctx, all[:2], 10)
	if err != nil || len(cs) != 2 {
		t.Fatalf("w1 claim %+v %v", cs, err)
	}
	claimed, held, err := w2.Claim(ctx, all, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := accountsOf(claimed); !slices.Equal(got, all[2:]) {
		t.Fatalf("w2 claimed %v while w1 lives", got)
	}
	if len(held) != 2 || held[0].Worker != "w1" || held[0].Account != all[0] || held[0].LeaseUntil.IsZero() {
		t.Fatalf("held %+v", held)
	}
	// max 0 claims nothing and only says what others hold.
	if claimed, held, err := w2.Claim(ctx, all, 0); err != nil || len(claimed) != 0 || len(held) != 2 {
		t.Fatalf("max 0: %+v %+v %v", claimed, held, err)
	}
	// w1 renews its claims: nothing lost.
	if lost, err := w1.Heartbeat(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("heartbeat %v %v", lost, err)
	}

	kill(t, s, "w1")
	wi, err := s.ListWorkers(ctx)
	if err != nil || len(wi) != 2 || wi[0].Live || !wi[1].Live || !slices.Equal(wi[0].Claims, all[:2]) || !slices.Equal(wi[1].Claims, all[2:]) {
		t.Fatalf("workers %+v %v", wi, err)
	}
	claimed, held, err = w2.Claim(ctx, all[:1], 10)
	if err != nil || len(held) != 0 || len(claimed) != 1 {
		t.Fatalf("takeover %+v %+v %v", claimed, held, err)
	}
	if c := claimed[0]; !c.Takeover || c.PrevWorker != "w1" || c.Worker != "w2" {
		t.Fatalf("takeover claim %+v", c)
	}
	// Re-claiming its own account is no takeover.
	if claimed, _, err := w2.Claim(ctx, all[2:], 10); err != nil || len(claimed) != 1 || claimed[0].Takeover {
		t.Fatalf("own claim %+v %v", claimed, err)
	}

	// w1 comes back: its heartbeat says it lost a; b, which nobody took,
	// is renewed and stays its own.
	lost, err := w1.Heartbeat(ctx)
	if err != nil || !slices.Equal(lost, all[:1]) {
		t.Fatalf("lost %v %v", lost, err)
	}
	if err := w1.Release(ctx, all[0], "ok"); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("release of a lost claim: %v", err)
	}
	if err := w1.SetArchive(ctx, all[0]); !errors.Is(err, ErrClaimLost) {
		t.Fatalf("set archive of a lost claim: %v", err)
	}
	if err := w1.Release(ctx, all[1], "ok"); err != nil {
		t.Fatal(err)
	}
	if err := w2.Release(ctx, all[0], "failed"); err != nil {
		t.Fatal(err)
	}
	var (
		outcome  string
		released bool
	)
	if err := s.Pool().QueryRow(ctx, `SELECT outcome, released_at IS NOT NULL AND worker IS NULL FROM mailmig_claims WHERE account = $1`, all[0]).Scan(&outcome, &released); err != nil || outcome != "failed" || !released {
		t.Fatalf("released row: %q %v %v", outcome, released, err)
	}
}

// TestArchiveAffinity: an account whose archive a live worker keeps is
// claimed by nobody else, even when released; once that worker is dead
// (or stopped), another takes it over and is told whose archive it was.
func TestArchiveAffinity(t *testing.T) {
	ctx := context.Background()
	ws, s := newWorkers(t, 3, time.Minute)
	w1, w2, w3 := ws[0], ws[1], ws[2]
	a, b := "a@example.test", "b@example.test"
	if cs, _, err := w1.Claim(ctx, []string{a, b}, 10); err != nil || len(cs) != 2 {
		t.Fatalf("claim %+v %v", cs, err)
	}
	for _, acct := range []string{a, b} {
		if err := w1.SetArchive(ctx, acct); err != nil {
			t.Fatal(err)
		}
		if err := w1.Release(ctx, acct, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	claimed, held, err := w2.Claim(ctx, []string{a, b}, 10)
	if err != nil || len(claimed) != 0 || len(held) != 2 {
		t.Fatalf("while w1 lives: claimed %+v held %+v %v", claimed, held, err)
	}
	if h := held[0]; h.Account != a || h.Worker != "" || h.ArchiveWorker != "w1" || !h.LeaseUntil.IsZero() {
		t.Fatalf("held %+v", h)
	}
	// Its archiver claims it again, with no takeover.
	claimed, _, err = w1.Claim(ctx, []string{a}, 10)
	if err != nil || len(claimed) != 1 || claimed[0].Takeover || claimed[0].ArchiveWorker != "w1" {
		t.Fatalf("archiver's claim %+v %v", claimed, err)
	}
	if err := w1.Release(ctx, a, "ok"); err != nil {
		t.Fatal(err)
	}

	// w1 dies: w2 takes a over.
	kill(t, s, "w1")
	claimed, held, err = w2.Claim(ctx, []string{a}, 10)
	if err != nil || len(held) != 0 || len(claimed) != 1 {
		t.Fatalf("after w1 died: claimed %+v held %+v %v", claimed, held, err)
	}
	if c := claimed[0]; !c.Takeover || c.PrevWorker != "w1" || c.ArchiveWorker != "w1" {
		t.Fatalf("takeover %+v", c)
	}
	if err := w2.SetArchive(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := w2.Release(ctx, a, "ok"); err != nil {
		t.Fatal(err)
	}
	// Now w2 keeps a's archive: w3 is held back from it.
	if claimed, held, err := w3.Claim(ctx, []string{a}, 10); err != nil || len(claimed) != 0 || len(held) != 1 || held[0].ArchiveWorker != "w2" {
		t.Fatalf("w3 %+v %+v %v", claimed, held, err)
	}
	// A clean exit lets others take over as well.
	if err := w2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	claimed, _, err = w3.Claim(ctx, []string{a}, 10)
	if err != nil || len(claimed) != 1 || !claimed[0].Takeover || claimed[0].PrevWorker != "w2" {
		t.Fatalf("after w2 stopped: %+v %v", claimed, err)
	}
}

// TestRegister: one live process per worker name; a dead or stopped
// name is taken over, and the replaced process learns it at its next
// heartbeat. Deregister releases what the worker held.
func TestRegister(t *testing.T) {
	ctx := context.Background()
	ws, s := newWorkers(t, 1, time.Minute)
	w1 := ws[0]
	again := s.Workers("w1", time.Minute)
	if err := again.Register(ctx); !errors.Is(err, ErrWorkerRunning) {
		t.Fatalf("second w1: %v", err)
	} else {
		t.Log(err)
	}
	if _, _, err := w1.Claim(ctx, []string{"a@example.test", "b@example.test"}, 10); err != nil {
		t.Fatal(err)
	}
	if err := w1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	wi, err := s.ListWorkers(ctx)
	if err != nil || len(wi) != 1 || wi[0].Live || !wi[0].Stopped || len(wi[0].Claims) != 0 || wi[0].Lease != time.Minute {
		t.Fatalf("after deregister %+v %v", wi, err)
	}
	if err := again.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Heartbeat(ctx); !errors.Is(err, ErrWorkerReplaced) {
		t.Fatalf("heartbeat of a replaced worker: %v", err)
	}
	if _, _, err := w1.Claim(ctx, []string{"a@example.test"}, 1); !errors.Is(err, ErrWorkerReplaced) {
		t.Fatalf("claim of a replaced worker: %v", err)
	}
	kill(t, s, "w1")
	third := s.Workers("w1", time.Minute)
	if err := third.Register(ctx); err != nil {
		t.Fatalf("register over a dead worker: %v", err)
	}
	wi, err = s.ListWorkers(ctx)
	if err != nil || len(wi) != 1 || !wi[0].Live || wi[0].Stopped || wi[0].HeartbeatAge > wi[0].Lease {
		t.Fatalf("after re-register %+v %v", wi, err)
	}
}

// TestLeaseRunsOut: without heartbeats a claim's lease runs out on the
// database's clock and another worker takes the account over; with
// them it never does.
func TestLeaseRunsOut(t *testing.T) {
	ctx := context.Background()
	ws, _ := newWorkers(t, 2, 300*time.Millisecond)
	w1, w2 := ws[0], ws[1]
	if cs, _, err := w1.Claim(ctx, []string{"a@example.test", "b@example.test"}, 2); err != nil || len(cs) != 2 {
		t.Fatalf("claim %+v %v", cs, err)
	}
	// w1 stops heartbeating (a process that hangs or lost the network):
	// the test waits, bounded, for w2 to get both accounts.
	got := map[string]Claim{}
	for i := 0; i < 200 && len(got) < 2; i++ {
		cs, _, err := w2.Claim(ctx, []string{"a@example.test", "b@example.test"}, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if _, again := got[c.Account]; !again {
				got[c.Account] = c
			}
		}
		if len(got) < 2 {
			time.Sleep(25 * time.Millisecond)
		}
	}
	for _, a := range []string{"a@example.test", "b@example.test"} {
		if c, ok := got[a]; !ok || !c.Takeover || c.PrevWorker != "w1" {
			t.Fatalf("w2 got %+v", got)
		}
	}
	lost, err := w1.Heartbeat(ctx)
	if err != nil || len(lost) != 2 {
		t.Fatalf("w1 lost %v %v", lost, err)
	}
}
