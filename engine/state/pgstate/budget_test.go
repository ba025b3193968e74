package pgstate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/vandelay"
)

// openBudget opens a Budget on a pool of its own, as another process
// would.
func openBudget(t *testing.T, dsn string, limits map[string]BudgetLimits, lease time.Duration) (*Budget, *Store) {
	t.Helper()
	s, err := Open(context.Background(), dsn, &pgdb.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	b := s.Budget(limits, lease, nil)
	b.Poll = 20 * time.Millisecond
	t.Cleanup(func() { b.Close(); s.Close() })
	return b, s
}

// TestBudgetSlots: two Budgets (two processes) on a backend with two
// connections never hold more than two slots together, both get slots,
// and a holder that dies (stops renewing, its sessions ended) gives its
// slots back once its lease ran out.
func TestBudgetSlots(t *testing.T) {
	_, dsn := newStore(t)
	limits := map[string]BudgetLimits{"src": {Connections: 2}, "dst": {Connections: 5}}
	b1, _ := openBudget(t, dsn, limits, 3*time.Second)
	b2, _ := openBudget(t, dsn, limits, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var inUse, most atomic.Int64
	var per [2]atomic.Int64
	var wg sync.WaitGroup
	for i, b := range []*Budget{b1, b2} {
		for range 3 { // more takers than slots in each process
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 15 {
					release, err := b.Acquire(ctx, []string{"dst", "src"})
					if err != nil {
						t.Error(err)
						return
					}
					n := inUse.Add(1)
					for {
						m := most.Load()
						if n <= m || most.CompareAndSwap(m, n) {
							break
						}
					}
					per[i].Add(1)
					time.Sleep(2 * time.Millisecond)
					inUse.Add(-1)
					release()
				}
			}()
		}
	}
	wg.Wait()
	if most.Load() > 2 {
		t.Errorf("%d slots of src held at once, limit 2", most.Load())
	}
	if per[0].Load() != 45 || per[1].Load() != 45 {
		t.Errorf("acquired %d and %d times, want 45 each", per[0].Load(), per[1].Load())
	}

	// b1 takes both slots and dies: it stops renewing and its
	// connections go (as a SIGKILLed process's would).
	r1, err := b1.Acquire(ctx, []string{"src"})
	if err != nil {
		t.Fatal(err)
	}
	_ = r1
	if _, err := b1.Acquire(ctx, []string{"src"}); err != nil {
		t.Fatal(err)
	}
	b1.abandon()
	b1.pool.Close()
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := b2.Acquire(short, []string{"src"}); err == nil {
		t.Fatal("took a third slot of src while a live holder's lease runs")
	}
	cancelShort()
	// After the lease (3 s) the slots come back.
	release, err := b2.Acquire(ctx, []string{"src"})
	if err != nil {
		t.Fatalf("the dead holder's slot did not come back: %v", err)
	}
	release2, err := b2.Acquire(ctx, []string{"src"})
	if err != nil {
		t.Fatalf("the dead holder's second slot did not come back: %v", err)
	}
	release()
	release2()
	var held int
	if err := b2.pool.QueryRow(ctx, `SELECT count(*) FROM mailmig_budget_slots WHERE holder IS NOT NULL`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("%d slots still held after every release", held)
	}
}

// TestBudgetRate: two processes sharing a backend of 50 messages per
// second, each with takers spending through its throttle as fast as it
// can, together stay within the budget over a few seconds; each gets a
// share.
func TestBudgetRate(t *testing.T) {
	_, dsn := newStore(t)
	const rate = 50
	limits := map[string]BudgetLimits{"src": {MessagesPerSecond: rate, BytesPerSecond: 1 << 20}}
	var counts [2]atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 2 {
		b, _ := openBudget(t, dsn, limits, 0)
		ls := map[string]*engine.Limiter{"src": engine.NewLimiter("src", 2, rate, 1<<20)}
		engine.ShareLimiters(ls, b)
		th := ls["src"].Throttle()
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if th.WaitMessage(ctx) == nil {
						counts[i].Add(1)
					}
				}
			}()
		}
	}
	time.Sleep(3 * time.Second)
	cancel()
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	total := counts[0].Load() + counts[1].Load()
	// At most the rate over the time, plus the bucket's start (half a
	// second's worth) and one chunk in flight per process; generous.
	upper := int64(rate*elapsed) + rate/2 + 2*rate/10 + 5
	t.Logf("%d + %d messages in %.1f s (budget %d/s, bound %d)", counts[0].Load(), counts[1].Load(), elapsed, rate, upper)
	if total > upper {
		t.Errorf("%d messages in %.1f s, more than the shared budget allows (%d)", total, elapsed, upper)
	}
	if counts[0].Load() < 10 || counts[1].Load() < 10 {
		t.Errorf("a process was starved: %d and %d", counts[0].Load(), counts[1].Load())
	}
	// A single process alone would have taken about as much: the two
	// together did not get twice the rate.
	if total < rate { // sanity: the budget was not stuck
		t.Errorf("only %d messages in %.1f s", total, elapsed)
	}
}

// TestBudgetBytes: a wait for more bytes than the bucket holds is served
// in several takes and returns.
func TestBudgetBytes(t *testing.T) {
	_, dsn := newStore(t)
	limits := map[string]BudgetLimits{"src": {BytesPerSecond: 100_000}}
	b, _ := openBudget(t, dsn, limits, 0)
	th := vandelay.NewThrottle(0, 0, 100_000)
	th.Share(nil, func(ctx context.Context, want int64) (int64, time.Duration, error) {
		return b.Take(ctx, "src", engine.RateBytes, want)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := th.WaitBytes(ctx, 120_000); err != nil { // more than the capacity of 50,000
		t.Fatal(err)
	}
	// The bucket was asked (not the local fallback).
	if got, _, err := b.Take(ctx, "src", engine.RateBytes, 10); err != nil || got > 10 {
		t.Errorf("take = %d, %v", got, err)
	}
	// Unlimited kinds and backends give what is asked.
	if got, _, err := b.Take(ctx, "src", engine.RateMessages, 7); err != nil || got != 7 {
		t.Errorf("unlimited take = %d, %v", got, err)
	}
}
