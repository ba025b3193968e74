package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	ti "github.com/mailmig/mailmig/vandelay/targets/imap"
)

var _ engine.CopyBacker = (*Executor)(nil)

// between is the account with its source and target backends replaced:
// a rollback may go to the backend the journal names rather than the
// plan's (the plan moved the account back).
func between(acct *plan.Account, source, target string) *plan.Account {
	a := *acct
	a.From, a.To = source, target
	return &a
}

// CopyBack returns to the source what arrived on the target after the
// cut-over: vandelay.ReadBack records the target's emails that the export
// did not put there in the archive, then the IMAP target appends them to
// the source (targets/imap.CopyBack) and sets on the source's copies the
// flags the user changed on the target (targets/imap.Reflag). Both halves are convergent, so a
// rollback killed in between copies on its next run exactly what is
// missing. A source without an IMAP endpoint cannot take mail back: then
// the copy-back fails (and the rollback with it) when there is something
// to copy. The account's other data kinds follow the mail (copyBackData).
func (x *Executor) CopyBack(ctx context.Context, job *engine.Job) (state.Counts, error) {
	log := x.logOr(job.Log)
	acct := between(job.Account, job.Change.Source, job.Change.Target)
	a, err := x.openArchive(ctx, acct, false, log)
	if errors.Is(err, archive.ErrNotExist) {
		log.Warn("no archive: the rollback copies nothing back", "err", err)
		return state.Counts{}, nil
	}
	if err != nil {
		return state.Counts{}, err
	}
	defer x.closeArchive(ctx, acct, a, log)
	cnt, err := x.copyBackMail(ctx, job, acct, a, log)
	if err != nil {
		return cnt, err
	}
	dc, err := x.copyBackData(ctx, acct, a, false, log)
	cnt.CopiedBackObjects += dc.Copied
	cnt.Objects += dc.Copied
	return cnt, err
}

// copyBackMail is CopyBack's mail half.
func (x *Executor) copyBackMail(ctx context.Context, job *engine.Job, acct *plan.Account, a *archive.Archive, log *slog.Logger) (state.Counts, error) {
	t, err := x.openTarget(ctx, acct, job.Target, log)
	if err != nil {
		return state.Counts{}, err
	}
	rb, err := vandelay.ReadBack(ctx, a, t, &vandelay.ReadBackOptions{Logger: log})
	var cnt state.Counts
	if rb != nil {
		cnt.Bytes = rb.Bytes
	}
	if err != nil {
		return cnt, fmt.Errorf("read back from %s: %w", acct.To, err)
	}
	if rb.Pending == 0 && len(rb.Reflag) == 0 {
		return cnt, nil
	}
	kind, spec, err := x.sourceSpec(acct, job.Source, log)
	if err != nil {
		return cnt, err
	}
	if kind != string(plan.ProtoIMAP) && rb.Pending == 0 {
		log.Warn("flags changed on the target are not copied back: the source has no imap endpoint", "messages", len(rb.Reflag))
		return cnt, nil
	}
	if kind != string(plan.ProtoIMAP) {
		return cnt, fmt.Errorf("%d message(s) arrived on %s after the cut-over, and backend %s has no imap endpoint to copy them back to (it is read over %s); add one to the plan, or move the mail by hand and release the account", rb.Pending, acct.To, acct.From, kind)
	}
	c, err := imapsrc.Dial(ctx, &imapsrc.Options{Server: spec.Server, Login: spec.Login, Logger: log})
	if err != nil {
		return cnt, fmt.Errorf("source %s: %w", acct.From, err)
	}
	defer c.Close()
	opts := &ti.Options{Logger: log, Throttle: spec.Throttle}
	if job.Progress != nil {
		opts.Progress = func(done, total int) { job.Progress(int64(done), int64(total)) }
	}
	res, err := ti.CopyBack(ctx, a, c, rb.Target, opts)
	if res != nil {
		cnt.CopiedBack = int64(res.Appended)
		cnt.Messages = int64(res.Appended + res.Matched)
		cnt.New = int64(res.Appended)
		cnt.Bytes += res.Bytes
		cnt.Mailboxes = int64(res.MailboxesCreated)
	}
	if err != nil {
		return cnt, err
	}
	changes := make([]ti.KeywordChange, len(rb.Reflag))
	for i, k := range rb.Reflag {
		changes[i] = ti.KeywordChange{ArchiveID: k.ArchiveID, Add: k.Add, Remove: k.Remove}
	}
	n, err := ti.Reflag(ctx, a, c, changes, &ti.Options{Logger: log})
	cnt.Reflagged = int64(n)
	cnt.Changed = int64(n)
	cnt.Messages += int64(n)
	return cnt, err
}

// CountCopyBack says how many messages a rollback would copy from target
// back to source: the target's emails the export did not put there, plus
// those an interrupted rollback read back and did not copy. It reads the
// target's email ids only, downloading no message.
func (x *Executor) CountCopyBack(ctx context.Context, acct *plan.Account, source, target string) (engine.CopyBack, error) {
	acct = between(acct, source, target)
	a, err := x.openArchive(ctx, acct, false, x.log)
	if errors.Is(err, archive.ErrNotExist) {
		return engine.CopyBack{}, engine.ErrNoCopyBack
	}
	if err != nil {
		return engine.CopyBack{}, err
	}
	defer a.Close()
	t, err := x.openTarget(ctx, acct, nil, x.log)
	if err != nil {
		return engine.CopyBack{}, err
	}
	rb, err := vandelay.ReadBack(ctx, a, t, &vandelay.ReadBackOptions{CountOnly: true, Logger: x.log})
	if err != nil {
		return engine.CopyBack{}, err
	}
	cb := engine.CopyBack{Messages: int64(rb.Pending), Flags: int64(len(rb.Reflag))}
	dc, err := x.copyBackData(ctx, acct, a, true, x.log)
	cb.Sieve, cb.Contacts, cb.Calendars, cb.Files = dc.Sieve, dc.Contacts, dc.Calendars, dc.Files
	return cb, err
}
