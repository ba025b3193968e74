package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// Job is one change as handed to an Executor.
type Job struct {
	Change *Change
	// Account is the plan's account (logins, password, data kinds).
	Account *plan.Account
	// Full is true for the first import or export of the account.
	Full bool
	// Source and Target are the backends' shared limiters; executors call
	// WaitMessages/WaitBytes before each unit of work.
	Source, Target *Limiter
	// Log is bound to the account and action.
	Log *slog.Logger
	// Progress reports work done in the current step.
	Progress func(done, total int64)
	// Work reports messages and bytes done of the current step's totals
	// (nil-safe to skip: executors that report only Progress still work).
	Work func(w Work)
}

// Executor moves data. vandelay implements it in cmd/mailmig; tests use
// fakes. Methods are called concurrently for different accounts, never for
// the same account at once. They must be convergent: running one again
// after a failure or a crash copies only what is missing.
type Executor interface {
	// Import copies the source into the account's archive.
	Import(ctx context.Context, job *Job) (state.Counts, error)
	// Export copies the archive onto the target.
	Export(ctx context.Context, job *Job) (state.Counts, error)
	// Verify compares source, archive and target; Counts.Mismatches > 0
	// fails the cut-over. An executor that can name the differences
	// returns a *VerifyError with them; the journal records them.
	Verify(ctx context.Context, job *Job) (state.Counts, error)
}

// VerifyError is the error of a verify that found differences: Total of
// them, the first of which (at most state.MaxRecordedMismatches) are
// Mismatches. A cut-over whose verify returns it rolls back and journals
// the mismatches on its finish record.
type VerifyError struct {
	Total      int
	Mismatches []state.Mismatch
	// Hint, when set, says what the mismatches most likely are and what
	// to do (e.g. extra emails on the target of an account an apply
	// worker took over); it follows the message.
	Hint string
}

func (e *VerifyError) Error() string {
	s := fmt.Sprintf("verify found %s between source and target", plural(e.Total, "mismatch"))
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Router changes the proxy's route table. SetRoute points account at
// backend, frozen or active, creating the entry when missing. It must be
// safe for concurrent use and idempotent.
type Router interface {
	SetRoute(ctx context.Context, account, backend string, frozen bool) error
}

// VerifyWarmer is implemented by Executors whose verify can do most of
// its work before the account is frozen (hash the target's copies of what
// is already there). A cut-over calls WarmVerify before the freeze, so
// that the verify inside it costs what the final catch-up changed, not
// the whole mailbox (issue 14: freeze time). An error is only logged: the
// verify inside the freeze decides.
type VerifyWarmer interface {
	WarmVerify(ctx context.Context, job *Job) error
}

// FlipPreparer is implemented by Executors that write what the proxy
// needs once an account's route points at its target: the POP3 UIDL map
// (engine/executor). A cut-over calls PrepareFlip after its verify, while
// the account is still frozen, and rolls back when it fails.
type FlipPreparer interface {
	PrepareFlip(ctx context.Context, job *Job) error
}

// RouteEvent names the route change of a cut-over that a Barrier waits
// for.
type RouteEvent string

// Route events of a cut-over.
const (
	// RouteFrozen: the account was frozen on its source. Once every live
	// proxy has acted on it, nothing reaches the source any more and the
	// final catch-up may start.
	RouteFrozen RouteEvent = "freeze"
	// RouteFlipped: the account, still frozen, was routed to its target.
	// Once every live proxy has acted on it, none routes the account to
	// the source any more and it may be unfrozen.
	RouteFlipped RouteEvent = "flip"
)

// Barrier is the one thing a cut-over waits on: the proxies' word that
// they act on an account's latest route change. cmd/mailmig has two: the
// SQLite route table's acknowledgements (each live proxy has seen the
// frozen route's generation, ended the account's sessions and has no
// delivery of it in flight) and a PostgreSQL fleet's barrier (each live
// proxy has applied the change's sequence number). Implementations are
// safe for concurrent use.
//
// A cut-over calls AwaitRoute after the freeze, before its final
// catch-up (RouteFrozen), and after the flip, before it unfreezes
// (RouteFlipped); a wait that fails or outlasts Env.BarrierTimeout rolls
// the account back to its source. Without a Barrier the cut-over sleeps
// Env.SettleDelay after the freeze instead, and does not wait after the
// flip.
type Barrier interface {
	// AwaitRoute returns nil once every live proxy has acted on the
	// account's latest route change, or an error when that does not
	// happen in time (its own timeout, or ctx).
	AwaitRoute(ctx context.Context, account string, ev RouteEvent) error
}

// Recorder is the journal as Apply sees it (*state.Journal implements it).
type Recorder interface {
	Append(r state.Record) (state.Record, error)
}

var _ Recorder = (*state.Journal)(nil)

// Env is what Apply needs besides the changes.
type Env struct {
	// Plan supplies the accounts' details; required.
	Plan *plan.Migration
	// Executor, Router and Journal are required.
	Executor Executor
	Router   Router
	Journal  Recorder
	// Limiters are per backend; missing backends are unlimited with
	// DefaultConnections.
	Limiters map[string]*Limiter
	// Budget, when set, shares the backends' connection slots with other
	// apply processes: a change holds one of each of its backends' shared
	// slots (besides this process's own count) while it runs. The
	// limiters' rates are shared by ShareLimiters. Default: nil (limits
	// per process).
	Budget Budget
	// Parallelism bounds concurrent changes. Default: 10.
	Parallelism int
	// Stop is cancelled by the first Ctrl-C: nothing new starts, running
	// changes finish, and a cut-over not yet flipped rolls back. The ctx
	// passed to Apply is the hard abort. Default: never.
	Stop context.Context
	// Manual marks rollbacks asked for by "mailmig rollback": the account
	// is then held until released.
	Manual bool
	// Logger receives progress logs. Default: discard.
	Logger *slog.Logger
	// SettleDelay is how long a cut-over waits after freezing before its
	// final catch-up when there is no Barrier, so that every proxy has
	// noticed the freeze (they poll the route table). It is a guess: a
	// delivery still in flight after it lands on the source after the
	// final sync. Default: 0; cmd/mailmig uses DefaultSettleDelay.
	SettleDelay time.Duration
	// Barrier, when set, replaces SettleDelay: a cut-over waits on it
	// after the freeze and after the flip, and rolls back when a wait
	// fails. Default: nil.
	Barrier Barrier
	// BarrierTimeout bounds each wait on the Barrier (which may have a
	// shorter timeout of its own). Default: DefaultBarrierTimeout.
	BarrierTimeout time.Duration
	// Pending, when set, is told which accounts have a cut-over ahead
	// (see PendingMarker). Default: nil.
	Pending PendingMarker
	// Redact removes secrets from error texts shown to hooks and kept in
	// results (the journal redacts on its own). Default: identity.
	Redact func(string) string
	// OpenBreakers are the backends whose circuit breaker a previous run
	// left open (state.State.Breakers), with their last error: Apply
	// probes each once (see Prober) before dispatching to it.
	OpenBreakers map[string]string
}

// ApplyResult summarises a run.
type ApplyResult struct {
	Results []*Result `json:"results"`
	// Counts of changes by outcome.
	OK, Failed, RolledBack, Skipped, Interrupted int
	// Stopped is true when Stop was cancelled during the run.
	Stopped bool `json:"stopped"`
	// OpenBreakers are the backends whose circuit breaker is open at the
	// end of the run, with the last error.
	OpenBreakers map[string]string `json:"open_breakers,omitempty"`
}

// Err returns an error when any change failed, rolled back or was
// interrupted.
func (r *ApplyResult) Err() error {
	if len(r.OpenBreakers) > 0 {
		return fmt.Errorf("%d failed, %d rolled back, %d interrupted, %d skipped; %d backend(s) unreachable", r.Failed, r.RolledBack, r.Interrupted, r.Skipped, len(r.OpenBreakers))
	}
	if r.Failed+r.RolledBack+r.Interrupted == 0 {
		if r.Stopped {
			return errors.New("apply stopped before every change ran")
		}
		return nil
	}
	return fmt.Errorf("%d failed, %d rolled back, %d interrupted", r.Failed, r.RolledBack, r.Interrupted)
}

// DefaultSettleDelay covers the proxies' route-table polling (they notice
// a change within a second).
const DefaultSettleDelay = 1500 * time.Millisecond

// DefaultBarrierTimeout is the default of Env.BarrierTimeout: long enough
// for a large message still arriving over a slow link when the freeze
// came, short enough that a stuck proxy does not hold an account frozen
// for long (held logins give up after 30 s by default).
const DefaultBarrierTimeout = 60 * time.Second

// DefaultParallelism is the default number of concurrent changes.
const DefaultParallelism = 10

// Apply executes ch. It returns an error only when it cannot start (a bad
// graph or environment); per-change failures are in the result.
func Apply(ctx context.Context, ch *Changes, env *Env, hs ...Hook) (*ApplyResult, error) {
	if env == nil || env.Plan == nil || env.Executor == nil || env.Router == nil || env.Journal == nil {
		return nil, errors.New("apply: incomplete environment")
	}
	g, err := buildGraph(ch)
	if err != nil {
		return nil, err
	}
	a := &applier{env: *env, g: g, hooks: hooks(hs), ctx: ctx}
	if a.env.Stop == nil {
		a.env.Stop = context.Background()
	}
	if a.env.Logger == nil {
		a.env.Logger = slog.New(slog.DiscardHandler)
	}
	if a.env.Parallelism <= 0 {
		a.env.Parallelism = DefaultParallelism
	}
	if a.env.Limiters == nil {
		a.env.Limiters = map[string]*Limiter{}
	}
	a.accounts = make(map[string]*plan.Account, len(env.Plan.Accounts))
	for _, pa := range env.Plan.Accounts {
		a.accounts[Key(pa.Address)] = pa
	}
	a.waves = map[string]*plan.Wave{}
	for _, w := range env.Plan.Waves {
		a.waves[w.Name] = w
	}
	a.run()
	res := &ApplyResult{Stopped: a.env.Stop.Err() != nil}
	for name, b := range a.breakers {
		if b.open {
			if res.OpenBreakers == nil {
				res.OpenBreakers = map[string]string{}
			}
			res.OpenBreakers[name] = b.lastErr
		}
	}
	for _, n := range g.nodes {
		r := n.result
		res.Results = append(res.Results, r)
		switch r.Outcome {
		case state.OutcomeOK:
			res.OK++
		case state.OutcomeFailed:
			res.Failed++
		case state.OutcomeRolledBack:
			res.RolledBack++
		case state.OutcomeInterrupted:
			res.Interrupted++
		default:
			res.Skipped++
		}
	}
	return res, nil
}

type applier struct {
	env      Env
	g        *graph
	hooks    hooks
	ctx      context.Context
	accounts map[string]*plan.Account
	waves    map[string]*plan.Wave

	mu         sync.Mutex
	cond       *sync.Cond
	ready      []*node // sorted by idx
	running    int
	perWave    map[string]int
	perBackend map[string]int
	waveFailed map[string]int
	waveMism   map[string]int64
	breakers   map[string]*breaker
	// waveBreaker names, per wave halted by a breaker, the backend.
	waveBreaker map[string]string
}

func (a *applier) waveMax(w string) int {
	if pw := a.waves[w]; pw != nil && pw.MaxParallel > 0 {
		return pw.MaxParallel
	}
	return a.env.Parallelism
}

func (a *applier) connMax(b string) int {
	if l := a.env.Limiters[b]; l != nil && l.Connections > 0 {
		return l.Connections
	}
	return DefaultConnections
}

// run dispatches ready changes until every change has a result.
func (a *applier) run() {
	a.cond = sync.NewCond(&a.mu)
	a.perWave, a.perBackend = map[string]int{}, map[string]int{}
	a.waveFailed, a.waveMism = map[string]int{}, map[string]int64{}
	a.initBreakers()
	for _, n := range a.g.nodes {
		if n.deps == 0 {
			a.ready = append(a.ready, n)
		}
	}
	stopWake := context.AfterFunc(a.env.Stop, func() {
		a.mu.Lock()
		a.cond.Broadcast()
		a.mu.Unlock()
	})
	defer stopWake()
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		stopped := a.env.Stop.Err() != nil || a.ctx.Err() != nil
		if stopped {
			for _, n := range a.ready {
				a.skipLocked(n, "the run was stopped before it started")
			}
			a.ready = nil
		}
		for !stopped && a.running < a.env.Parallelism {
			n := a.pickLocked()
			if n == nil {
				break
			}
			a.running++
			a.perWave[n.wave]++
			for _, b := range n.backends {
				a.perBackend[b]++
			}
			go a.exec(n)
		}
		if a.running == 0 && len(a.ready) == 0 {
			break
		}
		a.cond.Wait()
	}
	// Anything without a result never became ready (its dependency was
	// skipped while stopping).
	for _, n := range a.g.nodes {
		if n.result == nil {
			a.skipLocked(n, "the run was stopped before it started")
		}
	}
}

// pickLocked removes and returns the first ready change whose wave and
// backends have a free slot, or nil.
func (a *applier) pickLocked() *node {
	for i, n := range a.ready {
		if a.perWave[n.wave] >= a.waveMax(n.wave) {
			continue
		}
		free := true
		for _, b := range n.backends {
			if a.perBackend[b] >= a.connMax(b) {
				free = false
			}
		}
		if !free {
			continue
		}
		if why := a.breakerSkipLocked(n); why != "" {
			a.ready = append(a.ready[:i], a.ready[i+1:]...)
			a.skipLocked(n, why)
			return a.pickLocked()
		}
		if n.c.Action == Cutover && a.haltedLocked(n.wave) {
			a.ready = append(a.ready[:i], a.ready[i+1:]...)
			a.skipLocked(n, "the wave halted: too many failed cut-overs")
			return a.pickLocked()
		}
		a.ready = append(a.ready[:i], a.ready[i+1:]...)
		return n
	}
	return nil
}

func (a *applier) haltedLocked(wave string) bool {
	w := a.waves[wave]
	if w == nil {
		return false
	}
	return a.waveFailed[wave] > w.MaxErrors || a.waveMism[wave] > int64(w.MaxVerifyMismatches)
}

// skipLocked records a skip for n and, recursively, its dependents.
func (a *applier) skipLocked(n *node, why string) {
	if n.result != nil {
		return
	}
	n.result = &Result{Change: n.c, Outcome: OutcomeSkipped, Skipped: why}
	n.done = true
	a.hooks.post(n.c, n.result)
	for _, d := range n.dependents {
		a.removeReadyLocked(d)
		a.skipLocked(d, fmt.Sprintf("%s did not succeed", n.c.ID))
	}
}

func (a *applier) removeReadyLocked(n *node) {
	for i, x := range a.ready {
		if x == n {
			a.ready = append(a.ready[:i], a.ready[i+1:]...)
			return
		}
	}
}

// exec runs one change on a worker goroutine and schedules its dependents.
func (a *applier) exec(n *node) {
	var r *Result
	start := time.Now()
	switch release, skip, err := a.acquireBudget(n); {
	case skip != "":
		r = &Result{Outcome: OutcomeSkipped, Skipped: skip}
	case err != nil:
		r = &Result{Outcome: state.OutcomeFailed, Err: err}
	default:
		a.hooks.pre(n.c)
		start = time.Now()
		r = a.execChange(n.c)
		release()
	}
	r.Change = n.c
	r.Duration = time.Since(start)
	if r.Err != nil {
		r.Error = r.Err.Error()
		if a.env.Redact != nil {
			r.Error = a.env.Redact(r.Error)
		}
	}
	a.hooks.post(n.c, r)

	a.mu.Lock()
	defer a.mu.Unlock()
	n.result, n.done = r, true
	a.running--
	a.perWave[n.wave]--
	for _, b := range n.backends {
		a.perBackend[b]--
	}
	if n.c.Action == Cutover && (r.Outcome == state.OutcomeFailed || r.Outcome == state.OutcomeRolledBack) {
		a.waveFailed[n.wave]++
		a.waveMism[n.wave] += r.Counts.Mismatches
	}
	for _, d := range n.dependents {
		if r.Outcome != state.OutcomeOK {
			a.skipLocked(d, fmt.Sprintf("%s did not succeed", n.c.ID))
			continue
		}
		d.deps--
		if d.deps == 0 && d.result == nil {
			i := sort.Search(len(a.ready), func(i int) bool { return a.ready[i].idx > d.idx })
			a.ready = append(a.ready, nil)
			copy(a.ready[i+1:], a.ready[i:])
			a.ready[i] = d
		}
	}
	a.cond.Broadcast()
}

// execChange journals and runs one change.
func (a *applier) execChange(c *Change) *Result {
	r := &Result{started: time.Now()}
	acct := a.accounts[Key(c.Account)]
	if acct == nil {
		r.Outcome, r.Err = state.OutcomeFailed, fmt.Errorf("account %s is not in the plan", c.Account)
		return r
	}
	log := a.env.Logger.With("user", c.Account, "action", c.Action.String())
	job := &Job{Change: c, Account: acct, Source: a.env.Limiters[c.Source], Target: a.env.Limiters[c.Target], Log: log,
		Progress: func(done, total int64) { a.hooks.progress(c, done, total) },
		Work:     func(w Work) { a.hooks.work(c, w) }}
	if _, err := a.record(state.Record{Type: state.TypeStart, Account: c.Account, Action: c.Action.String(), Wave: c.Wave, Source: c.Source, Target: c.Target}); err != nil {
		r.Outcome, r.Err = state.OutcomeFailed, err
		return r
	}
	a.markPending(c, log)
	var err error
	switch c.Action {
	case Import:
		job.Full = true
		a.hooks.step(c, "import")
		r.Counts, err = a.importFrom(c, job)
	case Export:
		job.Full = true
		a.hooks.step(c, "export")
		r.Counts, err = a.exportTo(c, job)
		if err == nil && (c.Phase == state.PhasePending || c.Phase == "") {
			err = a.transition(c, state.PhaseStaged)
		}
	case CatchUp:
		r.Counts, err = a.pass(c, job)
		if err == nil && c.Phase != state.PhaseCatchingUp {
			err = a.transition(c, state.PhaseCatchingUp)
		}
	case Cutover:
		return a.cutover(c, job, r, log)
	case Rollback:
		// Mail that arrived on the target after the cut-over goes back to
		// the source first; if that fails the route stays where it is.
		if cb, ok := a.env.Executor.(CopyBacker); ok && c.NeedsCopyBack() {
			a.hooks.step(c, "copy back")
			r.Counts, err = cb.CopyBack(a.ctx, job)
			if err != nil {
				err = fmt.Errorf("copy back from %s to %s: %w", c.Target, c.Source, err)
			}
		}
		if err == nil {
			a.hooks.step(c, "rollback")
			err = a.env.Router.SetRoute(a.ctx, Key(c.Account), c.Source, false)
		}
		if err == nil {
			next := state.PhaseCatchingUp
			if c.Phase == state.PhasePending {
				next = state.PhasePending
			}
			err = a.transition(c, next)
		}
		if err == nil && a.env.Manual {
			_, err = a.record(state.Record{Type: state.TypeHold, Account: c.Account, Note: "rolled back by hand"})
		}
	case Adopt:
		err = a.transition(c, state.PhaseDone)
	default:
		err = fmt.Errorf("unknown action %v", c.Action)
	}
	r.Outcome = state.OutcomeOK
	if err != nil {
		r.Outcome, r.Err = state.OutcomeFailed, err
		if a.ctx.Err() != nil {
			r.Outcome = state.OutcomeInterrupted
		}
		log.Warn("action failed", "err", a.redact(err.Error()))
	}
	a.finish(c, r)
	return r
}

// pass runs one incremental import and export.
func (a *applier) pass(c *Change, job *Job) (state.Counts, error) {
	a.hooks.step(c, "import")
	in, err := a.importFrom(c, job)
	if err != nil {
		return in, fmt.Errorf("import: %w", err)
	}
	a.hooks.step(c, "export")
	out, err := a.exportTo(c, job)
	if err != nil {
		return in, fmt.Errorf("export: %w", err)
	}
	in.Bytes += out.Bytes
	// The export's view of what the target folds together (totals).
	in.Duplicates, in.KeywordsMerged = out.Duplicates, out.KeywordsMerged
	// Conflicts are found again by every export while they last: the
	// export's count is the account's.
	in.Conflicts = out.Conflicts
	// What the export pruned (apply -worker -prune-on-takeover) is the
	// pass's to report: the import's counts know nothing of it.
	in.Pruned, in.PrunedMailboxes = out.Pruned, out.PrunedMailboxes
	return in, nil
}

// cutover runs freeze → final catch-up → verify → flip → unfreeze. Any
// failure (or a stop) before the flip is complete routes the account back
// to its source, unfrozen.
func (a *applier) cutover(c *Change, job *Job, r *Result, log *slog.Logger) *Result {
	k := Key(c.Account)
	rt := a.env.Router
	if c.Resume {
		a.hooks.step(c, "unfreeze")
		err := rt.SetRoute(a.ctx, k, c.Target, false)
		if err == nil {
			err = a.transition(c, state.PhaseDone)
		}
		r.Outcome = state.OutcomeOK
		if err != nil {
			r.Outcome, r.Err = state.OutcomeFailed, err
		}
		a.finish(c, r)
		return r
	}
	stopped := func() error {
		if a.env.Stop.Err() != nil || a.ctx.Err() != nil {
			return errStopped
		}
		return nil
	}
	var err error
	frozen := false
	step := func(name string, fn func() error) {
		if err != nil {
			return
		}
		if err = stopped(); err != nil {
			return
		}
		a.hooks.step(c, name)
		err = fn()
	}
	if vw, ok := a.env.Executor.(VerifyWarmer); ok {
		step("verify before the freeze", func() error {
			// Nothing is frozen yet: the first Ctrl-C may end it at once.
			wctx, cancel := context.WithCancel(a.ctx)
			defer cancel()
			defer context.AfterFunc(a.env.Stop, cancel)()
			if e := vw.WarmVerify(wctx, job); e != nil && wctx.Err() == nil {
				log.Warn("verify before the freeze", "err", a.redact(e.Error()))
			}
			return nil
		})
	}
	step("freeze", func() error {
		if e := rt.SetRoute(a.ctx, k, c.Source, true); e != nil {
			return fmt.Errorf("freeze: %w", e)
		}
		frozen = true
		return a.transition(c, state.PhaseFrozen)
	})
	step("final catch-up", func() error {
		if a.env.Barrier != nil {
			if e := a.awaitBarrier(k, RouteFrozen); e != nil {
				return e
			}
		} else if d := a.env.SettleDelay; d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-a.env.Stop.Done():
				return errStopped
			case <-a.ctx.Done():
				return errStopped
			}
		}
		if e := a.transition(c, state.PhaseFinalSync); e != nil {
			return e
		}
		cnt, e := a.pass(c, job)
		r.Counts = cnt
		if e != nil {
			return fmt.Errorf("final catch-up: %w", e)
		}
		return nil
	})
	step("verify", func() error {
		v, e := a.env.Executor.Verify(a.ctx, job)
		r.Counts.Mismatches = v.Mismatches
		// Verify's count of conflicts (items the user had changed on the
		// target, kept there) is the latest: they do not stop the
		// cut-over, the finish record carries them as its warning.
		if v.Conflicts > 0 {
			r.Counts.Conflicts = v.Conflicts
			log.Warn("cut-over proceeds with conflicts: the target's version kept", "conflicts", v.Conflicts)
		}
		if ve, ok := errors.AsType[*VerifyError](e); ok {
			r.Mismatches = ve.Mismatches
			if len(r.Mismatches) > state.MaxRecordedMismatches {
				r.Mismatches = r.Mismatches[:state.MaxRecordedMismatches]
			}
			if n := int64(ve.Total); n > r.Counts.Mismatches {
				r.Counts.Mismatches = n
			}
			return ve
		}
		if e != nil {
			return fmt.Errorf("verify: %w", e)
		}
		if v.Mismatches > 0 {
			return fmt.Errorf("verify found %s between source and target", plural(int(v.Mismatches), "mismatch"))
		}
		return a.transition(c, state.PhaseVerified)
	})
	if fp, ok := a.env.Executor.(FlipPreparer); ok {
		step("pop3 uidl map", func() error {
			return fp.PrepareFlip(a.ctx, job)
		})
	}
	flipped := false
	step("flip", func() error {
		if e := rt.SetRoute(a.ctx, k, c.Target, true); e != nil {
			return fmt.Errorf("flip: %w", e)
		}
		flipped = true
		if e := a.transition(c, state.PhaseCutOver); e != nil {
			return e
		}
		if a.env.Barrier != nil {
			return a.awaitBarrier(k, RouteFlipped)
		}
		return nil
	})
	if err == nil || (flipped && errors.Is(err, errStopped)) {
		// Past the flip a stop still unfreezes: that is quick and safe.
		a.hooks.step(c, "unfreeze")
		err = rt.SetRoute(a.ctx, k, c.Target, false)
		if err == nil {
			err = a.transition(c, state.PhaseDone)
		} else {
			err = fmt.Errorf("unfreeze: %w", err)
		}
	}
	switch {
	case err == nil:
		r.Outcome = state.OutcomeOK
	case !frozen && errors.Is(err, errStopped):
		// Stopped before anything happened: not an action at all.
		r.Outcome, r.Err = state.OutcomeInterrupted, err
	case !frozen:
		r.Outcome, r.Err = state.OutcomeFailed, err
	default:
		// Roll back: route to the source, unfrozen. Use a context that a
		// hard abort does not cancel; the rollback is one quick write.
		a.hooks.step(c, "rollback")
		log.Warn("cut-over failed; rolling back", "err", a.redact(err.Error()))
		rbctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), 30*time.Second)
		rberr := rt.SetRoute(rbctx, k, c.Source, false)
		cancel()
		if errors.Is(rberr, ErrRouteHeldElsewhere) {
			// Another apply worker holds the account now and acts on its
			// route: this cut-over was interrupted, it did not fail.
			r.Outcome, r.Err = state.OutcomeInterrupted, fmt.Errorf("%w; %w", err, rberr)
			break
		}
		if rberr != nil {
			r.Outcome, r.Err = state.OutcomeFailed, fmt.Errorf("%w; rolling back also failed: %w (the account may still be frozen; the next plan proposes a rollback)", err, rberr)
			break
		}
		if terr := a.transition(c, state.PhaseCatchingUp); terr != nil {
			err = errors.Join(err, terr)
		}
		r.Outcome, r.Err = state.OutcomeRolledBack, err
		// A stop, or the hard abort that cancelled the step (the second
		// Ctrl-C), interrupts the cut-over; it did not fail.
		if errors.Is(err, errStopped) || a.ctx.Err() != nil {
			r.Outcome = state.OutcomeInterrupted
		}
	}
	a.finish(c, r)
	return r
}

// awaitBarrier waits on Env.Barrier for ev, at most Env.BarrierTimeout; a
// stop ends the wait like it ends the settle delay.
func (a *applier) awaitBarrier(account string, ev RouteEvent) error {
	d := a.env.BarrierTimeout
	if d <= 0 {
		d = DefaultBarrierTimeout
	}
	ctx, cancel := context.WithTimeout(a.ctx, d)
	defer cancel()
	stop := context.AfterFunc(a.env.Stop, cancel)
	defer stop()
	if err := a.env.Barrier.AwaitRoute(ctx, account, ev); err != nil {
		if a.env.Stop.Err() != nil || a.ctx.Err() != nil {
			return errStopped
		}
		return fmt.Errorf("the proxies did not acknowledge the %s: %w", ev, err)
	}
	return nil
}

func (a *applier) redact(s string) string {
	if a.env.Redact != nil {
		return a.env.Redact(s)
	}
	return s
}

var errStopped = errors.New("stopped by request before the flip")

func (a *applier) transition(c *Change, p state.Phase) error {
	_, err := a.record(state.Record{Type: state.TypeTransition, Account: c.Account, Phase: p})
	return err
}

func (a *applier) finish(c *Change, r *Result) {
	rec := state.Record{Type: state.TypeFinish, Account: c.Account, Action: c.Action.String(), Outcome: r.Outcome}
	if !r.Counts.IsZero() {
		cnt := r.Counts
		rec.Counts = &cnt
	}
	if r.Err != nil {
		rec.Error = r.Err.Error()
	}
	rec.Mismatches = r.Mismatches
	rec.DurationMS = time.Since(r.started).Milliseconds()
	if _, err := a.record(rec); err != nil {
		r.Outcome, r.Err = state.OutcomeFailed, errors.Join(r.Err, err)
	}
}

func (a *applier) record(r state.Record) (state.Record, error) {
	out, err := a.env.Journal.Append(r)
	if err != nil {
		return out, fmt.Errorf("journal: %w", err)
	}
	return out, nil
}
