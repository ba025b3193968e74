// Command benchgen writes a large migration for benchmarking "mailmig
// plan": a plan whose accounts come from CSV files, split over four waves,
// a journal that takes every account some way through its lifecycle, the
// journal's snapshot, and a route table with the accounts that are done.
//
//	go run ./engine/internal/benchgen -accounts 100000 -dir /tmp/mailmig-bench
//
// Of the accounts, 10% are pending, 30% staged, 40% catching up (a tenth of
// them with a large last pass) and 20% done.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/proxy/routes"
)

func main() {
	n := flag.Int("accounts", 100000, "number of accounts")
	dir := flag.String("dir", "", "output directory (must not exist)")
	noRoutes := flag.Bool("no-routes", false, "do not write the route table")
	flag.Parse()
	if *dir == "" {
		log.Fatal("benchgen: -dir is required")
	}
	if err := gen(*dir, *n, !*noRoutes); err != nil {
		log.Fatal("benchgen: ", err)
	}
}

const waves = 4

func addr(i int) string { return fmt.Sprintf("user%06d@example.test", i) }

func gen(dir string, n int, withRoutes bool) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%s exists", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var plan strings.Builder
	plan.WriteString(`state {
  path = "state/"
}

backend "legacy" {
  imap {
    address = "127.0.0.1:20000"
    tls     = "none"
  }
  limits {
    connections = 16
  }
}

backend "target" {
  jmap {
    url = "http://127.0.0.1:20038/.well-known/jmap"
  }
}
`)
	for w := 0; w < waves; w++ {
		var csv strings.Builder
		csv.WriteString("address,source_login,target_login,password_ref\n")
		for i := w; i < n; i += waves {
			fmt.Fprintf(&csv, "%s,,,\n", addr(i))
		}
		name := fmt.Sprintf("group%d.csv", w)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(csv.String()), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&plan, "\naccounts \"g%d\" {\n  from = backend.legacy\n  to   = backend.target\n  list = csv(%q)\n  data = [\"mail\"]\n}\n", w, name)
		after := ""
		if w > 0 {
			after = fmt.Sprintf("  after          = [wave.w%d]\n", w-1)
		}
		fmt.Fprintf(&plan, "\nwave \"w%d\" {\n  accounts       = accounts.g%d\n%s  cutover_window = \"22:00-05:00 Europe/Berlin\"\n  canary         = 2\n  max_parallel   = 8\n}\n", w, w, after)
	}
	if err := os.WriteFile(filepath.Join(dir, "migration.hcl"), []byte(plan.String()), 0o644); err != nil {
		return err
	}

	t0 := time.Date(2026, 11, 20, 22, 0, 0, 0, time.UTC)
	j, err := state.Open(filepath.Join(dir, "state"), &state.Options{NoSync: true, Actor: "bench@example.test", PlanHash: "bench",
		Now: func() time.Time { return t0 }})
	if err != nil {
		return err
	}
	add := func(r state.Record) {
		if _, err := j.Append(r); err != nil {
			log.Fatal(err)
		}
	}
	var done []string
	for i := 0; i < n; i++ {
		a := addr(i)
		p := i % 10
		if p == 0 {
			continue // pending
		}
		c := &state.Counts{Messages: int64(1000 + i%5000), Bytes: int64(1000+i%5000) * 40000}
		add(state.Record{Type: state.TypeStart, Account: a, Action: "import", Source: "legacy", Target: "target", Wave: fmt.Sprintf("w%d", i%waves)})
		add(state.Record{Type: state.TypeFinish, Account: a, Action: "import", Outcome: state.OutcomeOK, Counts: c, DurationMS: 90000})
		add(state.Record{Type: state.TypeStart, Account: a, Action: "export", Source: "legacy", Target: "target"})
		add(state.Record{Type: state.TypeTransition, Account: a, Phase: state.PhaseStaged})
		add(state.Record{Type: state.TypeFinish, Account: a, Action: "export", Outcome: state.OutcomeOK, Counts: c, DurationMS: 120000})
		if p <= 3 {
			continue // staged
		}
		small := &state.Counts{Messages: int64(i % 30), Bytes: int64(i%30) * 40000}
		if i%100 == 5 {
			small = &state.Counts{Messages: 500, Bytes: 500 * 40000}
		}
		add(state.Record{Type: state.TypeStart, Account: a, Action: "catch-up", Source: "legacy", Target: "target"})
		add(state.Record{Type: state.TypeTransition, Account: a, Phase: state.PhaseCatchingUp})
		add(state.Record{Type: state.TypeFinish, Account: a, Action: "catch-up", Outcome: state.OutcomeOK, Counts: small, DurationMS: 3000})
		if p <= 7 {
			continue // catching up
		}
		add(state.Record{Type: state.TypeStart, Account: a, Action: "cutover", Source: "legacy", Target: "target"})
		for _, ph := range []state.Phase{state.PhaseFrozen, state.PhaseFinalSync, state.PhaseVerified, state.PhaseCutOver, state.PhaseDone} {
			add(state.Record{Type: state.TypeTransition, Account: a, Phase: ph})
		}
		add(state.Record{Type: state.TypeFinish, Account: a, Action: "cutover", Outcome: state.OutcomeOK, Counts: small, DurationMS: 8000})
		done = append(done, a)
	}
	if err := j.WriteSnapshot(); err != nil {
		return err
	}
	fmt.Printf("journal: %d records\n", j.Serial())
	j.Close()
	if !withRoutes {
		return nil
	}
	ctx := context.Background()
	st, err := routes.Open(ctx, filepath.Join(dir, "state", "routes.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, a := range done {
		if _, err := st.Set(ctx, a, "target"); err != nil {
			return err
		}
	}
	fmt.Printf("routes: %d accounts on the target\n", len(done))
	return nil
}
