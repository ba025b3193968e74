package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
)

// settleOnly is a Router without the freeze acknowledgement, and
// executorOnly an Executor without the verify before the freeze and the
// POP3 map: the cut-over as it was before issue 15 (sleep
// DefaultSettleDelay after the freeze, verify everything inside it).
type settleOnly struct{ engine.Router }
type executorOnly struct{ engine.Executor }

// TestBenchFreezeTime measures how long an account stays frozen during its
// cut-over (from the freeze's journal record to the unfreeze's): an
// account of MAILMIG_BENCH_FREEZE messages (3,000 in docs/engine.md) with
// 10 new ones since its last pass, cut over by "mailmig apply" against the
// real Dovecot and Cyrus with the proxy running (default 250 ms poll),
// first as before (settle delay, whole verify in the freeze), then the
// other account of the same size with the acknowledged freeze and the
// verify warmed before it. Run it with "just bench-freeze"; it is skipped
// otherwise (it takes a minute or more).
func TestBenchFreezeTime(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MAILMIG_BENCH_FREEZE"))
	logLevel := os.Getenv("MAILMIG_BENCH_LOG") // e.g. info: step times
	if logLevel == "" {
		logLevel = "warn"
	}
	if n <= 0 {
		t.Skip("a benchmark: set MAILMIG_BENCH_FREEZE=3000 (just bench-freeze)")
	}
	start := time.Now()
	x := newE2EWith(t, 2, e2eOptions{Seed: n, PollInterval: 250 * time.Millisecond})
	t.Logf("seeded 2 × %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	x.cli(exitOK, "apply", "-auto-approve")
	t.Logf("staged (import + export) in %v", time.Since(start).Round(time.Millisecond))
	x.cli(exitOK, "apply", "-auto-approve") // a catch-up that copies nothing: within the threshold
	for i := 0; i < 10; i++ {
		x.deliverAll("changes")
	}
	old, cur := x.accts[0].Email, x.accts[1].Email

	real := openWorld
	openWorld = func(ctx context.Context, m *plan.Migration, write bool, log *slog.Logger) (*world, error) {
		w, err := real(ctx, m, write, log)
		if err == nil && w.Router != nil {
			w.Router, w.Exec = settleOnly{w.Router}, executorOnly{w.Exec}
		}
		return w, err
	}
	out := x.cli(exitOK, "-log-level", logLevel, "apply", "-auto-approve", "-refresh=false", "-target", old)
	openWorld = real
	t.Logf("before:\n%s", out)
	out = x.cli(exitOK, "-log-level", logLevel, "apply", "-auto-approve", "-refresh=false", "-target", cur)
	t.Logf("after:\n%s", out)

	frozen, steps := frozenTimes(t, filepath.Join(x.dir, "state", "journal.jsonl"))
	t.Logf("phases while frozen: before %s; after %s", steps[old], steps[cur])
	t.Logf("FREEZE TIME %d messages + 10 new: settle delay and whole verify %v; acknowledged freeze and warmed verify %v",
		n, frozen[old].Round(time.Millisecond), frozen[cur].Round(time.Millisecond))
	x.check("seed", "changes")
}

// frozenTimes reads the journal: per account, the time from its frozen
// transition to its done transition, and how long each phase in between
// lasted ("frozen 0.26s" is the wait for the acknowledgement, "final-sync"
// the final catch-up and verify, "verified" the UIDL map and the flip).
func frozenTimes(t *testing.T, path string) (map[string]time.Duration, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	from := map[string]time.Time{}
	out := map[string]time.Duration{}
	last := map[string]time.Time{}
	lastPhase := map[string]string{}
	steps := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Type, Account, Phase string
			Time                 time.Time
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Type != "transition" {
			continue
		}
		if p := lastPhase[r.Account]; p != "" && p != "done" {
			steps[r.Account] += fmt.Sprintf("%s %v, ", p, r.Time.Sub(last[r.Account]).Round(time.Millisecond))
		}
		last[r.Account], lastPhase[r.Account] = r.Time, r.Phase
		switch r.Phase {
		case "frozen":
			from[r.Account] = r.Time
			steps[r.Account] = ""
		case "done":
			out[r.Account] = r.Time.Sub(from[r.Account])
		}
	}
	return out, steps
}
