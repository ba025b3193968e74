package engine

import (
	"errors"
	"slices"
)

// ErrRouteHeldElsewhere is returned (wrapped) by a Router that refuses to
// change an account's route because another apply worker holds the
// account now (cmd/mailmig's claim guard: this worker's claim ran out and
// was taken over). A cut-over whose rollback is refused so ends
// interrupted, not failed: the account is the other worker's, and no
// failed cut-over is counted against its wave.
var ErrRouteHeldElsewhere = errors.New("another apply worker holds the account now")

// ReasonArchiveElsewhere: the account's archive is not on this machine
// (an apply worker took the account over from a worker that died, or it
// was staged elsewhere): instead of a cut-over whose final catch-up would
// import everything while the account is frozen, this catch-up imports
// it again into a local archive first (the export finds every message
// already on the target and copies nothing twice). Backend is the
// source.
const ReasonArchiveElsewhere ReasonCode = "archive-elsewhere"

// Accounts returns the accounts that have changes, each once, in the
// order of their first change (wave order: a wave's canaries first).
func (c *Changes) Accounts() []string {
	var out []string
	seen := map[string]bool{}
	for _, ch := range c.All() {
		if k := Key(ch.Account); !seen[k] {
			seen[k] = true
			out = append(out, ch.Account)
		}
	}
	return out
}

// Narrow keeps only the changes of accounts (normalised addresses), as
// -target does: a kept change whose dependency belongs to another account
// becomes waiting ("its cutover depends on cutover:x, which another
// worker holds" with why = "which another worker holds"); a later diff
// plans it again once that dependency is done. The summary's counts of
// changes follow.
func (c *Changes) Narrow(accounts map[string]bool, why string) {
	narrow(c, accounts, why)
	c.recount()
}

// recount sets the summary's counts of changes from the changes.
func (c *Changes) recount() {
	s := &c.Summary
	s.Import, s.Export, s.CatchUp, s.Cutover, s.Rollback, s.Adopt, s.Changes = 0, 0, 0, 0, 0, 0, 0
	s.Waiting = 0
	for _, w := range c.Waves {
		for _, ch := range w.Changes {
			s.add(ch.Action)
		}
		s.Waiting += len(w.Waiting)
	}
}

// Rehome rewrites the changes of accounts (normalised addresses) whose
// archive is not on this machine, for an apply worker that took them
// over: a cut-over not yet flipped would run its final catch-up from an
// empty archive while the account is frozen, so
//
//   - a new cut-over becomes a catch-up (ReasonArchiveElsewhere): the
//     archive is imported again here, the export matches what the target
//     already holds; the cut-over comes in a later run;
//   - the retry of an interrupted cut-over (frozen, not yet flipped)
//     becomes a rollback to the source, unfrozen (ReasonLeftFrozen), as
//     when the wave may not cut over, followed by that catch-up.
//
// A cut-over that only has to unfreeze (Resume: the route already points
// at the target) needs no archive and is kept. Changes that depended on a
// rewritten cut-over (a wave's other accounts on its canary) lose that
// dependency's ID and become waiting when narrowed. The summary follows.
func (c *Changes) Rehome(accounts map[string]bool) {
	for _, w := range c.Waves {
		var out []*Change
		for _, ch := range w.Changes {
			k := Key(ch.Account)
			if !accounts[k] || ch.Action != Cutover || ch.Resume {
				out = append(out, ch)
				continue
			}
			up := *ch
			up.DependsOn = nil
			up.Canary, up.Freeze, up.Destructive = false, nil, false
			up.Action, up.ID = CatchUp, CatchUp.String()+":"+k
			up.Reason = Reason{Code: ReasonArchiveElsewhere, Backend: ch.Source}
			if ch.Reason.Code == ReasonRetryCutover {
				// Unfreeze on the source first, then import again.
				rb := *ch
				rb.DependsOn = nil
				rb.Canary, rb.Freeze = false, nil
				rb.Action, rb.ID = Rollback, Rollback.String()+":"+k
				rb.Reason = Reason{Code: ReasonLeftFrozen, Backend: ch.Source, Interrupted: ch.Reason.Interrupted, At: ch.Reason.At}
				rb.Destructive = Rollback.Destructive()
				up.DependsOn = []string{rb.ID}
				out = append(out, &rb)
			}
			out = append(out, &up)
		}
		w.Changes = out
	}
	// A change that depended on a rewritten cut-over now names an ID
	// nothing has: drop it to waiting, as narrowing would.
	ids := map[string]bool{}
	for _, ch := range c.All() {
		ids[ch.ID] = true
	}
	for _, w := range c.Waves {
		w.Changes = slices.DeleteFunc(w.Changes, func(ch *Change) bool {
			for _, d := range ch.DependsOn {
				if !ids[d] {
					w.Waiting = append(w.Waiting, &Waiting{Account: ch.Account, Phase: ch.Phase, Reason: "its " + ch.Action.String() + " depends on " + d + ", whose account is imported again here first"})
					return true
				}
			}
			return false
		})
	}
	c.recount()
}
