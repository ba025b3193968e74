package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Return is one copy of a message that arrived on a target after the
// cut-over (delivered there, or put there by the user), read back into the
// archive so that a rollback writes it onto the source: the copy_back
// table. A message the target holds in two mailboxes is two Returns.
type Return struct {
	// ID is the row's id.
	ID int64
	// Target is the export target's name (see [Archive.ExportTarget]) the
	// message was read from, RemoteID its id there.
	Target, RemoteID string
	// Mailbox is the path at the source to write it into (the archive's
	// mailbox path when the target's mailbox was exported from it, else
	// the target's names joined with Sep), Sep the source's separator.
	Mailbox, Sep string
	// Blob is the content hash (the bytes are in the archive's blob
	// store), Size their length.
	Blob string
	Size int64
	// ReceivedAt is the target's internal date; Keywords its JMAP
	// keywords.
	ReceivedAt time.Time
	Keywords   []string
	// Found is when it was read back; Copied when it was written to the
	// source (zero while pending), SourceKey where the source holds it
	// then (IMAP UID from APPENDUID; "" when the server does not say or
	// when it was found there already).
	Found, Copied time.Time
	SourceKey     string
}

// AddReturns stores the bytes of messages read back from a target and
// records one pending Return per mailbox copy, in one transaction. A
// Return already recorded (same target, remote id and mailbox) is kept as
// it is, so reading the target again after an interruption adds nothing
// twice. bodies maps each Return's Blob to its bytes.
func (a *Archive) AddReturns(ctx context.Context, rs []Return, bodies map[string][]byte) (added int, err error) {
	if a.readOnly {
		return 0, errors.New("archive opened read-only")
	}
	stx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return 0, fmt.Errorf("begin archive transaction: %w", err)
	}
	tx := &ptx{a: a, tx: stx, stmts: map[string]*sql.Stmt{}}
	defer tx.Rollback()
	now := time.Now()
	for _, r := range rs {
		body, ok := bodies[r.Blob]
		if !ok {
			return 0, fmt.Errorf("read-back message %s: no body for %.12s", r.RemoteID, r.Blob)
		}
		if _, err := putBlob(ctx, tx, r.Blob, body, now); err != nil {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO copy_back(target, remote_id, mailbox, sep, blob, size, received_at, keywords, found_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Target, r.RemoteID, r.Mailbox, r.Sep, r.Blob, r.Size, r.ReceivedAt.Unix(), joinKeywords(r.Keywords), now.Unix())
		if err != nil {
			return 0, fmt.Errorf("record read-back message %s: %w", r.RemoteID, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			added++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit read-back messages: %w", err)
	}
	return added, nil
}

// Returns lists the recorded Returns of target (all targets when ""),
// pending ones only when pending is set, in the order they were read.
func (a *Archive) Returns(ctx context.Context, target string, pending bool) ([]Return, error) {
	q := `SELECT id, target, remote_id, mailbox, sep, blob, size, received_at, keywords, found_at, copied_at, source_key
		FROM copy_back WHERE (? = '' OR target = ?)`
	if pending {
		q += " AND copied_at IS NULL"
	}
	rows, err := a.db.QueryContext(ctx, q+" ORDER BY id", target, target)
	if err != nil {
		return nil, fmt.Errorf("read copy-back list: %w", err)
	}
	defer rows.Close()
	var out []Return
	for rows.Next() {
		var r Return
		var recv, found int64
		var copied sql.NullInt64
		var kw string
		if err := rows.Scan(&r.ID, &r.Target, &r.RemoteID, &r.Mailbox, &r.Sep, &r.Blob, &r.Size, &recv, &kw, &found, &copied, &r.SourceKey); err != nil {
			return nil, err
		}
		r.ReceivedAt, r.Found, r.Copied = time.Unix(recv, 0).UTC(), time.Unix(found, 0).UTC(), unixOrZero(copied)
		r.Keywords = splitKeywords(kw)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReturnedRemoteIDs is the set of target ids of target already read back.
func (a *Archive) ReturnedRemoteIDs(ctx context.Context, target string) (map[string]bool, error) {
	rows, err := a.db.QueryContext(ctx, "SELECT DISTINCT remote_id FROM copy_back WHERE target = ?", target)
	if err != nil {
		return nil, fmt.Errorf("read copy-back list: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// MarkReturned records that the Return id is on the source now, at key
// ("" when unknown). Marking it again changes nothing.
func (a *Archive) MarkReturned(ctx context.Context, id int64, key string) error {
	if a.readOnly {
		return errors.New("archive opened read-only")
	}
	_, err := a.db.ExecContext(ctx, "UPDATE copy_back SET copied_at = ?, source_key = ? WHERE id = ? AND copied_at IS NULL", time.Now().Unix(), key, id)
	if err != nil {
		return fmt.Errorf("record copied-back message: %w", err)
	}
	return nil
}

// HasLiveMessage reports whether a live (not tombstoned) message has the
// content hash.
func (a *Archive) HasLiveMessage(ctx context.Context, hash string) (bool, error) {
	var n int
	err := a.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM messages WHERE blob = ? AND deleted_at IS NULL", hash).Scan(&n)
	return n > 0, err
}
