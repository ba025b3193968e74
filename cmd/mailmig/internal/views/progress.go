package views

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailmig/mailmig/vandelay"
)

// Progress modes, the values of the commands' -progress flag.
const (
	ProgressAuto  = "auto"  // a bar on a terminal, plain lines otherwise
	ProgressBar   = "bar"   // a progressbar/v3 bar
	ProgressPlain = "plain" // plain lines, for logs
	ProgressNone  = "none"  // nothing
)

// IsTerminal reports whether w is a terminal. progressbar/v3 does not
// detect one itself, so every display asks here.
// A writer that wraps a file (the commands' scrubbing streams) tells its
// descriptor with Fd, as *os.File does.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// Progress is the one progress display of import, export and apply: a
// progressbar/v3 bar on a terminal, plain lines elsewhere (CI logs), or
// nothing. The commands adapt it to what they report ([ImportProgress],
// [ExportProgress], [ApplyProgress]). It is safe for concurrent use.
type Progress struct {
	mu    sync.Mutex
	w     io.Writer
	bar   *progressbar.ProgressBar
	plain bool
	stop  chan struct{}
	wg    sync.WaitGroup
}

// NewProgress returns a display on w in mode (auto: a bar when w is a
// terminal). newBar builds the bar, whose options differ per command. In
// plain mode, when every is positive, line is printed at that interval
// until Finish.
func NewProgress(w io.Writer, mode string, newBar func(io.Writer) *progressbar.ProgressBar, every time.Duration, line func() string) *Progress {
	p := &Progress{w: w}
	if mode == ProgressAuto {
		mode = ProgressPlain
		if IsTerminal(w) {
			mode = ProgressBar
		}
	}
	switch mode {
	case ProgressBar:
		p.bar = newBar(w)
	case ProgressPlain:
		p.plain = true
		if every > 0 && line != nil {
			p.stop = make(chan struct{})
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					select {
					case <-p.stop:
						return
					case <-t.C:
						p.Line(line())
					}
				}
			}()
		}
	}
	return p
}

// Plain reports whether the display prints plain lines.
func (p *Progress) Plain() bool { return p.plain }

// Bar runs fn with the bar, when one is shown.
func (p *Progress) Bar(fn func(*progressbar.ProgressBar)) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(p.bar)
}

// Line prints a line: above the bar, or as a plain line; nothing in
// none mode.
func (p *Progress) Line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.bar != nil:
		_ = p.bar.Clear()
		fmt.Fprintf(p.w, "\r%s\n", s)
	case p.plain:
		fmt.Fprintln(p.w, s)
	}
}

// Finish removes the bar and stops the plain lines.
func (p *Progress) Finish() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
	p.Bar(func(b *progressbar.ProgressBar) { _ = b.Finish() })
}

// ImportProgress shows an import's progress on the standard error: a
// bar of bytes, or a line every 5 s. It implements vandelay.Progress and
// is cheap on the import's hot path (atomic counters).
type ImportProgress struct {
	*Progress
	account                                    string
	start                                      time.Time
	totalMsgs, totalBytes, doneMsgs, doneBytes atomic.Int64
}

var _ vandelay.Progress = (*ImportProgress)(nil)

// NewImportProgress returns the import's display in mode.
func (v *View) NewImportProgress(mode, account string) *ImportProgress {
	p := &ImportProgress{account: account, start: time.Now()}
	p.Progress = NewProgress(v.Err, mode, func(w io.Writer) *progressbar.ProgressBar {
		return progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(account), progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}, 5*time.Second, p.line)
	return p
}

func (p *ImportProgress) line() string {
	el := time.Since(p.start).Seconds()
	dm, db := p.doneMsgs.Load(), p.doneBytes.Load()
	return fmt.Sprintf("%s: %d/%d messages, %.1f/%.1f MB, %.0f msg/s, %.1f MB/s", p.account, dm, p.totalMsgs.Load(),
		float64(db)/1e6, float64(p.totalBytes.Load())/1e6, float64(dm)/el, float64(db)/1e6/el)
}

// Discovered implements vandelay.Progress.
func (p *ImportProgress) Discovered(n int, b int64) {
	p.totalMsgs.Add(int64(n))
	p.totalBytes.Add(b)
	p.Bar(func(bar *progressbar.ProgressBar) { bar.ChangeMax64(p.totalBytes.Load()) })
}

// Done implements vandelay.Progress.
func (p *ImportProgress) Done(n int, b int64) {
	p.doneMsgs.Add(int64(n))
	p.doneBytes.Add(b)
	p.Bar(func(bar *progressbar.ProgressBar) {
		bar.Describe(fmt.Sprintf("%s %d/%d msgs", p.account, p.doneMsgs.Load(), p.totalMsgs.Load()))
		_ = bar.Add64(b)
	})
}

// ExportProgress shows an export's progress on the standard error: a bar
// of bytes with the phase, or a line at most every 5 s and at the end.
type ExportProgress struct {
	*Progress
	account     string
	start, last time.Time
}

// NewExportProgress returns the export's display in mode.
func (v *View) NewExportProgress(mode, account string) *ExportProgress {
	p := &ExportProgress{account: account, start: time.Now(), last: time.Now()}
	p.Progress = NewProgress(v.Err, mode, func(w io.Writer) *progressbar.ProgressBar {
		return progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription(account), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}, 0, nil)
	return p
}

// Update shows a snapshot; the exporter calls it from one goroutine at a
// time.
func (p *ExportProgress) Update(pr vandelay.ExportProgress) {
	p.Bar(func(bar *progressbar.ProgressBar) {
		if pr.TotalBytes > 0 {
			bar.ChangeMax64(pr.TotalBytes)
		}
		bar.Describe(fmt.Sprintf("%s %s %d/%d msgs", p.account, pr.Phase, pr.Done, pr.Total))
		_ = bar.Set64(pr.Bytes)
	})
	if !p.Plain() || (time.Since(p.last) < 5*time.Second && pr.Phase != "done") {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	p.Line(fmt.Sprintf("%s: %s %d/%d messages, %.1f/%.1f MB, %.0f msg/s", p.account, pr.Phase, pr.Done, pr.Total,
		float64(pr.Bytes)/1e6, float64(pr.TotalBytes)/1e6, float64(pr.Done)/el))
}
