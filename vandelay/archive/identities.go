package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// KindIdentity is the export mapping kind of sending identities: the
// mapping's ArchiveID is an [Identity.ID], its RemoteID the target's
// Identity id, Created that the export made it (only those are destroyed).
const KindIdentity = "Identity"

// NewIdentity is a sending identity as a source serves it (JMAP Identity,
// RFC 8621 6). ReplyTo and Bcc are the JSON lists of {name, email} as the
// source wrote them ("" for none).
type NewIdentity struct {
	// SourceRef is the source's id of the identity ("jmap:<id>").
	SourceRef     string
	Name, Email   string
	ReplyTo, Bcc  string
	TextSignature string
	HTMLSignature string
}

// Identity is one identity of the archive.
type Identity struct {
	ID int64
	NewIdentity
	ModSeq  int64
	Deleted bool
}

// IdentitiesResult counts what [Archive.SyncIdentities] changed.
type IdentitiesResult struct {
	Added     int `json:"added"`
	Changed   int `json:"changed"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
}

// Changes is the number of changes.
func (r *IdentitiesResult) Changes() int { return r.Added + r.Changed + r.Deleted }

// Identities returns the archive's identities by id (the tombstones too
// when withDeleted).
func (a *Archive) Identities(ctx context.Context, withDeleted bool) ([]Identity, error) {
	q := `SELECT id, source_ref, name, email, reply_to, bcc, text_signature, html_signature, modseq, deleted_at IS NOT NULL FROM identities`
	if !withDeleted {
		q += " WHERE deleted_at IS NULL"
	}
	rows, err := a.db.QueryContext(ctx, q+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("read identities: %w", err)
	}
	defer rows.Close()
	var out []Identity
	for rows.Next() {
		var i Identity
		if err := rows.Scan(&i.ID, &i.SourceRef, &i.Name, &i.Email, &i.ReplyTo, &i.Bcc, &i.TextSignature, &i.HTMLSignature, &i.ModSeq, &i.Deleted); err != nil {
			return nil, fmt.Errorf("read identities: %w", err)
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

// SyncIdentities makes the archive's live identities equal to list, the
// complete set a source serves now, in one transaction: matched by
// SourceRef, new ones added, changed ones updated, vanished ones
// tombstoned. A dry run only counts.
func (a *Archive) SyncIdentities(ctx context.Context, list []NewIdentity, dryRun bool) (*IdentitiesResult, error) {
	if a.readOnly {
		return nil, errors.New("archive opened read-only")
	}
	// Read before the transaction: the archive's one writer connection
	// is the transaction's. An import of one account runs alone (the
	// run lock), so nothing changes the rows in between.
	old, err := a.Identities(ctx, false)
	if err != nil {
		return nil, err
	}
	tx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	defer tx.Rollback()
	byRef := map[string]Identity{}
	for _, i := range old {
		byRef[i.SourceRef] = i
	}
	res := &IdentitiesResult{}
	var modseq int64
	bump := func() error {
		if modseq != 0 || dryRun {
			return nil
		}
		return tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING CAST(value AS INTEGER)").Scan(&modseq)
	}
	now := time.Now().Unix()
	seen := map[string]bool{}
	for _, n := range list {
		if seen[n.SourceRef] {
			return nil, fmt.Errorf("identity %q listed twice by the source", n.SourceRef)
		}
		seen[n.SourceRef] = true
		o, ok := byRef[n.SourceRef]
		switch {
		case ok && o.NewIdentity == n:
			res.Unchanged++
			continue
		case ok:
			res.Changed++
		default:
			res.Added++
		}
		if dryRun {
			continue
		}
		if err := bump(); err != nil {
			return nil, fmt.Errorf("bump archive modseq: %w", err)
		}
		if ok {
			_, err = tx.ExecContext(ctx, `UPDATE identities SET name = ?, email = ?, reply_to = ?, bcc = ?, text_signature = ?, html_signature = ?, modseq = ?, updated_at = ? WHERE id = ?`,
				n.Name, n.Email, n.ReplyTo, n.Bcc, n.TextSignature, n.HTMLSignature, modseq, now, o.ID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO identities(source_ref, name, email, reply_to, bcc, text_signature, html_signature, modseq, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n.SourceRef, n.Name, n.Email, n.ReplyTo, n.Bcc, n.TextSignature, n.HTMLSignature, modseq, now, now)
		}
		if err != nil {
			return nil, fmt.Errorf("store identity %s: %w", n.Email, err)
		}
	}
	for _, o := range old {
		if seen[o.SourceRef] {
			continue
		}
		res.Deleted++
		if dryRun {
			continue
		}
		if err := bump(); err != nil {
			return nil, fmt.Errorf("bump archive modseq: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE identities SET deleted_at = ?, modseq = ? WHERE id = ?`, now, modseq, o.ID); err != nil {
			return nil, fmt.Errorf("delete identity %s: %w", o.Email, err)
		}
	}
	if dryRun {
		return res, nil
	}
	return res, tx.Commit()
}

// JMAPCursor returns the stored /changes state of the JMAP type typ for
// source, "" when there is none (or it belongs to another source).
func (a *Archive) JMAPCursor(ctx context.Context, typ, source string) (string, error) {
	var src, state string
	err := a.db.QueryRowContext(ctx, "SELECT source, state FROM jmap_cursors WHERE type = ?", typ).Scan(&src, &state)
	if errors.Is(err, sql.ErrNoRows) || err == nil && src != source {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the %s cursor: %w", typ, err)
	}
	return state, nil
}

// SetJMAPCursor stores the /changes state of typ for source ("" forgets
// it).
func (a *Archive) SetJMAPCursor(ctx context.Context, typ, source, state string) error {
	if a.readOnly {
		return errors.New("archive opened read-only")
	}
	var err error
	if state == "" {
		_, err = a.db.ExecContext(ctx, "DELETE FROM jmap_cursors WHERE type = ?", typ)
	} else {
		_, err = a.db.ExecContext(ctx, `INSERT INTO jmap_cursors(type, source, state, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(type) DO UPDATE SET source = excluded.source, state = excluded.state, updated_at = excluded.updated_at`, typ, source, state, time.Now().Unix())
	}
	if err != nil {
		return fmt.Errorf("store the %s cursor: %w", typ, err)
	}
	return nil
}
