package archive

import (
	"context"
	"fmt"
)

// Collapsed says what a JMAP target cannot keep apart (docs/export.md):
// Duplicates are source copies of a message beyond the first in the same
// mailbox (the same bytes twice in one folder: JMAP files one Email in a
// mailbox once), and KeywordsMerged are messages whose copies carry
// different keywords (JMAP keeps one keyword set per Email, so the target
// gets their union). Both are about live messages, as the archive holds
// them now.
type Collapsed struct {
	Duplicates     int64
	KeywordsMerged int64
}

// Collapsed counts what the next export folds together (see Collapsed).
// Two grouped scans of the locations index; cheap next to an export.
func (a *Archive) Collapsed(ctx context.Context) (Collapsed, error) {
	var c Collapsed
	const dups = `SELECT COALESCE(SUM(n - 1), 0) FROM (
		SELECT COUNT(*) AS n FROM locations l JOIN messages m ON m.id = l.message_id
		WHERE m.deleted_at IS NULL GROUP BY l.message_id, l.mailbox_id HAVING n > 1)`
	if err := a.db.QueryRowContext(ctx, dups).Scan(&c.Duplicates); err != nil {
		return c, fmt.Errorf("count duplicate copies: %w", err)
	}
	const merged = `SELECT COUNT(*) FROM (
		SELECT l.message_id FROM locations l JOIN messages m ON m.id = l.message_id
		WHERE m.deleted_at IS NULL GROUP BY l.message_id HAVING COUNT(DISTINCT l.keywords) > 1)`
	if err := a.db.QueryRowContext(ctx, merged).Scan(&c.KeywordsMerged); err != nil {
		return c, fmt.Errorf("count merged keywords: %w", err)
	}
	return c, nil
}
