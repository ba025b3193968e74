package archive

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// Overview is a cheap summary of an archive for planners (mailmig plan):
// its totals, its source with the last import times, every live mailbox's
// sync cursor and, per export target, how much of the archive is not
// exported yet. See [Archive.Overview].
type Overview struct {
	// Stats are the totals (as [Archive.Stats]).
	Stats Stats
	// Source is the active source; nil before the first run.
	Source *Source
	// Cursors are the live mailboxes with their sync cursors, by path.
	Cursors []MailboxCursor
	// Exports has one entry per export target, in creation order.
	Exports []ExportStatus
}

// MailboxCursor is one live mailbox and its stored sync cursor.
type MailboxCursor struct {
	ID         int64
	Path       string
	Selectable bool
	// SourceRef is the source identity that survives renames (IMAP
	// "uidvalidity:N").
	SourceRef string
	// Cursor is zero when the mailbox was never synced completely.
	Cursor Cursor
	// Messages is the number of copies in the mailbox (locations: one per
	// source message, so the same content twice counts twice, as the
	// source's own count does).
	Messages int64
}

// ExportStatus is how far one export target is behind the archive.
type ExportStatus struct {
	// Name is the export target's name.
	Name string
	// Exported counts live messages mapped to a target object.
	Exported int64
	// Unexported counts live messages without a mapping (never exported).
	Unexported int64
	// Changed counts mapped live messages whose archive ModSeq is newer
	// than the exported one (re-flagged or moved since).
	Changed int64
	// Deleted counts tombstoned messages still mapped (to be destroyed or
	// forgotten by the next export).
	Deleted int64
	// MailboxesPending counts live mailboxes without a mapping or changed
	// since their export, plus tombstoned mailboxes still mapped.
	MailboxesPending int64
	// LastExport is the newest mapping write (zero when none).
	LastExport time.Time
}

// Pending is the number of messages the next export would touch.
func (e ExportStatus) Pending() int64 { return e.Unexported + e.Changed + e.Deleted }

// Overview reads the archive's summary in one read transaction. It works
// on read-only archives and never writes.
func (a *Archive) Overview(ctx context.Context) (*Overview, error) {
	tx, err := a.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("archive overview: %w", err)
	}
	defer tx.Rollback()
	o := &Overview{}
	var modseq string
	err = tx.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM mailboxes WHERE deleted_at IS NULL),
		(SELECT COUNT(*) FROM messages WHERE deleted_at IS NULL),
		(SELECT COUNT(*) FROM messages WHERE deleted_at IS NOT NULL),
		(SELECT COUNT(*) FROM blobs),
		(SELECT COALESCE(SUM(size), 0) FROM messages WHERE deleted_at IS NULL),
		(SELECT COALESCE(SUM(size), 0) FROM blobs),
		(SELECT value FROM meta WHERE key = 'modseq')`).
		Scan(&o.Stats.Mailboxes, &o.Stats.Messages, &o.Stats.Tombstones, &o.Stats.Blobs, &o.Stats.Bytes, &o.Stats.BlobBytes, &modseq)
	if err != nil {
		return nil, fmt.Errorf("archive overview: %w", err)
	}
	if o.Stats.ModSeq, err = strconv.ParseInt(modseq, 10, 64); err != nil {
		return nil, fmt.Errorf("archive overview: modseq %q: %w", modseq, err)
	}
	if o.Source, err = activeSource(ctx, tx); err != nil {
		return nil, err
	}
	if o.Cursors, err = cursors(ctx, tx); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT id, name FROM export_targets ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("archive overview: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		var e ExportStatus
		if err := rows.Scan(&id, &e.Name); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
		o.Exports = append(o.Exports, e)
	}
	rows.Close()
	for i, id := range ids {
		e := &o.Exports[i]
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT
			(SELECT COUNT(*) FROM messages m JOIN export_map e ON e.target_id = ?1 AND e.kind = 'Email' AND e.archive_id = m.id WHERE m.deleted_at IS NULL),
			(SELECT COUNT(*) FROM messages m JOIN export_map e ON e.target_id = ?1 AND e.kind = 'Email' AND e.archive_id = m.id WHERE m.deleted_at IS NULL AND e.modseq < m.modseq),
			(SELECT COUNT(*) FROM messages m JOIN export_map e ON e.target_id = ?1 AND e.kind = 'Email' AND e.archive_id = m.id WHERE m.deleted_at IS NOT NULL),
			(SELECT COUNT(*) FROM mailboxes b LEFT JOIN export_map e ON e.target_id = ?1 AND e.kind = 'Mailbox' AND e.archive_id = b.id
				WHERE (b.deleted_at IS NULL AND (e.archive_id IS NULL OR e.modseq < b.modseq)) OR (b.deleted_at IS NOT NULL AND e.archive_id IS NOT NULL)),
			(SELECT COALESCE(MAX(updated_at), 0) FROM export_map WHERE target_id = ?1)`, id).
			Scan(&e.Exported, &e.Changed, &e.Deleted, &e.MailboxesPending, &last)
		if err != nil {
			return nil, fmt.Errorf("archive overview: export status of %s: %w", e.Name, err)
		}
		e.Unexported = max(0, o.Stats.Messages-e.Exported)
		if last != 0 {
			e.LastExport = time.Unix(last, 0).UTC()
		}
	}
	return o, nil
}

// Cursors returns the live mailboxes with their sync cursors and copy
// counts: the part of [Archive.Overview] a change probe needs, and the
// cheap one (index scans only).
func (a *Archive) Cursors(ctx context.Context) ([]MailboxCursor, error) {
	tx, err := a.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("archive cursors: %w", err)
	}
	defer tx.Rollback()
	return cursors(ctx, tx)
}

func cursors(ctx context.Context, tx *sql.Tx) ([]MailboxCursor, error) {
	// Copies per mailbox: locations point to live messages only.
	counts := map[int64]int64{}
	rows, err := tx.QueryContext(ctx, "SELECT mailbox_id, COUNT(*) FROM locations GROUP BY mailbox_id")
	if err != nil {
		return nil, fmt.Errorf("archive cursors: %w", err)
	}
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return nil, err
		}
		counts[id] = n
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT b.id, b.path, b.selectable, b.source_ref,
		COALESCE(c.validity, 0), COALESCE(c.next, 0), COALESCE(c.modseq, 0), COALESCE(c.extra, ''), COALESCE(c.updated_at, 0)
		FROM mailboxes b LEFT JOIN cursors c ON c.mailbox_id = b.id WHERE b.deleted_at IS NULL ORDER BY b.path`)
	if err != nil {
		return nil, fmt.Errorf("archive cursors: %w", err)
	}
	defer rows.Close()
	var out []MailboxCursor
	for rows.Next() {
		var mc MailboxCursor
		var v, n, m, u int64
		if err := rows.Scan(&mc.ID, &mc.Path, &mc.Selectable, &mc.SourceRef, &v, &n, &m, &mc.Cursor.Extra, &u); err != nil {
			return nil, err
		}
		mc.Cursor.Validity, mc.Cursor.Next, mc.Cursor.ModSeq = uint64(v), uint64(n), uint64(m)
		if u != 0 {
			mc.Cursor.Updated = time.Unix(u, 0).UTC()
		}
		mc.Messages = counts[mc.ID]
		out = append(out, mc)
	}
	return out, rows.Err()
}
