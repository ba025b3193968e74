package archive

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// Copy is one source copy of a message (a row of locations): the mailbox
// that holds it and the source's key for it there.
type Copy struct {
	MessageID int64
	MailboxID int64
	// Key is the source identity of the copy: the IMAP UID in decimal, the
	// POP3 UIDL, the Maildir unique name or the Takeout content hash.
	Key string
}

// Copies returns the copies of the given messages, ordered by message id,
// mailbox id and key. Exporters use the keys to file messages in the
// source's order (IMAP UIDs); ids without copies are left out.
func (a *Archive) Copies(ctx context.Context, messageIDs []int64) ([]Copy, error) {
	const chunk = 500
	var out []Copy
	for start := 0; start < len(messageIDs); start += chunk {
		ids := messageIDs[start:min(start+chunk, len(messageIDs))]
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		q := "SELECT message_id, mailbox_id, key FROM locations WHERE message_id IN (?" +
			strings.Repeat(",?", len(ids)-1) + ")"
		rows, err := a.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read message copies: %w", err)
		}
		for rows.Next() {
			var c Copy
			if err := rows.Scan(&c.MessageID, &c.MailboxID, &c.Key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read message copies: %w", err)
			}
			out = append(out, c)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("read message copies: %w", err)
		}
	}
	slices.SortFunc(out, func(x, y Copy) int {
		return cmp.Or(cmp.Compare(x.MessageID, y.MessageID), cmp.Compare(x.MailboxID, y.MailboxID), strings.Compare(x.Key, y.Key))
	})
	return out, nil
}
