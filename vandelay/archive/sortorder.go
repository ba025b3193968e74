package archive

import (
	"context"
	"fmt"
)

// SetSortOrders records the sort order (RFC 8621 2's Mailbox sortOrder) of
// live mailboxes by path, in the run's transaction, as a JMAP source lists
// them. A mailbox whose order changed gets the run's ModSeq, so that an
// export sees it changed. Sources without sort orders never call it: their
// mailboxes keep NULL, and an export leaves the target's order alone.
func (r *Run) SetSortOrders(ctx context.Context, orders map[string]int) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for p, o := range orders {
		res, err := tx.ExecContext(ctx, `UPDATE mailboxes SET sort_order = ?, modseq = ? WHERE path = ? AND deleted_at IS NULL AND sort_order IS NOT ?`,
			o, r.modseq, p, o)
		if err != nil {
			return n, fmt.Errorf("store the sort order of mailbox %q: %w", p, err)
		}
		k, _ := res.RowsAffected()
		n += int(k)
	}
	return n, r.commitLocked()
}

// MailboxSortOrders returns the recorded sort order of each live mailbox
// that has one, by mailbox id.
func (a *Archive) MailboxSortOrders(ctx context.Context) (map[int64]int, error) {
	rows, err := a.db.QueryContext(ctx, "SELECT id, sort_order FROM mailboxes WHERE deleted_at IS NULL AND sort_order IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("read mailbox sort orders: %w", err)
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var o int
		if err := rows.Scan(&id, &o); err != nil {
			return nil, fmt.Errorf("read mailbox sort orders: %w", err)
		}
		out[id] = o
	}
	return out, rows.Err()
}
