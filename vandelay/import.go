package vandelay

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// ImportOptions are the settings of one import run. A nil *ImportOptions
// means the defaults.
type ImportOptions struct {
	// DryRun computes what would change and writes nothing.
	DryRun bool
	// AllowSourceChange imports even though the archive holds mail from
	// another source (archive.ErrSourceChanged otherwise).
	AllowSourceChange bool
	// Progress receives the run's progress; nil means none.
	Progress Progress
}

// Import runs one import of src into a: it begins a run, lets the source
// sync it and finishes the run. The run is finished as complete (what
// vanished at the source is tombstoned) only when Sync returned nil; after
// a [*PartialError] or any other error the archive keeps what was
// committed and the next run resumes.
//
// The result is nil when the run could not begin or finish. The error is
// the run's (archive.ErrSourceChanged, archive.ErrInUse …), else the
// finishing error, else Sync's, unwrapped so that the caller can classify
// it with errors.Is and errors.As (ErrUsage, ErrAuth, ErrConnect,
// *PartialError, context.Canceled).
//
// The run is finished even when ctx is cancelled, so that an interrupted
// import leaves its cursors saved.
func Import(ctx context.Context, src MailSource, a *archive.Archive, opts *ImportOptions) (*archive.Result, error) {
	if opts == nil {
		opts = &ImportOptions{}
	}
	run, err := a.BeginRun(ctx, src.Describe(), &archive.RunOptions{AllowSourceChange: opts.AllowSourceChange, DryRun: opts.DryRun})
	if err != nil {
		return nil, err
	}
	syncErr := src.Sync(ctx, run, ProgressOr(opts.Progress))
	res, err := run.Finish(context.WithoutCancel(ctx), syncErr == nil)
	if err != nil {
		return nil, fmt.Errorf("finish import: %w", err)
	}
	return res, syncErr
}

// SourceDiff counts what a dry-run import found different between the
// source and the archive: zero when they agree.
func SourceDiff(r *archive.Result) int {
	return r.MessagesAdded + r.MessagesDeleted + r.MessagesMoved + r.MessagesReflagged +
		r.MailboxesCreated + r.MailboxesRenamed + r.MailboxesDeleted
}
