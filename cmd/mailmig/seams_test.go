package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
)

// init sets the engine commands' test seams from the environment of the
// testscript child process: MAILMIG_TEST_NOW (RFC 3339) fixes the clock
// that judges cut-over windows and stamps journal records, and
// MAILMIG_TEST_WORLD names the JSON file behind the fake executor
// (fakeworld_test.go) that replaces vandelay; MAILMIG_TEST_LINEAGE names
// a new journal. Both are unset in normal
// test runs, so nothing changes outside the scripts that ask for them.
func init() {
	if s := os.Getenv("MAILMIG_TEST_NOW"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic("MAILMIG_TEST_NOW: " + err.Error())
		}
		clock = engine.FixedClock{T: t}
		// MAILMIG_TEST_TICK (a duration) makes the clock step forward by
		// it at every reading, so that journal records get distinct,
		// reproducible times (with -parallelism 1) and a report shows
		// how long accounts were frozen.
		if d, err := time.ParseDuration(os.Getenv("MAILMIG_TEST_TICK")); err == nil && d > 0 {
			clock = &tickClock{t: t, step: d}
		}
	}
	if l := os.Getenv("MAILMIG_TEST_LINEAGE"); l != "" {
		newLineage = func() string { return l }
	}
	if p := os.Getenv("MAILMIG_TEST_WORLD"); p != "" {
		openWorld = fakeWorldOpener(p)
		newChecker = func(*plan.Migration, *slog.Logger) engine.Checker {
			f, err := fakeCheckerFrom(p)
			if err != nil {
				panic(err)
			}
			return f
		}
		settleDelay = 0 // no proxy follows the fake's routes
	}
	// MAILMIG_TEST_MAIN=1 makes the test binary act as mailmig (for tests
	// that start it themselves and kill it, like crash_test.go).
	switch os.Getenv("MAILMIG_TEST_MAIN") {
	case "1":
		os.Exit(run(context.Background(), os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	case "main":
		main() // with main's two-phase signal handling
	}
}

// tickClock steps forward by step at every reading.
type tickClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *tickClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}
