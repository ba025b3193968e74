package views

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mailmig/mailmig/engine"
)

// PlainInterval is how often the plain (non-terminal) progress prints a
// line per running account while its step reports work.
const PlainInterval = 10 * time.Second

// frameInterval is how often the terminal display redraws its bars.
const frameInterval = 200 * time.Millisecond

// maxBarLines bounds the per-account bars drawn at once (the rest are
// counted on the overall line), so the frame fits a terminal.
const maxBarLines = 12

// ApplyProgress shows apply's progress through engine.Hook and
// engine.WorkHook, in messages and bytes as the executors report them.
// On a terminal it draws one progressbar/v3 bar per running account
// (its action, step, messages and bytes of the step's totals, rate and
// time left) plus an overall bar of changes, redrawn in place, and prints
// a line per finished change above them. Elsewhere (CI logs) it prints
// timestamped lines: one per start, cut-over step and end, and per running
// account a line of messages, bytes, rate and time left at most every
// PlainInterval and when a step's work completes. It is safe for
// concurrent use.
type ApplyProgress struct {
	engine.NopHook
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	now     func() time.Time
	start   time.Time
	total   int
	done    int
	bytes   int64 // bytes of finished steps
	running map[string]*accountWork
	// terminal only
	overall *progressbar.ProgressBar
	lines   int // lines of the frame on screen
	stop    chan struct{}
	wg      sync.WaitGroup
}

// accountWork is one running change.
type accountWork struct {
	c         *engine.Change
	step      string
	work      engine.Work
	stepStart time.Time
	lastLine  time.Time
	bar       *progressbar.ProgressBar
}

// NewApplyProgress returns the progress display for total changes; tty
// selects the bars. now stamps the plain lines (nil: time.Now).
func (v *View) NewApplyProgress(total int, tty bool, now func() time.Time) *ApplyProgress {
	if now == nil {
		now = time.Now
	}
	p := &ApplyProgress{w: v.Out, tty: tty, now: now, total: total, running: map[string]*accountWork{}}
	p.start = time.Now()
	if tty {
		p.overall = progressbar.NewOptions(total, progressbar.OptionSetWriter(io.Discard), progressbar.OptionSetWidth(20),
			progressbar.OptionShowCount(), progressbar.OptionSetElapsedTime(true), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(0), progressbar.OptionSetRenderBlankState(true), progressbar.OptionSetDescription("overall"))
		p.stop = make(chan struct{})
		p.wg.Add(1)
		go p.redraw()
	}
	return p
}

// redraw draws the frame every frameInterval until Finish.
func (p *ApplyProgress) redraw() {
	defer p.wg.Done()
	t := time.NewTicker(frameInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.drawLocked()
			p.mu.Unlock()
		}
	}
}

// clearLocked removes the frame from the screen: up, clear each line.
func (p *ApplyProgress) clearLocked() {
	if p.lines == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("\r")
	for i := 0; i < p.lines; i++ {
		b.WriteString("\x1b[1A\x1b[2K")
	}
	io.WriteString(p.w, b.String())
	p.lines = 0
}

// drawLocked draws the frame: a bar per running account (at most
// maxBarLines), then the overall bar.
func (p *ApplyProgress) drawLocked() {
	if !p.tty {
		return
	}
	p.clearLocked()
	var b strings.Builder
	ids := p.runningIDs()
	for i, id := range ids {
		if i == maxBarLines {
			break
		}
		a := p.running[id]
		b.WriteString(barText(a.bar, p.describe(a)))
		b.WriteString("\n")
	}
	more := ""
	if len(ids) > maxBarLines {
		more = fmt.Sprintf(", %d more running", len(ids)-maxBarLines)
	}
	p.overall.Describe(fmt.Sprintf("overall: %d running%s, %s moved", len(ids), more, fmtBytes(p.bytesLocked())))
	_ = p.overall.Set(p.done)
	b.WriteString(barText(p.overall, ""))
	b.WriteString("\n")
	io.WriteString(p.w, b.String())
	p.lines = min(len(ids), maxBarLines) + 1
}

// barText is a bar's rendering as one line.
func barText(bar *progressbar.ProgressBar, desc string) string {
	if desc != "" {
		bar.Describe(desc)
	}
	return strings.TrimRight(strings.TrimLeft(bar.String(), "\r"), " ")
}

func (p *ApplyProgress) runningIDs() []string {
	ids := make([]string, 0, len(p.running))
	for id := range p.running {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (p *ApplyProgress) bytesLocked() int64 {
	n := p.bytes
	for _, a := range p.running {
		n += a.work.Bytes
	}
	return n
}

// describe is a running account's bar description.
func (p *ApplyProgress) describe(a *accountWork) string {
	s := fmt.Sprintf("%s %s", a.c.Account, a.c.Action)
	if a.step != "" && a.step != a.c.Action.String() {
		s += " " + a.step
	}
	if w := a.work; w.TotalMessages > 0 || w.Messages > 0 {
		s += fmt.Sprintf(" %s/%s msgs", fmtInt(w.Messages), fmtInt(w.TotalMessages))
	}
	return s
}

// line prints a line above the frame (terminal) or with a timestamp.
func (p *ApplyProgress) lineLocked(s string) {
	if p.tty {
		p.clearLocked()
		fmt.Fprintf(p.w, "%s\n", s)
		p.drawLocked()
		return
	}
	fmt.Fprintf(p.w, "%s %s\n", p.now().UTC().Format("2006-01-02T15:04:05Z"), s)
}

// PreAction notes a change that starts.
func (p *ApplyProgress) PreAction(c *engine.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := &accountWork{c: c, stepStart: time.Now(), lastLine: time.Now()}
	if p.tty {
		a.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(io.Discard), progressbar.OptionSetWidth(20),
			progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(0),
			progressbar.OptionSetRenderBlankState(true), progressbar.OptionSetDescription(c.Account))
	}
	p.running[c.ID] = a
	if !p.tty {
		p.lineLocked(fmt.Sprintf("%s %s: started", c.Account, c.Action))
	}
}

// Step notes a change's step; the step's work starts from zero.
func (p *ApplyProgress) Step(c *engine.Change, step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.running[c.ID]
	if a == nil {
		return
	}
	p.bytes += a.work.Bytes
	a.step, a.work, a.stepStart, a.lastLine = step, engine.Work{}, time.Now(), time.Now()
	if a.bar != nil {
		a.bar.Reset()
		a.bar.ChangeMax64(-1)
	}
	if !p.tty && (c.Action == engine.Cutover || c.Action == engine.Rollback) {
		p.lineLocked(fmt.Sprintf("%s %s: %s", c.Account, c.Action, step))
	}
}

// Progress takes the messages of executors that report no bytes.
func (p *ApplyProgress) Progress(c *engine.Change, done, total int64) {
	p.mu.Lock()
	a := p.running[c.ID]
	if a == nil || a.work.Bytes > 0 || a.work.TotalBytes > 0 {
		p.mu.Unlock()
		return
	}
	w := a.work
	w.Messages, w.TotalMessages = done, total
	p.mu.Unlock()
	p.Work(c, w)
}

// Work notes messages and bytes of the running step (engine.WorkHook).
func (p *ApplyProgress) Work(c *engine.Change, w engine.Work) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.running[c.ID]
	if a == nil {
		return
	}
	a.work = w
	if a.bar != nil {
		if w.TotalBytes > 0 {
			a.bar.ChangeMax64(w.TotalBytes)
		}
		_ = a.bar.Set64(w.Bytes)
		return
	}
	complete := w.TotalMessages > 0 && w.Messages >= w.TotalMessages
	now := time.Now()
	if complete || now.Sub(a.lastLine) >= PlainInterval {
		a.lastLine = now
		p.lineLocked(workLine(a, now))
	}
}

// workLine is the plain line of a running account: "alice@example.org
// import: 120 of 400 messages, 1.2 MiB of 4.0 MiB, 310.0 KiB/s, about 9s
// left".
func workLine(a *accountWork, now time.Time) string {
	w := a.work
	step := a.step
	if step == "" {
		step = a.c.Action.String()
	}
	s := fmt.Sprintf("%s %s", a.c.Account, a.c.Action)
	if step != a.c.Action.String() {
		s += " " + step
	}
	s += fmt.Sprintf(": %s of %s messages", fmtInt(w.Messages), fmtInt(w.TotalMessages))
	if w.TotalBytes > 0 || w.Bytes > 0 {
		s += fmt.Sprintf(", %s of %s", fmtBytes(w.Bytes), fmtBytes(w.TotalBytes))
	}
	el := now.Sub(a.stepStart).Seconds()
	if el <= 0 || w.Bytes == 0 {
		return s
	}
	rate := float64(w.Bytes) / el
	s += fmt.Sprintf(", %s/s", fmtBytes(int64(rate)))
	if left := w.TotalBytes - w.Bytes; left > 0 && rate > 0 {
		s += fmt.Sprintf(", about %s left", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
	}
	return s
}

// PostAction prints how a change ended.
func (p *ApplyProgress) PostAction(c *engine.Change, r *engine.Result) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.running[c.ID]; a != nil {
		p.bytes += a.work.Bytes
		delete(p.running, c.ID)
	}
	p.done++
	p.lineLocked(resultLine(r))
}

// Stopping says what the first Ctrl-C (or SIGTERM, named by by) does:
// the running actions finish, nothing new starts.
func (p *ApplyProgress) Stopping(by string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lineLocked(fmt.Sprintf("stopping (%s): %s will finish, nothing new starts; Ctrl-C again to abort (a cut-over not yet flipped is rolled back)", by, countNoun(len(p.running), "running action")))
}

// Aborting says what the second Ctrl-C does.
func (p *ApplyProgress) Aborting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lineLocked(fmt.Sprintf("aborting: cancelling %s now; a frozen account is routed back to its source and the journal written before mailmig exits", countNoun(len(p.running), "running action")))
}

// Finish removes the bars.
func (p *ApplyProgress) Finish() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

var _ engine.WorkHook = (*ApplyProgress)(nil)
