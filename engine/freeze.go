package engine

import (
	"time"

	"github.com/mailmig/mailmig/engine/state"
)

// FreezeEstimate is how long a planned cut-over is expected to keep the
// account frozen (no login, no delivery): the freeze holds the final
// sync, which does what a catch-up does, and a verify of what it
// changed. It is the last catch-up's duration, scaled up when more
// changes wait at the source now than that catch-up copied (never
// down: a catch-up's time is mostly the listing of the mailbox, which
// does not shrink with fewer changes). An estimate, not a promise: the
// proxies' acknowledgement and the load of the servers add to it.
// Seconds are whole, rounded up: an operator plans a freeze in seconds,
// and a plan shown twice says the same.
type FreezeEstimate struct {
	// Seconds is the estimate.
	Seconds int64 `json:"seconds"`
	// LastCatchUpSeconds and LastCatchUpChanges are what it is based on.
	LastCatchUpSeconds int64 `json:"last_catch_up_seconds"`
	LastCatchUpChanges int64 `json:"last_catch_up_changes"`
	// Pending is the changes waiting at the source now (refresh and
	// unexported archive messages), -1 when not known.
	Pending int64 `json:"pending"`
}

// freezeEstimate estimates the time frozen of an account's cut-over from
// its last catch-up and the changes pending now (-1: unknown); nil when
// no catch-up was journaled with its duration.
func freezeEstimate(sa *state.Account, pending int64) *FreezeEstimate {
	if sa == nil || sa.LastCatchUpMS <= 0 {
		return nil
	}
	d := time.Duration(sa.LastCatchUpMS) * time.Millisecond
	f := &FreezeEstimate{LastCatchUpSeconds: ceilSeconds(d), LastCatchUpChanges: sa.LastCatchUpChanges, Pending: pending}
	if n := max(sa.LastCatchUpChanges, 1); pending > n {
		d = time.Duration(float64(d) * float64(pending) / float64(n))
	}
	f.Seconds = ceilSeconds(d)
	return f
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
