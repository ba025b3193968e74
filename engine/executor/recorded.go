package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// SetRecorded makes the refresh probe (Detect) of an account whose archive
// is not on this machine compare the source with the cursors the machine
// holding it recorded (engine.RecordedArchives.Get) instead of finding
// nothing to compare with. The non-mail kinds are not probed then: their
// snapshots stay in the archive.
func (x *Executor) SetRecorded(get func(context.Context, *plan.Account) (*engine.Observation, error)) {
	x.recorded = get
}

// recordedCursors returns the recorded cursors of an account without a
// local archive; nil when none were recorded.
func (x *Executor) recordedCursors(ctx context.Context, acct *plan.Account) ([]archive.MailboxCursor, error) {
	if x.recorded == nil {
		return nil, nil
	}
	o, err := x.recorded(ctx, acct)
	if err != nil || o == nil || len(o.Probe) == 0 {
		return nil, err
	}
	var known []archive.MailboxCursor
	if err := json.Unmarshal(o.Probe, &known); err != nil {
		return nil, fmt.Errorf("the archive's observation recorded by %s: %w", o.By.Worker, err)
	}
	return known, nil
}

// Observation reads what plan needs of the account's archive on another
// machine: its summary and its mailboxes' sync cursors. It is nil when
// the account has no archive here, or another process holds it (the next
// pass records it).
func (x *Executor) Observation(ctx context.Context, acct *plan.Account) (*engine.Observation, error) {
	info, err := (&ArchiveReader{x: x}).Archive(ctx, acct)
	if errors.Is(err, archive.ErrNotExist) || info.InUse {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, err := archive.Open(ctx, x.archivePath(acct), &archive.Options{ReadOnly: true, Logger: x.log})
	if errors.Is(err, archive.ErrNotExist) || errors.Is(err, archive.ErrInUse) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer a.Close()
	cur, err := a.Cursors(ctx)
	if err != nil {
		return nil, err
	}
	probe, err := json.Marshal(cur)
	if err != nil {
		return nil, err
	}
	return &engine.Observation{Archive: info, Probe: probe}, nil
}
