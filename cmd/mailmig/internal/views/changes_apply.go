package views

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
)

// PlainInterval is how often the plain (non-terminal) progress prints a
// summary line while changes run.
const PlainInterval = 10 * time.Second

// ApplyProgress shows apply's progress through [Progress]. On a terminal it draws one overall
// bar (schollz/progressbar) whose description names the running accounts
// and their steps, and prints a line per finished change above it;
// elsewhere (CI logs) it prints plain lines: one per start, step and end,
// and a summary line every PlainInterval. It implements engine.Hook and is
// safe for concurrent use.
type ApplyProgress struct {
	engine.NopHook
	mu        sync.Mutex
	w         io.Writer
	disp      *Progress
	total     int
	done      int
	running   map[string]string // change ID → step
	lastPlain time.Time
	now       func() time.Time
}

// NewApplyProgress returns the progress display for total changes; tty
// selects the bar.
func (v *View) NewApplyProgress(total int, tty bool) *ApplyProgress {
	p := &ApplyProgress{w: v.Out, total: total, running: map[string]string{}, now: time.Now}
	p.lastPlain = p.now()
	mode := ProgressPlain
	if tty {
		mode = ProgressBar
	}
	p.disp = NewProgress(v.Out, mode, func(w io.Writer) *progressbar.ProgressBar {
		return progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetDescription("applying"),
		)
	}, 0, nil)
	return p
}

// PreAction notes a change that starts.
func (p *ApplyProgress) PreAction(c *engine.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[c.ID] = "starting"
	if p.disp.Plain() {
		p.disp.Line(fmt.Sprintf("%s %s: started", c.Account, c.Action))
		return
	}
	p.describe()
}

// Step notes a change's step.
func (p *ApplyProgress) Step(c *engine.Change, step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running[c.ID] = step
	if p.disp.Plain() {
		if c.Action == engine.Cutover || c.Action == engine.Rollback {
			p.disp.Line(fmt.Sprintf("%s %s: %s", c.Account, c.Action, step))
		}
		return
	}
	p.describe()
}

// Progress prints a periodic summary in plain mode.
func (p *ApplyProgress) Progress(c *engine.Change, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disp.Plain() && p.now().Sub(p.lastPlain) >= PlainInterval {
		p.lastPlain = p.now()
		p.disp.Line(fmt.Sprintf("progress: %d of %d changes done, %d running", p.done, p.total, len(p.running)))
	}
}

// PostAction prints how a change ended.
func (p *ApplyProgress) PostAction(c *engine.Change, r *engine.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.running, c.ID)
	p.done++
	p.disp.Line(resultLine(r))
	if p.disp.Plain() {
		return
	}
	p.describe()
	p.disp.Bar(func(b *progressbar.ProgressBar) { _ = b.Add(1) })
}

// Finish removes the bar.
func (p *ApplyProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.disp.Plain() {
		p.disp.Finish()
		fmt.Fprintln(p.w)
	}
}

func (p *ApplyProgress) describe() {
	ids := make([]string, 0, len(p.running))
	for id := range p.running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var parts []string
	for i, id := range ids {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more", len(ids)-3))
			break
		}
		_, acct, _ := strings.Cut(id, ":")
		parts = append(parts, acct+" ("+p.running[id]+")")
	}
	desc := "applying"
	if len(parts) > 0 {
		desc = strings.Join(parts, ", ")
	}
	p.disp.Bar(func(b *progressbar.ProgressBar) { b.Describe(desc) })
}

// resultLine formats one finished change.
func resultLine(r *engine.Result) string {
	c := r.Change
	switch r.Outcome {
	case state.OutcomeOK:
		return fmt.Sprintf("%s %s: done%s", c.Account, c.Action, countsSuffix(r))
	case engine.OutcomeSkipped:
		return fmt.Sprintf("%s %s: skipped (%s)", c.Account, c.Action, r.Skipped)
	case state.OutcomeRolledBack:
		return fmt.Sprintf("%s %s: ROLLED BACK to %s, unfrozen: %s", c.Account, c.Action, c.Source, r.Error)
	case state.OutcomeInterrupted:
		return fmt.Sprintf("%s %s: interrupted (%s)", c.Account, c.Action, r.Error)
	}
	return fmt.Sprintf("%s %s: FAILED: %s", c.Account, c.Action, r.Error)
}

func countsSuffix(r *engine.Result) string {
	var parts []string
	if n := r.Counts.Messages; n > 0 {
		parts = append(parts, countNoun(int(n), "message"))
	}
	if r.Duration > 0 {
		parts = append(parts, r.Duration.Round(time.Millisecond).String())
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// Stopping says what the first Ctrl-C (or SIGTERM, named by by) does:
// the running actions finish, nothing new starts.
func (p *ApplyProgress) Stopping(by string) {
	p.mu.Lock()
	n := len(p.running)
	p.mu.Unlock()
	p.disp.Line(fmt.Sprintf("stopping (%s): %s will finish, nothing new starts; Ctrl-C again to abort (a cut-over not yet flipped is rolled back)", by, countNoun(n, "running action")))
}

// Aborting says what the second Ctrl-C does.
func (p *ApplyProgress) Aborting() {
	p.mu.Lock()
	n := len(p.running)
	p.mu.Unlock()
	p.disp.Line(fmt.Sprintf("aborting: cancelling %s now; a frozen account is routed back to its source and the journal written before mailmig exits", countNoun(n, "running action")))
}

// ApplyFailed reports whether a run did not do everything it set out to
// do: a change failed, rolled back or was interrupted, a change was
// skipped (a stop, a halted wave, a failed dependency), or a backend's
// circuit breaker is open. apply then exits 1.
func ApplyFailed(res *engine.ApplyResult) bool {
	return res.Failed+res.RolledBack+res.Interrupted+res.Skipped > 0 || len(res.OpenBreakers) > 0
}

// ApplySummary prints the outcome of a run: a closing line that says what
// happened ("Apply complete!" only when every change succeeded), then, on
// standard error, each change that did not succeed and each unreachable
// backend. stoppedBy names what stopped the run (Ctrl-C, SIGTERM), "" when
// nothing did.
func (v *View) ApplySummary(res *engine.ApplyResult, stoppedBy string) {
	total := len(res.Results)
	counts := fmt.Sprintf("%s: %d ok, %d failed, %d rolled back, %d interrupted, %d not run.",
		countNoun(total, "change"), res.OK, res.Failed, res.RolledBack, res.Interrupted, res.Skipped)
	if !ApplyFailed(res) {
		msg := "Apply complete! " + counts
		if res.Stopped {
			msg += " (" + stoppedBy + " came after the last change had started; nothing was left out.)"
		}
		fmt.Fprintf(v.Out, "\n%s\n", v.paint(colorBold+colorGreen, msg))
		return
	}
	var msg string
	switch {
	case res.Stopped:
		msg = fmt.Sprintf("Apply stopped by %s: running actions finished, %d did not start. %s", stoppedBy, res.Skipped, counts)
	case len(res.OpenBreakers) > 0:
		names := slices.Sorted(maps.Keys(res.OpenBreakers))
		msg = fmt.Sprintf("Apply halted: backend %s unreachable, circuit breaker open, its waves halted. %s", strings.Join(names, ", "), counts)
	case res.Failed+res.RolledBack+res.Interrupted > 0:
		var what []string
		if n := rolledBackCutovers(res); n > 0 {
			what = append(what, countNoun(n, "cut-over")+" rolled back (accounts back on their source, unfrozen)")
		}
		if res.Failed > 0 {
			what = append(what, fmt.Sprintf("%d failed", res.Failed))
		}
		if res.Interrupted > 0 {
			what = append(what, fmt.Sprintf("%d interrupted", res.Interrupted))
		}
		msg = "Apply finished with errors: " + strings.Join(what, ", ") + ". " + counts
	default:
		msg = "Apply incomplete: " + skipReasons(res) + ". " + counts
	}
	fmt.Fprintf(v.Out, "\n%s\n", v.paint(colorBold+colorYellow, msg))
	for _, r := range res.Results {
		switch r.Outcome {
		case state.OutcomeFailed, state.OutcomeRolledBack, state.OutcomeInterrupted:
			fmt.Fprintf(v.Err, "  %s\n", resultLine(r))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(res.OpenBreakers)) {
		fmt.Fprintf(v.Err, "  backend %s is unreachable, its circuit breaker opened and its waves halted: %s\n", name, res.OpenBreakers[name])
	}
	fmt.Fprintf(v.Out, "Run \"mailmig plan\" to see what is left; a new apply resumes (it probes an unreachable backend first).\n")
}

func rolledBackCutovers(res *engine.ApplyResult) int {
	n := 0
	for _, r := range res.Results {
		if r.Outcome == state.OutcomeRolledBack {
			n++
		}
	}
	return n
}

// skipReasons says why changes did not run, most frequent first.
func skipReasons(res *engine.ApplyResult) string {
	n := map[string]int{}
	for _, r := range res.Results {
		if r.Outcome == engine.OutcomeSkipped {
			n[r.Skipped]++
		}
	}
	keys := slices.SortedFunc(maps.Keys(n), func(a, b string) int {
		if n[a] != n[b] {
			return n[b] - n[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d not run (%s)", n[k], k))
	}
	return strings.Join(parts, "; ")
}
