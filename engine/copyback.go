package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
)

// CopyBacker is implemented by executors that can return to the source
// what arrived on the target after a cut-over. A rollback of an account
// that was cut over ([Change.NeedsCopyBack]) calls CopyBack before it
// routes the account back, and fails — leaving the route on the target —
// when it fails: a rollback never hides mail from the user. An executor
// without it rolls back by route only.
type CopyBacker interface {
	// CopyBack reads from the change's Target what the export did not put
	// there and writes it onto its Source; Counts.CopiedBack is the
	// number of messages written. It must be convergent: after a crash
	// the next call copies only what is missing, and a call after a
	// complete one copies nothing.
	CopyBack(ctx context.Context, job *Job) (state.Counts, error)
	// CountCopyBack says how many messages CopyBack would copy for the
	// account from target to source (and whose flags it would set),
	// changing nothing.
	CountCopyBack(ctx context.Context, acct *plan.Account, source, target string) (CopyBack, error)
}

// ErrNoCopyBack is CountCopyBack's answer for an account that mailmig
// did not migrate through an archive (adopted, or its archive removed):
// there is no record of what the export put on the target, so there is
// nothing to tell new mail by, and the rollback is by route only.
var ErrNoCopyBack = errors.New("no archive: mailmig did not copy this account, so nothing is copied back")

// copyBackCounters bounds the targets asked at once by CountCopyBacks.
const copyBackCounters = 4

// copyBackCountTimeout bounds one count, so that a hung target costs a
// plan seconds, not its full timeouts; the change then says it could not
// be counted.
const copyBackCountTimeout = 30 * time.Second

// CountCopyBacks fills the CopyBack of every rollback in ch that needs
// one, asking cb (a few at a time); a count that fails keeps its error,
// for the views to show. Accounts not in m are left alone.
func CountCopyBacks(ctx context.Context, ch *Changes, m *plan.Migration, cb CopyBacker) {
	if ch == nil || cb == nil {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, copyBackCounters)
	for _, wc := range ch.Waves {
		for _, c := range wc.Changes {
			acct := m.Account(c.Account)
			if !c.NeedsCopyBack() || acct == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, copyBackCountTimeout)
				defer cancel()
				cbk, err := cb.CountCopyBack(cctx, acct, c.Source, c.Target)
				if errors.Is(err, ErrNoCopyBack) {
					return
				}
				if err != nil {
					cbk.Error = err.Error()
				}
				c.CopyBack = &cbk
			}()
		}
	}
	wg.Wait()
}
