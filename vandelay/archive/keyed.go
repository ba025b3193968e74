package archive

import (
	"context"
	"fmt"
)

// KeyedCopy is one copy of a message found by its source key across the
// live mailboxes (see [Run.CopiesByKey]).
type KeyedCopy struct {
	// MailboxID is the mailbox holding the copy.
	MailboxID int64
	Location
	// Hash is the message's content hash (its blob).
	Hash string
}

// CopiesByKey returns the copies recorded under key in any live mailbox.
// Sources whose keys are account-wide (a JMAP Email id is the same in
// every mailbox it is in) use it to find an object's copies without
// reading every mailbox: a move or a deletion at the source names the
// object, not the mailbox.
func (r *Run) CopiesByKey(ctx context.Context, key string) ([]KeyedCopy, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	// Driven by the mailboxes so that each probe is a primary-key lookup
	// of locations(mailbox_id, key); an account has few mailboxes.
	rows, err := tx.QueryContext(ctx, `SELECT l.mailbox_id, l.key, l.message_id, l.keywords, l.modseq, m.blob
		FROM mailboxes b JOIN locations l ON l.mailbox_id = b.id AND l.key = ? JOIN messages m ON m.id = l.message_id
		WHERE b.deleted_at IS NULL ORDER BY l.mailbox_id`, key)
	if err != nil {
		return nil, fmt.Errorf("read copies of %s: %w", key, err)
	}
	defer rows.Close()
	var out []KeyedCopy
	for rows.Next() {
		var c KeyedCopy
		var kw string
		var ms int64
		if err := rows.Scan(&c.MailboxID, &c.Key, &c.MessageID, &kw, &ms, &c.Hash); err != nil {
			return nil, err
		}
		c.Keywords, c.ModSeq = splitKeywords(kw), uint64(ms)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Cursors returns the live mailboxes with their stored cursors and copy
// counts as the run's transaction sees them (see [Archive.Cursors]).
// A source whose position is account-wide (JMAP state strings) reads it
// here before it asks the server anything.
func (r *Run) Cursors(ctx context.Context) ([]MailboxCursor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	return cursors(ctx, tx.tx)
}

// SetCursors saves several mailboxes' cursors and commits the batch with
// them, in one transaction: a source that keeps one account-wide position
// in every mailbox's cursor never leaves them disagreeing after a kill.
func (r *Run) SetCursors(ctx context.Context, cs map[int64]Cursor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	for id, c := range cs {
		if err := setCursor(ctx, tx, id, c); err != nil {
			return err
		}
	}
	return r.commitLocked()
}
