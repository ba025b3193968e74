package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// fakeWorld is a source, a target and a route table in memory.
type fakeWorld struct {
	mu       sync.Mutex
	source   map[string]int64 // messages on the source per account
	archive  map[string]int64
	target   map[string]int64
	routes   map[string]Route
	fail     map[string]string // "account/step" → error text
	mismatch map[string]int64
	// conflicts are what exports and verifies report kept at the
	// target's version (nil: none).
	conflicts map[string]int64
	// named, when it has the account, makes Verify name its mismatches
	// (a *VerifyError), as the real executor does.
	named map[string][]state.Mismatch
	// running counts concurrent executor calls per backend and in total.
	running, maxRunning map[string]int
	calls               []string
	// block, when set, is closed to let executor calls continue.
	block   chan struct{}
	entered chan string
}

func newWorld() *fakeWorld {
	return &fakeWorld{source: map[string]int64{}, archive: map[string]int64{}, target: map[string]int64{}, routes: map[string]Route{},
		fail: map[string]string{}, mismatch: map[string]int64{}, running: map[string]int{}, maxRunning: map[string]int{}}
}

func (w *fakeWorld) enter(job *Job, step string, backends ...string) error {
	w.mu.Lock()
	k := Key(job.Account.Address)
	w.calls = append(w.calls, step+" "+k)
	for _, b := range append(backends, "total", "wave:"+job.Change.Wave) {
		w.running[b]++
		w.maxRunning[b] = max(w.maxRunning[b], w.running[b])
	}
	msg := w.fail[k+"/"+step]
	block, entered := w.block, w.entered
	w.mu.Unlock()
	if entered != nil {
		entered <- step + " " + k
	}
	if block != nil {
		<-block
	}
	if msg != "" {
		return errors.New(msg)
	}
	return nil
}

func (w *fakeWorld) leave(job *Job, backends ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range append(backends, "total", "wave:"+job.Change.Wave) {
		w.running[b]--
	}
}

func (w *fakeWorld) Import(ctx context.Context, job *Job) (state.Counts, error) {
	defer w.leave(job, job.Change.Source)
	if err := w.enter(job, "import", job.Change.Source); err != nil {
		return state.Counts{}, err
	}
	if err := job.Source.WaitMessages(ctx, 1); err != nil {
		return state.Counts{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	k := Key(job.Account.Address)
	n := w.source[k] - w.archive[k]
	w.archive[k] = w.source[k]
	job.Progress(n, n)
	return state.Counts{Messages: n, New: n, Bytes: n * 1000}, nil
}

func (w *fakeWorld) Export(ctx context.Context, job *Job) (state.Counts, error) {
	defer w.leave(job, job.Change.Target)
	if err := w.enter(job, "export", job.Change.Target); err != nil {
		return state.Counts{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	k := Key(job.Account.Address)
	n := w.archive[k] - w.target[k]
	w.target[k] = w.archive[k]
	return state.Counts{Messages: n, Bytes: n * 1000, Conflicts: w.conflicts[k]}, nil
}

func (w *fakeWorld) Verify(ctx context.Context, job *Job) (state.Counts, error) {
	defer w.leave(job)
	if err := w.enter(job, "verify"); err != nil {
		return state.Counts{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	k := Key(job.Account.Address)
	c := state.Counts{Messages: w.target[k], Mismatches: w.mismatch[k], Conflicts: w.conflicts[k]}
	if w.source[k] != w.target[k] {
		c.Mismatches++
	}
	if n, ok := w.named[k]; ok && c.Mismatches > 0 {
		return c, &VerifyError{Total: int(c.Mismatches), Mismatches: n}
	}
	return c, nil
}

func (w *fakeWorld) SetRoute(ctx context.Context, account, backend string, frozen bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if msg := w.fail[account+"/route:"+backend]; msg != "" {
		return errors.New(msg)
	}
	r := w.routes[account]
	if r.Backend != backend || r.Frozen != frozen {
		r.Generation++
	}
	r.Backend, r.Frozen = backend, frozen
	w.routes[account] = r
	return nil
}

func (w *fakeWorld) Routes(ctx context.Context) (map[string]Route, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]Route, len(w.routes))
	for k, v := range w.routes {
		out[k] = v
	}
	return out, nil
}

// harness runs plan → apply rounds against a fake world and a real
// journal.
type harness struct {
	t     *testing.T
	w     *fakeWorld
	j     *state.Journal
	dir   string
	clock FixedClock
	par   int
	// barrier is Env.Barrier; nil means none.
	barrier Barrier
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	j, err := state.Open(dir, &state.Options{NoSync: true, Actor: "test@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	w := newWorld()
	for _, x := range []string{"a", "b", "c", "d", "e"} {
		w.source[x+"@example.test"] = 300
	}
	return &harness{t: t, w: w, j: j, dir: dir, clock: FixedClock{night}, par: 10}
}

func (h *harness) plan(targets ...string) *Changes {
	h.t.Helper()
	obs, diags := Observe(context.Background(), testPlan(), h.j.State(), &ObserveOptions{Routes: h.w})
	if diags.HasErrors() {
		h.t.Fatal(diags.Err())
	}
	ch, diags := Diff(testPlan(), obs, &DiffOptions{Clock: h.clock, Targets: targets})
	if diags.HasErrors() {
		h.t.Fatal(diags.Err())
	}
	return ch
}

func (h *harness) apply(ch *Changes, stop context.Context, hs ...Hook) *ApplyResult {
	h.t.Helper()
	m := testPlan()
	res, err := Apply(context.Background(), ch, &Env{Plan: m, Executor: h.w, Router: h.w, Journal: h.j, Limiters: NewLimiters(m), Parallelism: h.par, Stop: stop, Barrier: h.barrier}, hs...)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) phase(acct string) state.Phase {
	if a := h.j.Account(acct); a != nil {
		return a.Phase
	}
	return state.PhasePending
}

func (h *harness) verifyJournal() {
	h.t.Helper()
	res, err := state.Verify(h.dir)
	if err != nil || !res.OK {
		h.t.Fatalf("journal verify: %+v %v", res, err)
	}
}

func TestApplyLifecycle(t *testing.T) {
	h := newHarness(t)
	// Round 1: staging.
	res := h.apply(h.plan(), nil)
	if res.OK != 10 || res.Err() != nil {
		t.Fatalf("staging: %+v", res)
	}
	for _, a := range []string{"a", "e"} {
		if p := h.phase(a + "@example.test"); p != state.PhaseStaged {
			t.Fatalf("%s phase %s", a, p)
		}
	}
	// Round 2: the last pass copied 300 > 100: catch up (pilot only; the
	// second wave waits for pilot and nothing changed).
	h.w.source["a@example.test"] += 5
	ch := h.plan()
	if got := changeList(ch); len(got) != 2 || got[0] != "~ catch-up a@example.test" {
		t.Fatalf("round 2: %v", got)
	}
	h.apply(ch, nil)
	if a := h.j.Account("a@example.test"); a.Phase != state.PhaseCatchingUp || a.LastPassCounts.Messages != 5 {
		t.Fatalf("after catch-up: %+v", a)
	}
	// Round 3: pilot cuts over.
	h.w.source["a@example.test"] += 2 // arrives before the freeze
	ch = h.plan()
	if got := changeList(ch); len(got) != 2 || got[0] != "> cutover a@example.test" {
		t.Fatalf("round 3: %v", got)
	}
	if res := h.apply(ch, nil); res.OK != 2 {
		t.Fatalf("cutover: %+v", res.Results[0])
	}
	if r := h.w.routes["a@example.test"]; r.Backend != "stalwart" || r.Frozen {
		t.Fatalf("route after cut-over: %+v", r)
	}
	if h.w.target["a@example.test"] != 307 || h.phase("a@example.test") != state.PhaseDone {
		t.Fatalf("target has %d, phase %s", h.w.target["a@example.test"], h.phase("a@example.test"))
	}
	// Round 4: the second wave catches up, round 5 cuts over; then nothing.
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil)
	ch = h.plan()
	if !ch.Empty() || ch.Summary.Done != 5 {
		t.Fatalf("not converged: %v %+v", changeList(ch), ch.Summary)
	}
	serial := h.j.Serial()
	h.apply(ch, nil)
	if h.j.Serial() != serial {
		t.Fatal("no-op apply advanced the serial")
	}
	h.verifyJournal()
}

// barrierFunc is a Barrier from a function.
type barrierFunc func(ctx context.Context, account string, ev RouteEvent) error

func (f barrierFunc) AwaitRoute(ctx context.Context, account string, ev RouteEvent) error {
	return f(ctx, account, ev)
}

// TestApplyCutoverBarrier: with a barrier the cut-over waits for it after
// the freeze (frozen on the source) and after the flip (frozen on the
// target), and a barrier that times out rolls the account back.
func TestApplyCutoverBarrier(t *testing.T) {
	for name, fail := range map[string]bool{"acknowledged": false, "timed out": true} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.apply(h.plan(), nil)
			h.apply(h.plan(), nil) // catch-up of the pilot
			var mu sync.Mutex
			var seen []string
			h.barrier = barrierFunc(func(_ context.Context, account string, ev RouteEvent) error {
				mu.Lock()
				defer mu.Unlock()
				r := h.w.routes[account]
				seen = append(seen, fmt.Sprintf("%s %s %s frozen=%v", ev, account, r.Backend, r.Frozen))
				if fail {
					return errors.New("proxies did not acknowledge the route change")
				}
				return nil
			})
			res := h.apply(h.plan(), nil)
			// Each cut-over (a and b run in parallel) waits right after
			// its freeze (frozen, still on the source) and, unless that
			// failed, after its flip (frozen, on the target).
			if !slices.Contains(seen, "freeze a@example.test legacy frozen=true") {
				t.Fatalf("barrier saw %q", seen)
			}
			if fail == slices.Contains(seen, "flip a@example.test stalwart frozen=true") {
				t.Fatalf("barrier saw %q", seen)
			}
			for _, s := range seen {
				if !strings.HasSuffix(s, " legacy frozen=true") && !strings.HasSuffix(s, " stalwart frozen=true") {
					t.Fatalf("barrier saw %q", seen)
				}
			}
			var a *Result
			for _, r := range res.Results {
				if r.Change.ID == "cutover:a@example.test" {
					a = r
				}
			}
			switch {
			case a == nil:
				t.Fatal("no cut-over of a")
			case fail && (a.Outcome != state.OutcomeRolledBack || !strings.Contains(a.Err.Error(), "did not acknowledge the freeze")):
				t.Fatalf("a with a failing barrier: %+v", a)
			case !fail && a.Outcome != state.OutcomeOK:
				t.Fatalf("a: %+v", a)
			}
			if r := h.w.routes["a@example.test"]; r.Frozen || (fail && r.Backend != "legacy") || (!fail && r.Backend != "stalwart") {
				t.Fatalf("route after the cut-over: %+v", r)
			}
			h.verifyJournal()
		})
	}
}

func TestApplyCutoverFailureRollsBack(t *testing.T) {
	h := newHarness(t)
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil) // catch-up of the pilot
	h.w.mismatch["a@example.test"] = 2
	ch := h.plan()
	res := h.apply(ch, nil)
	var a, b *Result
	for _, r := range res.Results {
		switch r.Change.ID {
		case "cutover:a@example.test":
			a = r
		case "cutover:b@example.test":
			b = r
		}
	}
	if a == nil || a.Outcome != state.OutcomeRolledBack || a.Counts.Mismatches != 2 {
		t.Fatalf("a: %+v", a)
	}
	if r := h.w.routes["a@example.test"]; r.Backend != "legacy" || r.Frozen {
		t.Fatalf("route after rollback: %+v", r)
	}
	if st := h.j.Account("a@example.test"); st.Phase != state.PhaseCatchingUp || st.FailedCutovers != 1 {
		t.Fatalf("state after rollback: %+v", st)
	}
	// b ran in parallel or was skipped because the wave halted.
	if b == nil || (b.Outcome != state.OutcomeOK && b.Outcome != OutcomeSkipped) {
		t.Fatalf("b: %+v", b)
	}
	// The next plan sees the halted wave.
	ch = h.plan()
	if ch.Waves[0].Status != WaveHalted {
		t.Fatalf("wave status %s", ch.Waves[0].Status)
	}
	h.verifyJournal()
}

// TestApplyCutoverWithConflicts: conflicts (the user's own versions kept
// at the target) do not stop a cut-over; its finish record carries their
// count, and so do the catch-up's.
func TestApplyCutoverWithConflicts(t *testing.T) {
	h := newHarness(t)
	h.apply(h.plan(), nil)
	h.w.conflicts = map[string]int64{"a@example.test": 3}
	h.apply(h.plan(), nil) // catch-up of the pilot
	res := h.apply(h.plan(), nil)
	var a *Result
	for _, r := range res.Results {
		if r.Change.ID == "cutover:a@example.test" {
			a = r
		}
	}
	if a == nil || a.Outcome != state.OutcomeOK || a.Counts.Conflicts != 3 || a.Counts.Mismatches != 0 {
		t.Fatalf("a: %+v", a)
	}
	got := map[string]int64{}
	state.ReadRecords(h.dir, func(rec *state.Record) bool {
		if rec.Type == state.TypeFinish && rec.Account == "a@example.test" && rec.Outcome == state.OutcomeOK && rec.Counts != nil {
			got[rec.Action] = rec.Counts.Conflicts
		}
		return true
	})
	if got["catch-up"] != 3 || got["cutover"] != 3 {
		t.Errorf("journaled conflicts by action: %v, want 3 for catch-up and cutover", got)
	}
	h.verifyJournal()
}

// TestApplyCutoverVerifyNamesMismatches: the mismatches a verify names
// reach the rolled-back finish record (capped), the state and the next
// plan; a release forgets them.
func TestApplyCutoverVerifyNamesMismatches(t *testing.T) {
	h := newHarness(t)
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil) // catch-up of the pilot
	var named []state.Mismatch
	for i := range 25 {
		named = append(named, state.Mismatch{Kind: "extra", Mailbox: "INBOX", MessageID: fmt.Sprintf("stray%d@example.test", i), TargetID: fmt.Sprint("M", i)})
	}
	h.w.mismatch["a@example.test"] = 25
	h.w.named = map[string][]state.Mismatch{"a@example.test": named}
	res := h.apply(h.plan(), nil)
	var a *Result
	for _, r := range res.Results {
		if r.Change.ID == "cutover:a@example.test" {
			a = r
		}
	}
	if a == nil || a.Outcome != state.OutcomeRolledBack || a.Counts.Mismatches != 25 || len(a.Mismatches) != state.MaxRecordedMismatches ||
		a.Err == nil || a.Err.Error() != "verify found 25 mismatches between source and target" {
		t.Fatalf("a: %+v", a)
	}
	st := h.j.Account("a@example.test")
	if st.Mismatches != 25 || len(st.VerifyMismatches) != state.MaxRecordedMismatches || st.VerifyMismatches[0] != named[0] {
		t.Fatalf("state after rollback: %+v", st)
	}
	var lv *LastVerify
	for _, w := range h.plan().Waves {
		for _, x := range w.Waiting {
			if x.Account == "a@example.test" {
				lv = x.LastVerify
			}
		}
		for _, c := range w.Changes {
			if c.Account == "a@example.test" {
				lv = c.LastVerify
			}
		}
	}
	if lv == nil || lv.Total != 25 || len(lv.Mismatches) != state.MaxRecordedMismatches {
		t.Fatalf("plan's last verify: %+v", lv)
	}
	if _, err := h.j.Append(state.Record{Type: state.TypeRelease, Account: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	if st := h.j.Account("a@example.test"); st.Mismatches != 0 || st.VerifyMismatches != nil {
		t.Fatalf("state after release: %+v", st)
	}
	h.verifyJournal()
}

func TestApplyWaveHaltsInRun(t *testing.T) {
	h := newHarness(t)
	h.par = 1 // strictly one at a time: a fails first, b must be skipped
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil)
	h.w.fail["a@example.test/verify"] = "target unreachable"
	res := h.apply(h.plan(), nil)
	out := map[string]*Result{}
	for _, r := range res.Results {
		out[r.Change.ID] = r
	}
	if r := out["cutover:a@example.test"]; r.Outcome != state.OutcomeRolledBack {
		t.Fatalf("a: %+v", r)
	}
	if r := out["cutover:b@example.test"]; r.Outcome != OutcomeSkipped || r.Skipped == "" {
		t.Fatalf("b: %+v", r)
	}
	if r := h.w.routes["b@example.test"]; r.Frozen || r.Backend == "stalwart" {
		t.Fatalf("b route touched: %+v", r)
	}
}

func TestApplyFailureSkipsDependents(t *testing.T) {
	h := newHarness(t)
	h.w.fail["c@example.test/import"] = "connection refused"
	res := h.apply(h.plan(), nil)
	out := map[string]*Result{}
	for _, r := range res.Results {
		out[r.Change.ID] = r
	}
	if out["import:c@example.test"].Outcome != state.OutcomeFailed || out["export:c@example.test"].Outcome != OutcomeSkipped {
		t.Fatalf("c: %+v %+v", out["import:c@example.test"], out["export:c@example.test"])
	}
	if res.OK != 8 || res.Failed != 1 || res.Skipped != 1 {
		t.Fatalf("counts: %+v", res)
	}
	if a := h.j.Account("c@example.test"); a.LastError != "connection refused" || a.InFlight != "" {
		t.Fatalf("journal: %+v", a)
	}
	// The next plan retries the import.
	delete(h.w.fail, "c@example.test/import")
	if got := changeList(h.plan("c@example.test")); len(got) != 2 {
		t.Fatalf("retry: %v", got)
	}
}

func TestApplyLimits(t *testing.T) {
	h := newHarness(t)
	h.par = 3
	h.apply(h.plan(), nil)
	if got := h.w.maxRunning["legacy"]; got > 2 {
		t.Errorf("legacy had %d concurrent imports, limit 2", got)
	}
	if got := h.w.maxRunning["stalwart"]; got > 3 {
		t.Errorf("stalwart had %d concurrent exports, limit 3", got)
	}
	if got := h.w.maxRunning["total"]; got > 3 {
		t.Errorf("%d concurrent changes, parallelism 3", got)
	}
	if got := h.w.maxRunning["wave:everyone"]; got > 2 {
		t.Errorf("wave everyone ran %d at once, max_parallel 2", got)
	}
}

// stepHook cancels the stop context when a change reaches a step.
type stepHook struct {
	NopHook
	at     string
	cancel context.CancelFunc
	steps  []string
	mu     sync.Mutex
}

func (s *stepHook) Step(c *Change, step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, c.ID+" "+step)
	if c.Action == Cutover && step == s.at {
		s.cancel()
	}
}

func TestApplyStopMidCutoverRollsBack(t *testing.T) {
	h := newHarness(t)
	h.par = 1
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil)
	stop, cancel := context.WithCancel(context.Background())
	hook := &stepHook{at: "final catch-up", cancel: cancel}
	res := h.apply(h.plan(), stop, hook)
	if !res.Stopped {
		t.Fatal("not stopped")
	}
	first := res.Results[0]
	if first.Change.ID != "cutover:a@example.test" || first.Outcome != state.OutcomeInterrupted {
		t.Fatalf("first: %+v", first)
	}
	if r := h.w.routes["a@example.test"]; r.Backend != "legacy" || r.Frozen {
		t.Fatalf("route after stop: %+v", r)
	}
	if res.Results[1].Outcome != OutcomeSkipped {
		t.Fatalf("second change started after stop: %+v", res.Results[1])
	}
	if p := h.phase("a@example.test"); p != state.PhaseCatchingUp {
		t.Fatalf("phase %s", p)
	}
	// An interrupted (not failed) cut-over does not halt the wave.
	if ch := h.plan(); ch.Waves[0].Status != WaveOpen {
		t.Fatalf("wave %s: %s", ch.Waves[0].Status, ch.Waves[0].Note)
	}
}

func TestApplyStopAfterFlipFinishes(t *testing.T) {
	h := newHarness(t)
	h.par = 1
	h.apply(h.plan(), nil)
	h.apply(h.plan(), nil)
	stop, cancel := context.WithCancel(context.Background())
	res := h.apply(h.plan(), stop, &stepHook{at: "flip", cancel: cancel})
	if r := res.Results[0]; r.Outcome != state.OutcomeOK {
		t.Fatalf("cut-over stopped at the flip: %+v", r)
	}
	if r := h.w.routes["a@example.test"]; r.Backend != "stalwart" || r.Frozen {
		t.Fatalf("route: %+v", r)
	}
}

// TestCrashMidCutover replays a kill -9 at every step of a cut-over: the
// journal and the route table are left as the step left them, and the next
// plan+apply must converge with nobody frozen.
func TestCrashMidCutover(t *testing.T) {
	steps := []string{"freeze", "final catch-up", "verify", "flip", "unfreeze"}
	for _, crashAt := range steps {
		for _, window := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/window=%v", crashAt, window), func(t *testing.T) {
				h := newHarness(t)
				h.par = 1
				h.apply(h.plan(), nil)
				h.apply(h.plan(), nil)
				// Crash: run the cut-over with a hook that records the journal
				// and routes at the step, then restore them as the "disk".
				snap := crashSnapshot(t, h, crashAt)
				h2 := snap
				if !window {
					h2.clock = FixedClock{day}
				}
				for round := 0; round < 4; round++ {
					ch := h2.plan()
					if ch.Empty() {
						break
					}
					h2.apply(ch, nil)
				}
				for acct, r := range h2.w.routes {
					if r.Frozen {
						t.Fatalf("%s left frozen: %+v", acct, r)
					}
				}
				p := h2.phase("a@example.test")
				r := h2.w.routes["a@example.test"]
				switch {
				case p == state.PhaseDone && r.Backend == "stalwart":
				case p == state.PhaseCatchingUp && r.Backend == "legacy" && !window:
				default:
					t.Fatalf("did not converge: phase %s route %+v", p, r)
				}
				if h2.w.target["a@example.test"] != h2.w.source["a@example.test"] && p == state.PhaseDone {
					t.Fatal("target lacks messages after cut-over")
				}
				h2.verifyJournal()
			})
		}
	}
}

// crashHook copies the world and journal when a step starts, then stops
// everything else from happening (as SIGKILL would).
type crashHook struct {
	NopHook
	at   string
	once sync.Once
	save func()
}

func (c *crashHook) Step(ch *Change, step string) {
	if ch.Action == Cutover && step == c.at {
		c.once.Do(c.save)
	}
}

func crashSnapshot(t *testing.T, h *harness, at string) *harness {
	t.Helper()
	var saved *harness
	hook := &crashHook{at: at}
	hook.save = func() {
		// The step has been announced but not run: everything before it
		// is on disk.
		dir := t.TempDir()
		copyDir(t, h.dir, dir)
		j, err := state.Open(dir, &state.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { j.Close() })
		w := newWorld()
		h.w.mu.Lock()
		for k, v := range h.w.source {
			w.source[k] = v
		}
		for k, v := range h.w.archive {
			w.archive[k] = v
		}
		for k, v := range h.w.target {
			w.target[k] = v
		}
		for k, v := range h.w.routes {
			w.routes[k] = v
		}
		h.w.mu.Unlock()
		saved = &harness{t: t, w: w, j: j, dir: dir, clock: h.clock, par: 1}
	}
	h.apply(h.plan("a@example.test"), nil, hook)
	if saved == nil {
		t.Fatalf("step %s never reached", at)
	}
	// Mail keeps arriving after the crash: at the source, or at the target
	// once the route was flipped (the proxy delivers there).
	saved.w.source["a@example.test"]++
	if saved.w.routes["a@example.test"].Backend == "stalwart" {
		saved.w.target["a@example.test"]++
	}
	return saved
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	var recs []state.Record
	if err := state.ReadRecords(from, func(r *state.Record) bool { recs = append(recs, *r); return true }); err != nil {
		t.Fatal(err)
	}
	j, err := state.Open(to, &state.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, r := range recs[1:] { // the init record is rewritten with a new lineage
		r.Seq, r.Prev = 0, ""
		if _, err := j.Append(r); err != nil {
			t.Fatal(err)
		}
	}
}
