package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/executor"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// DefaultWorkerLease is the default of apply -lease: how long a worker's
// claims outlive its last heartbeat (it heartbeats three times per lease).
const DefaultWorkerLease = 30 * time.Second

// workerOpts are the options of "apply -worker NAME".
type workerOpts struct {
	name           string
	lease          time.Duration
	par            int
	refresh        bool
	targets, waves []string
	planPath       string
	// takeStopped takes over the accounts whose archive a worker that
	// exited cleanly keeps (-take-over-stopped: that machine is gone).
	takeStopped bool
	// pruneOnTakeover prunes the target at the exports of the accounts
	// this worker took over, until their cut-over (-prune-on-takeover;
	// executor.Takeover).
	pruneOnTakeover bool
}

// workerClaim is one account a worker asked for (pgstate.Claim).
type workerClaim struct {
	Account string
	// Worker holds the claim now ("" when nobody does).
	Worker string
	// ArchiveWorker keeps the account's archive ("" when no worker
	// recorded one).
	ArchiveWorker string
	// Takeover: the account was held (or archived) by another worker
	// that is dead; PrevWorker names it.
	Takeover   bool
	PrevWorker string
}

// workerRegistry is the worker's view of the claims table in PostgreSQL
// (pgstate.Workers, adapted in apply_worker_pg.go).
type workerRegistry interface {
	Register(ctx context.Context) error
	// Heartbeat renews the worker and its claims; lost are claims that
	// another worker took over.
	Heartbeat(ctx context.Context) (lost []string, err error)
	// Claim claims up to max of accounts; held are those another live
	// worker holds or keeps the archive of.
	Claim(ctx context.Context, accounts []string, max int) (claimed, held []workerClaim, err error)
	Release(ctx context.Context, account, outcome string) error
	SetArchive(ctx context.Context, account string) error
	Deregister(ctx context.Context) error
	// Stopped names the workers that exited cleanly (not dead): their
	// archives stay theirs until they run again.
	Stopped(ctx context.Context) (map[string]bool, error)
}

// openWorkerRegistry opens the registry of worker name on the plan's state
// database; the test binary may replace it.
var openWorkerRegistry = openPGWorkers

// runApplyWorker is "apply -worker NAME": one of several apply processes
// (on one machine or many) sharing the journal, the route table and the
// accounts of one plan through PostgreSQL. See docs/fleet.md, "Apply
// workers".
func runApplyWorker(ctx context.Context, g *globals, v *views.View, s Streams, m *plan.Migration, o workerOpts, log *slog.Logger) int {
	switch {
	case m.State.Postgres == nil:
		fmtErr(v, "Cannot start the apply worker", errors.New(`apply -worker needs the journal in PostgreSQL: add postgres and password_ref to the plan's state block (state { postgres = "postgres://…" }); workers on several machines share the journal, the apply lock and their claims on accounts there`))
		return exitError
	case m.Routes.Postgres == nil:
		fmtErr(v, "Cannot start the apply worker", errors.New(`apply -worker needs the route table in PostgreSQL too: add postgres and password_ref to the plan's routes block; every worker's cut-overs write the one route table the proxies follow`))
		return exitError
	}
	b, err := openState(ctx, m, true)
	if err != nil {
		fmtErr(v, "Cannot lock the state", err)
		return exitError
	}
	defer b.Close()
	// The shared apply lock: any number of workers together, never with
	// a plain apply, a route edit or a state migration.
	lock, _, err := b.LockShared(ctx, actor(), o.name)
	if err != nil {
		var le *state.LockError
		if errors.As(err, &le) {
			v.Diagnostics(errDiag("State locked", err), nil)
		} else {
			fmtErr(v, "Cannot lock the state", err)
		}
		return exitError
	}
	defer func() {
		if err := lock.Unlock(); err != nil {
			fmtErr(v, "Cannot unlock the state", err)
		}
	}()
	// Every record this worker appends names it (in its actor), so the
	// journal shows which worker handled which account.
	j, err := b.OpenJournal(ctx, &state.Options{Shared: true, Actor: workerActor(o.name), RunID: state.RunIDFromEnv(os.Getenv),
		PlanHash: m.Hash, Redact: redactor(m), Now: clock.Now, Lineage: newLineage, Logger: log})
	if err != nil {
		fmtErr(v, "Cannot open the journal", err)
		return exitError
	}
	defer j.Close()
	// Like a plain apply, a worker waits through a database outage of up
	// to outage_wait, taking its shared lock again (outage.go); and the
	// observations it records name it (fleet_shared.go).
	waitThroughOutages(b, m, log)
	workerName = o.name
	w, err := openWorld(ctx, m, true, log)
	if err != nil {
		fmtErr(v, "Cannot open the migration's backends", err)
		return exitError
	}
	defer w.Close()
	reg, err := openWorkerRegistry(ctx, b, o.name, o.lease)
	if err != nil {
		fmtErr(v, "Cannot register the apply worker", err)
		return exitError
	}
	if err := reg.Register(ctx); err != nil {
		fmtErr(v, "Cannot register the apply worker", err)
		return exitError
	}
	wr := &workerRun{o: o, v: v, s: s, m: m, j: j, w: w, reg: reg, log: log, ran: map[string]bool{}}
	if x, ok := w.Exec.(*executor.Executor); ok {
		// The accounts it took over: their exports prune with
		// -prune-on-takeover, and a verify finding only extra target
		// emails says why and what to do.
		x.SetTakeover(executor.Takeover{Prune: o.pruneOnTakeover, TakenOver: func(account string) string {
			if a := j.Account(account); a != nil {
				return a.TakenOver
			}
			return ""
		}})
	}
	if w.Router != nil {
		w.Router = claimGuard{next: w.Router, wr: wr}
	}
	hbCtx, hbStop := context.WithCancel(context.WithoutCancel(ctx))
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); wr.heartbeat(hbCtx) }()
	defer func() {
		hbStop()
		<-hbDone
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := reg.Deregister(dctx); err != nil {
			log.Warn("deregister the apply worker", "worker", o.name, "err", err)
		}
	}()
	start := state.Record{Type: state.TypeApplyStart, PlanFile: o.planPath, Approver: actor() + " (-auto-approve, worker " + o.name + ")"}
	if _, err := j.Append(start); err != nil {
		fmtErr(v, "Cannot write the journal", err)
		return exitError
	}
	return wr.loop(ctx, g.Abort(ctx))
}

// workerActor is the actor of a worker's journal records: who ran it and
// which worker it is.
func workerActor(name string) string { return actor() + " (worker " + name + ")" }

// workerRun is one "apply -worker" invocation.
type workerRun struct {
	o   workerOpts
	v   *views.View
	s   Streams
	m   *plan.Migration
	j   *state.Journal
	w   *world
	reg workerRegistry
	log *slog.Logger

	// ran are the accounts this invocation ran a change of: each account
	// gets one pass per invocation, as with apply.
	ran map[string]bool

	mu sync.Mutex
	// batch are the accounts of the batch running now; stopBatch ends it
	// (the engine's Stop) when one of them is lost.
	batch     map[string]bool
	stopBatch context.CancelFunc
	lostBatch []string

	failed, stopped  bool
	rounds, accounts int
	// replaced: another process registered under this worker's name.
	replaced bool
	// lost are the accounts whose claim another worker took over.
	lost map[string]bool
}

// heartbeat renews the worker and its claims three times per lease. A
// claim that another worker took over (this one was too slow to renew:
// a paused machine, a database outage) stops the running batch: nothing
// new starts in it, running imports and exports finish (they converge),
// and a cut-over not yet flipped stops — its rollback writes no route of
// an account this worker lost (claimGuard), the other worker acts on it.
// When no heartbeat succeeds for a whole lease the batch stops the same
// way: others may be taking its accounts over.
func (wr *workerRun) heartbeat(ctx context.Context) {
	t := time.NewTicker(wr.o.lease / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, wr.o.lease/3)
		lost, err := wr.reg.Heartbeat(hctx)
		cancel()
		if errors.Is(err, errWorkerReplaced) {
			// Another process registered under this name after this one's
			// lease ran out: everything it held may be someone else's.
			wr.mu.Lock()
			wr.replaced = true
			wr.mu.Unlock()
			wr.loseBatch(nil, err.Error())
			return
		}
		if err != nil {
			wr.log.Warn("apply worker heartbeat", "worker", wr.o.name, "err", err)
			if time.Since(lastOK) > wr.o.lease {
				wr.loseBatch(nil, "no heartbeat reached the database for a whole lease")
			}
			continue
		}
		lastOK = time.Now()
		if len(lost) > 0 {
			wr.loseBatch(lost, "")
		}
	}
}

// loseBatch stops the running batch when it holds one of lost (every
// account when lost is nil).
func (wr *workerRun) loseBatch(lost []string, why string) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.lost == nil {
		wr.lost = map[string]bool{}
	}
	for _, a := range lost {
		wr.lost[engine.Key(a)] = true
	}
	if wr.stopBatch == nil {
		return
	}
	var hit []string
	for a := range wr.batch {
		if lost == nil || slices.ContainsFunc(lost, func(l string) bool { return engine.Key(l) == a }) {
			hit = append(hit, a)
		}
	}
	if len(hit) == 0 {
		return
	}
	sort.Strings(hit)
	if why == "" {
		why = "another worker took over " + strings.Join(hit, ", ")
	}
	wr.lostBatch = hit
	fmt.Fprintf(wr.s.Err, "Worker %s: %s; stopping this batch (running changes finish; it writes no route of an account it lost).\n", wr.o.name, why)
	wr.stopBatch()
}

// loop claims and runs batches until nothing is left for this worker.
func (wr *workerRun) loop(ctx, abort context.Context) int {
	o := wr.o
	idle := o.lease / 3
	for {
		if ctx.Err() != nil {
			wr.stopped = true
			break
		}
		wr.mu.Lock()
		replaced := wr.replaced
		wr.mu.Unlock()
		if replaced {
			fmtErr(wr.v, "Apply worker replaced", fmt.Errorf("worker %s: %w; this process stops", o.name, errWorkerReplaced))
			return exitError
		}
		if err := wr.j.Refresh(ctx); err != nil {
			fmtErr(wr.v, "Cannot read the journal", err)
			return exitError
		}
		ch, diags := observeAndDiffSkip(ctx, wr.m, wr.j.State(), wr.w, o.refresh, o.targets, o.waves, o.planPath, wr.ran)
		if diags.HasErrors() {
			reportDiags(wr.v, wr.m, diags)
			return exitError
		}
		var cands []string
		for _, a := range ch.Accounts() {
			if !wr.ran[engine.Key(a)] {
				cands = append(cands, engine.Key(a))
			}
		}
		if len(cands) == 0 {
			break
		}
		claimed, held, err := wr.claim(ctx, cands)
		if err != nil {
			if ctx.Err() != nil {
				wr.stopped = true
				break
			}
			fmtErr(wr.v, "Cannot claim accounts", err)
			return exitError
		}
		busy := busyElsewhere(held, o.name)
		if len(claimed) == 0 {
			if len(busy) == 0 {
				break // what is left belongs to other workers' archives
			}
			if !wr.sleep(ctx, idle) {
				wr.stopped = true
				break
			}
			continue
		}
		ran, code := wr.runBatch(ctx, abort, ch, claimed, len(busy) > 0)
		if code == exitAborted {
			return code
		}
		if !ran && len(busy) > 0 && !wr.sleep(ctx, idle) {
			wr.stopped = true
			break
		}
	}
	switch {
	case wr.stopped:
		fmt.Fprintf(wr.s.Out, "\nWorker %s stopped by %s after %d round(s), %d account(s).\n", o.name, stopName(), wr.rounds, wr.accounts)
		return exitError
	case wr.failed:
		fmt.Fprintf(wr.s.Out, "\nWorker %s finished with errors: %d round(s), %d account(s).\n", o.name, wr.rounds, wr.accounts)
		return exitError
	}
	fmt.Fprintf(wr.s.Out, "\nWorker %s complete: %d round(s), %d account(s); nothing left for it.\n", o.name, wr.rounds, wr.accounts)
	return exitOK
}

// claim asks for a batch (twice the parallelism, so that the engine has
// work while some accounts wait on their backends), then gives back at
// once the accounts whose archive is kept by a worker that exited
// cleanly: their archive is on its machine and it takes them up again
// when it runs next (a dead worker's accounts are taken over; with
// -take-over-stopped a stopped worker's too). Without this, workers
// started one after the other would take over each other's accounts
// (and import them again) as soon as the other one finished.
func (wr *workerRun) claim(ctx context.Context, cands []string) (claimed, held []workerClaim, err error) {
	claimed, held, err = wr.reg.Claim(ctx, cands, 2*wr.o.par)
	if err != nil || len(claimed) == 0 {
		return claimed, held, err
	}
	var elsewhere []workerClaim
	for _, c := range claimed {
		if c.ArchiveWorker != "" && c.ArchiveWorker != wr.o.name {
			elsewhere = append(elsewhere, c)
		}
	}
	if len(elsewhere) == 0 {
		return claimed, held, nil
	}
	stopped, err := wr.reg.Stopped(ctx)
	if err != nil {
		return nil, nil, err
	}
	var keep []workerClaim
	for _, c := range claimed {
		if c.ArchiveWorker != "" && c.ArchiveWorker != wr.o.name && stopped[c.ArchiveWorker] && !wr.o.takeStopped {
			if err := wr.reg.Release(ctx, c.Account, "archive-elsewhere"); err != nil {
				return nil, nil, err
			}
			continue
		}
		keep = append(keep, c)
	}
	return keep, held, nil
}

// busyElsewhere are the held accounts another live worker is working on
// now (not merely keeping the archive of).
func busyElsewhere(held []workerClaim, me string) []string {
	var out []string
	for _, h := range held {
		if h.Worker != "" && h.Worker != me {
			out = append(out, h.Account)
		}
	}
	return out
}

// sleep waits d or until ctx ends; false when ctx ended.
func (wr *workerRun) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runBatch runs the claimed accounts' changes and releases them; ran is
// false when none of them had a change it could run now (their
// dependencies are held by other workers).
func (wr *workerRun) runBatch(ctx, abort context.Context, ch *engine.Changes, claimed []workerClaim, othersBusy bool) (ran bool, code int) {
	o := wr.o
	mine := map[string]bool{}
	var rehome map[string]bool
	byKey := map[string]*plan.Account{}
	for _, a := range wr.m.Accounts {
		byKey[engine.Key(a.Address)] = a
	}
	for _, c := range claimed {
		k := engine.Key(c.Account)
		mine[k] = true
		// An archive on another (dead) worker, or none here although the
		// journal says the account was imported: import it again here
		// before any cut-over.
		sa := wr.j.Account(k)
		elsewhere := c.ArchiveWorker != "" && c.ArchiveWorker != o.name
		if !elsewhere && sa != nil && sa.Imported && wr.w.Archives != nil && byKey[k] != nil && !wr.w.Archives.Has(byKey[k]) {
			elsewhere = true
		}
		if elsewhere {
			if rehome == nil {
				rehome = map[string]bool{}
			}
			rehome[k] = true
		}
		if c.Takeover {
			note := fmt.Sprintf("taken over by worker %s from worker %s, whose lease ran out", o.name, orDash(c.PrevWorker))
			if elsewhere {
				note += fmt.Sprintf("; its archive was on %s and is imported again here", orDash(c.ArchiveWorker))
			}
			if _, err := wr.j.Append(state.Record{Type: state.TypeTakeover, Account: k, Note: note}); err != nil {
				fmtErr(wr.v, "Cannot write the journal", err)
				wr.releaseAll(claimed, "failed")
				wr.failed = true
				return false, exitError
			}
			fmt.Fprintf(wr.s.Out, "Worker %s: %s.\n", o.name, strings.Replace(note, "taken over by worker "+o.name+" ", k+" taken over ", 1))
		}
	}
	ch.Rehome(rehome)
	ch.Narrow(mine, "which another worker holds or this run already ran")
	has := map[string]bool{}
	for _, c := range ch.All() {
		has[engine.Key(c.Account)] = true
	}
	// Accounts left without a change (waiting on an account another worker
	// holds) go back at once; they are planned again next round.
	var run []workerClaim
	for _, c := range claimed {
		if has[engine.Key(c.Account)] {
			run = append(run, c)
			continue
		}
		if err := wr.reg.Release(ctx, c.Account, "waiting"); err != nil {
			wr.log.Warn("release a claim", "account", c.Account, "err", err)
		}
		if !othersBusy {
			// Nobody else works on what it waits for: give up on it for
			// this run, or the worker would claim it forever.
			wr.ran[engine.Key(c.Account)] = true
		}
	}
	if len(run) == 0 {
		return false, exitOK
	}
	wr.rounds++
	names := make([]string, len(run))
	for i, c := range run {
		names[i] = c.Account
	}
	fmt.Fprintf(wr.s.Out, "\nWorker %s, round %d: %d account(s): %s\n", o.name, wr.rounds, len(run), strings.Join(names, ", "))
	wr.v.Changes(ch, &views.ChangesOptions{Verb: "worker " + o.name + " will perform the following actions"})

	stop, cancel := context.WithCancel(ctx)
	wr.mu.Lock()
	wr.batch, wr.stopBatch, wr.lostBatch = map[string]bool{}, cancel, nil
	for _, c := range run {
		wr.batch[engine.Key(c.Account)] = true
	}
	wr.mu.Unlock()
	res, code := runChangesResult(stop, abort, wr.v, wr.s, wr.m, wr.j, wr.w, ch, o.par, false, wr.log)
	wr.mu.Lock()
	wr.batch, wr.stopBatch = nil, nil
	lost := wr.lostBatch
	wr.mu.Unlock()
	cancel()
	if code != exitOK {
		wr.failed = true
	}
	// Per account: did a change run (then it had its pass), did one
	// import into this machine's archive, and the worst outcome.
	type acct struct {
		ran, imported bool
		outcome       state.Outcome
	}
	per := map[string]*acct{}
	if res != nil {
		for _, r := range res.Results {
			k := engine.Key(r.Change.Account)
			a := per[k]
			if a == nil {
				a = &acct{outcome: state.OutcomeOK}
				per[k] = a
			}
			if r.Outcome == engine.OutcomeSkipped {
				continue
			}
			a.ran = true
			if c := r.Counts; c.Pruned > 0 || c.PrunedMailboxes > 0 {
				fmt.Fprintf(wr.s.Out, "Worker %s: %s: pruned %d email(s) and %d mailbox(es) from the target that its new archive does not hold (-prune-on-takeover).\n",
					o.name, k, c.Pruned, c.PrunedMailboxes)
			}
			switch r.Change.Action {
			case engine.Import, engine.CatchUp:
				a.imported = true
			case engine.Cutover:
				a.imported = a.imported || !r.Change.Resume
			}
			if r.Outcome != state.OutcomeOK {
				a.outcome = r.Outcome
			}
		}
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer rcancel()
	for _, c := range run {
		k := engine.Key(c.Account)
		a := per[k]
		outcome := "not-run"
		if a != nil && a.ran {
			ran = true
			wr.ran[k] = true
			wr.accounts++
			outcome = string(a.outcome)
			if a.imported && !wr.isLost(k) {
				if err := wr.reg.SetArchive(rctx, k); err != nil {
					wr.log.Warn("record the archive's worker", "account", k, "err", err)
				}
			}
		}
		if slices.Contains(lost, k) || wr.isLost(k) {
			continue // another worker holds it now
		}
		if err := wr.reg.Release(rctx, k, outcome); err != nil {
			wr.log.Warn("release a claim", "account", k, "err", err)
		}
	}
	if abort.Err() != nil {
		return ran, exitAborted
	}
	if ctx.Err() != nil {
		wr.stopped = true
	}
	return ran, code
}

// releaseAll gives every claim back with outcome.
func (wr *workerRun) releaseAll(cs []workerClaim, outcome string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range cs {
		if err := wr.reg.Release(ctx, c.Account, outcome); err != nil {
			wr.log.Warn("release a claim", "account", c.Account, "err", err)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// isLost reports whether another worker took account over.
func (wr *workerRun) isLost(account string) bool {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	return wr.lost[engine.Key(account)]
}

// claimGuard is the worker's route writer: before every route write (a
// freeze, a flip, an unfreeze, a rollback) it renews the worker's claims
// — a heartbeat — and refuses to touch the route of an account whose
// claim another worker took over. A worker that was paused for longer
// than its lease thus cannot unfreeze or flip an account the other worker
// is cutting over now; its own cut-over of it fails instead (the engine
// then tries to route it back, which is refused the same way, and the
// account is left to the worker that holds it).
type claimGuard struct {
	next engine.Router
	wr   *workerRun
}

func (g claimGuard) SetRoute(ctx context.Context, account, backend string, frozen bool) error {
	lost, err := g.wr.reg.Heartbeat(ctx)
	if err != nil {
		return fmt.Errorf("confirm that worker %s still holds %s: %w", g.wr.o.name, account, err)
	}
	if len(lost) > 0 {
		g.wr.loseBatch(lost, "")
	}
	if g.wr.isLost(account) {
		return fmt.Errorf("worker %s no longer holds %s (its lease ran out and it was taken over); its route is left to that worker: %w", g.wr.o.name, account, engine.ErrRouteHeldElsewhere)
	}
	return g.next.SetRoute(ctx, account, backend, frozen)
}
