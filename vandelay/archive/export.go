package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Export mapping kinds, one per JMAP data type.
const (
	KindMailbox = "Mailbox"
	KindEmail   = "Email"
)

// ExportTarget is one export destination (e.g. a JMAP server URL plus an
// account id) and its mapping from archive ids to target ids.
type ExportTarget struct {
	a    *Archive
	ID   int64
	Name string
}

// Mapping ties one archive object to its target object.
type Mapping struct {
	// Kind is KindMailbox or KindEmail.
	Kind string
	// ArchiveID is the Mailbox.ID or Message.ID.
	ArchiveID int64
	// RemoteID is the target's id.
	RemoteID string
	// Created reports that the export created the target object (rather
	// than matching one that was already there); only such objects may be
	// destroyed when the archive tombstones them.
	Created bool
	// ModSeq is the archive ModSeq of the object as last exported, so an
	// exporter can tell whether it changed since.
	ModSeq int64
	// Updated is when the mapping was last written.
	Updated time.Time
}

// ExportTarget returns the target named name, creating it when missing.
// The name is the caller's stable identity for the target, e.g.
// "jmap https://mail.example.test/ u123".
func (a *Archive) ExportTarget(ctx context.Context, name string) (*ExportTarget, error) {
	t := &ExportTarget{a: a, Name: name}
	err := a.db.QueryRowContext(ctx, "SELECT id FROM export_targets WHERE name = ?", name).Scan(&t.ID)
	if errors.Is(err, sql.ErrNoRows) && !a.readOnly {
		err = a.db.QueryRowContext(ctx, "INSERT INTO export_targets(name, created_at) VALUES (?, ?) RETURNING id",
			name, time.Now().Unix()).Scan(&t.ID)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("export target %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("export target %q: %w", name, err)
	}
	return t, nil
}

// ExportTargets lists the names of all export targets.
func (a *Archive) ExportTargets(ctx context.Context) ([]string, error) {
	rows, err := a.db.QueryContext(ctx, "SELECT name FROM export_targets ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// State returns a state value stored for the target under key (e.g. a
// JMAP state string "Email", or "archive-modseq"); "" when unset.
func (t *ExportTarget) State(ctx context.Context, key string) (string, error) {
	var v string
	err := t.a.db.QueryRowContext(ctx, "SELECT value FROM export_states WHERE target_id = ? AND key = ?", t.ID, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// SetState stores a state value for the target.
func (t *ExportTarget) SetState(ctx context.Context, key, value string) error {
	_, err := t.a.db.ExecContext(ctx, `INSERT INTO export_states(target_id, key, value) VALUES (?, ?, ?)
		ON CONFLICT(target_id, key) DO UPDATE SET value = excluded.value`, t.ID, key, value)
	if err != nil {
		return fmt.Errorf("store export state %s: %w", key, err)
	}
	return nil
}

// Mappings returns all mappings of one kind, keyed by archive id.
func (t *ExportTarget) Mappings(ctx context.Context, kind string) (map[int64]Mapping, error) {
	rows, err := t.a.db.QueryContext(ctx, `SELECT archive_id, remote_id, created, modseq, updated_at
		FROM export_map WHERE target_id = ? AND kind = ?`, t.ID, kind)
	if err != nil {
		return nil, fmt.Errorf("read export mappings: %w", err)
	}
	defer rows.Close()
	out := map[int64]Mapping{}
	for rows.Next() {
		m := Mapping{Kind: kind}
		var created int
		var upd int64
		if err := rows.Scan(&m.ArchiveID, &m.RemoteID, &created, &m.ModSeq, &upd); err != nil {
			return nil, err
		}
		m.Created, m.Updated = created != 0, time.Unix(upd, 0).UTC()
		out[m.ArchiveID] = m
	}
	return out, rows.Err()
}

// Mapping returns one mapping; ok is false when the object is not mapped.
func (t *ExportTarget) Mapping(ctx context.Context, kind string, archiveID int64) (m Mapping, ok bool, err error) {
	m = Mapping{Kind: kind, ArchiveID: archiveID}
	var created int
	var upd int64
	err = t.a.db.QueryRowContext(ctx, `SELECT remote_id, created, modseq, updated_at FROM export_map
		WHERE target_id = ? AND kind = ? AND archive_id = ?`, t.ID, kind, archiveID).Scan(&m.RemoteID, &created, &m.ModSeq, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	m.Created, m.Updated = created != 0, time.Unix(upd, 0).UTC()
	return m, true, nil
}

// PutMappings inserts or replaces mappings in one transaction, so a batch
// of target results is recorded atomically.
func (t *ExportTarget) PutMappings(ctx context.Context, ms []Mapping) error {
	if len(ms) == 0 {
		return nil
	}
	tx, err := t.a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO export_map(target_id, kind, archive_id, remote_id, created, modseq, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(target_id, kind, archive_id) DO UPDATE SET
			remote_id = excluded.remote_id, created = excluded.created, modseq = excluded.modseq, updated_at = excluded.updated_at`,
			t.ID, m.Kind, m.ArchiveID, m.RemoteID, b2i(m.Created), m.ModSeq, now); err != nil {
			tx.Rollback()
			return fmt.Errorf("store export mapping: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store export mappings: %w", err)
	}
	return nil
}

// DeleteMappings removes mappings (e.g. after the target object was
// destroyed) in one transaction.
func (t *ExportTarget) DeleteMappings(ctx context.Context, kind string, archiveIDs []int64) error {
	tx, err := t.a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, id := range archiveIDs {
		if _, err := tx.ExecContext(ctx, "DELETE FROM export_map WHERE target_id = ? AND kind = ? AND archive_id = ?", t.ID, kind, id); err != nil {
			tx.Rollback()
			return fmt.Errorf("delete export mapping: %w", err)
		}
	}
	return tx.Commit()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
