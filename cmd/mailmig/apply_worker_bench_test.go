package main

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
)

// TestBenchWorkers measures how many accounts per minute "apply -worker"
// stages (first import + first export) with one worker and with two, on
// the same generated corpus: MAILMIG_BENCH_WORKERS accounts (12 in
// docs/fleet.md) of MAILMIG_BENCH_WORKER_MESSAGES messages each (default
// 100, internal/corpus, up to 64 KiB), Dovecot → Cyrus, each worker with
// -parallelism 4 (and, as the control, one worker with 8), the state,
// claims and routes in PostgreSQL. Each run has
// its own fresh accounts (a target that already held the messages would
// make the second run cheaper). Run it with "just bench-workers"; it is
// skipped otherwise.
func TestBenchWorkers(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILMIG_BENCH_WORKERS"))
	if n <= 0 {
		t.Skip("a benchmark: set MAILMIG_BENCH_WORKERS=12 (just bench-workers)")
	}
	msgs, _ := strconv.Atoi(os.Getenv("MAILMIG_BENCH_WORKER_MESSAGES"))
	if msgs <= 0 {
		msgs = 100
	}
	c := corpus.Generate(corpus.Options{Seed: 18, Messages: msgs, MaxSize: 64 << 10})
	// One worker at -parallelism 4, two at 4 each, and as the control one
	// at 8: as many changes at once as the two workers together.
	for _, run := range []struct {
		workers []string
		par     string
	}{{[]string{"solo"}, "4"}, {[]string{"w1", "w2"}, "4"}, {[]string{"solo"}, "8"}} {
		workers := run.workers
		start := time.Now()
		f := newWorkerFleet(t, n, 0, workers...)
		f.par = run.par
		for _, a := range f.accts {
			if err := c.LoadIMAP(context.Background(), f.s.Dovecot.IMAP, a.Email, a.Password, 4); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("seeded %d accounts × %d messages (%d KiB each) in %v", n, msgs, c.Size()>>10, time.Since(start).Round(time.Millisecond))
		start = time.Now()
		f.runAll(workers...)
		d := time.Since(start)
		t.Logf("WORKERS %d × -parallelism %s: %d accounts staged in %v = %.1f accounts/min", len(workers), run.par, n, d.Round(100*time.Millisecond), float64(n)/d.Minutes())
		f.checkMessages()
	}
}
