package engine

import (
	"fmt"
	"time"

	"github.com/mailmig/mailmig/plan"
)

// Clock tells the time. Tests use a fixed clock.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// FixedClock always returns T.
type FixedClock struct{ T time.Time }

// Now returns c.T.
func (c FixedClock) Now() time.Time { return c.T }

// timeOfDay returns the wall-clock offset of t from its local midnight.
func timeOfDay(t time.Time) time.Duration {
	h, m, s := t.Clock()
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second + time.Duration(t.Nanosecond())
}

// InWindow reports whether t lies inside the daily window w (in w's time
// zone). A window whose end is not after its start crosses midnight; a nil
// window is always open.
func InWindow(w *plan.Window, t time.Time) bool {
	if w == nil {
		return true
	}
	tod := timeOfDay(t.In(windowLoc(w)))
	if w.Start < w.End {
		return tod >= w.Start && tod < w.End
	}
	if w.Start == w.End {
		return true
	}
	return tod >= w.Start || tod < w.End
}

func windowLoc(w *plan.Window) *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// atOffset returns the instant on the local date of day at wall-clock
// offset d (which may be 24h). time.Date normalises wall times that a
// daylight-saving change skips.
func atOffset(day time.Time, d time.Duration) time.Time {
	y, m, dd := day.Date()
	mins := int(d / time.Minute)
	return time.Date(y, m, dd, mins/60, mins%60, int(d%time.Minute/time.Second), 0, day.Location())
}

// NextWindowOpen returns the first instant at or after t at which w is
// open (t itself when it is open now).
func NextWindowOpen(w *plan.Window, t time.Time) time.Time {
	if InWindow(w, t) {
		return t
	}
	local := t.In(windowLoc(w))
	for i := 0; i < 3; i++ {
		c := atOffset(local.AddDate(0, 0, i), w.Start)
		if !c.Before(t) && InWindow(w, c) {
			return c
		}
	}
	return t // unreachable for a valid window
}

// WindowCloses returns when the window that is open at t closes.
func WindowCloses(w *plan.Window, t time.Time) time.Time {
	local := t.In(windowLoc(w))
	for i := 0; i < 3; i++ {
		c := atOffset(local.AddDate(0, 0, i), w.End)
		if c.After(t) {
			return c
		}
	}
	return t
}

// humanDuration prints a duration for a reason text, rounded to minutes.
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "less than a minute"
	}
	h, m := int(d.Hours()), int(d.Minutes())%60
	switch {
	case h >= 48:
		return fmt.Sprintf("%dd%dh", h/24, h%24)
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	}
	return fmt.Sprintf("%dm", m)
}
