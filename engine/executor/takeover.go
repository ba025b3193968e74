package executor

import (
	"fmt"
	"strconv"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// Takeover tells the executor of an apply worker which accounts it took
// over from a dead worker (whose archive was on that worker's machine)
// and what to do about the target emails that worker exported and the
// source deleted before the takeover: the new archive never held them, so
// the target keeps them and verify finds them extra.
type Takeover struct {
	// Prune makes the exports of a taken-over account destroy the target
	// emails and non-role mailboxes the new archive does not hold
	// (apply -worker -prune-on-takeover). Destructive: mail the target
	// account held before the migration goes too.
	Prune bool
	// TakenOver returns the note of the account's takeover record since
	// its last cut-over (state.Account.TakenOver), "" when it was not
	// taken over. It is called concurrently.
	TakenOver func(account string) string
}

// SetTakeover sets what the exports and verifies of taken-over accounts
// do (see Takeover); apply workers call it once before running changes.
func (x *Executor) SetTakeover(t Takeover) { x.takeover = t }

// takenOver is the account's takeover note, "" when none.
func (x *Executor) takenOver(acct *plan.Account) string {
	if x.takeover.TakenOver == nil {
		return ""
	}
	return x.takeover.TakenOver(engine.Key(acct.Address))
}

// pruneExport reports whether the export of job prunes: with
// Takeover.Prune, the first catch-up after a takeover (its archive is
// imported again here, ReasonArchiveElsewhere) and every later pass of
// the account until its cut-over — the final catch-up of a cut-over that
// rolled back for the extra emails prunes them, then verify agrees. Until
// the flip the route points at the source, so the target holds only what
// the migration exported there (and what it held before).
func (x *Executor) pruneExport(job *engine.Job) bool {
	if !x.takeover.Prune || job.Change == nil {
		return false
	}
	return job.Change.Reason.Code == engine.ReasonArchiveElsewhere || x.takenOver(job.Account) != ""
}

// extraHint explains a verify of a taken-over account that found only
// target emails the archive does not hold (and the per-mailbox counts
// they raise): most likely the previous worker exported them and the
// source deleted them before the takeover. "" when that is not the case.
func (x *Executor) extraHint(acct *plan.Account, sourceDiffs int, rep *verify.Report, other int64) string {
	if sourceDiffs > 0 || other > 0 || rep == nil {
		return ""
	}
	note := x.takenOver(acct)
	if note == "" {
		return ""
	}
	extra := 0
	for _, mm := range rep.Mismatches {
		switch mm.Kind {
		case verify.KindExtra:
			extra++
		case verify.KindCount:
			want, err1 := strconv.Atoi(mm.Want)
			got, err2 := strconv.Atoi(mm.Got)
			if err1 != nil || err2 != nil || got < want {
				return ""
			}
		default:
			return ""
		}
	}
	if extra == 0 {
		return ""
	}
	n := "1 email"
	if extra > 1 {
		n = fmt.Sprintf("%d emails", extra)
	}
	return fmt.Sprintf("the account was %s: the target holds %s this worker's archive does not (most likely exported by the previous worker before the takeover and deleted at the source since); run the worker with -prune-on-takeover to remove them from the target, or remove them there by hand", note, n)
}
