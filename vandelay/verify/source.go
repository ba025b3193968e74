package verify

import (
	"context"
	"fmt"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// SourceReport is what [Source] found between a source and its archive.
type SourceReport struct {
	// Differences counts the changes a dry-run import would make
	// (messages added, deleted, moved, re-flagged; mailboxes created,
	// renamed, deleted): zero when source and archive agree.
	Differences int
	// Mismatches has one entry of kind "source" per kind of change.
	Mismatches []Mismatch
	// Result is the dry-run import's result.
	Result *archive.Result
}

// Source compares a source with the archive by a dry-run import: any
// change it would make is a difference. The archive must be open
// read-write (a dry run takes the run lock) and is not changed.
//
// The report is nil when the run could not begin or finish (an archive
// error); with a report, the error is the source's (connection, login, a
// mailbox that could not be read).
func Source(ctx context.Context, src vandelay.MailSource, a *archive.Archive) (*SourceReport, error) {
	res, err := vandelay.Import(ctx, src, a, &vandelay.ImportOptions{DryRun: true})
	if res == nil {
		return nil, err
	}
	rep := &SourceReport{Result: res, Differences: vandelay.SourceDiff(res)}
	if err != nil {
		return rep, err
	}
	for _, d := range []struct {
		what string
		n    int
	}{{"messages added at the source", res.MessagesAdded}, {"messages deleted at the source", res.MessagesDeleted},
		{"messages moved at the source", res.MessagesMoved}, {"messages re-flagged at the source", res.MessagesReflagged},
		{"mailboxes created at the source", res.MailboxesCreated}, {"mailboxes renamed at the source", res.MailboxesRenamed},
		{"mailboxes deleted at the source", res.MailboxesDeleted}} {
		if d.n > 0 {
			rep.Mismatches = append(rep.Mismatches, Mismatch{Kind: "source", Item: fmt.Sprintf("%d %s since the last import", d.n, d.what)})
		}
	}
	return rep, nil
}
