package archive

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// KindSieveScript is the export mapping kind of Sieve scripts: the
// mapping's ArchiveID is a [SieveScript.ID], its RemoteID the script's name
// at the target, and Created records that the export put it there (only
// such scripts are ever deleted from the target).
const KindSieveScript = "SieveScript"

// Collection kinds (collections.kind); see SCHEMA.md.
const (
	CollectionSieve = "sieve"
)

// NewSieveScript is one script as a source serves it.
type NewSieveScript struct {
	// Name is the script's name at the source (RFC 5804 LISTSCRIPTS).
	Name string
	// Body is the script exactly as GETSCRIPT returned it.
	Body []byte
	// Active reports that the script is the source's active one.
	Active bool
}

// SieveScript is one script of the archive.
type SieveScript struct {
	ID     int64
	Name   string
	Hash   string // lowercase hex SHA-256 of the bytes, a key of the blob store
	Size   int64
	Active bool
	// ModSeq is the archive change counter of the last change (bytes,
	// active flag or deletion), so an exporter can tell what changed
	// since it last exported the script.
	ModSeq  int64
	Deleted bool // a tombstone: the script vanished from the source
}

// SieveResult counts what a Sieve import changed (or, in a dry run,
// would change).
type SieveResult struct {
	Added   int `json:"added"`
	Changed int `json:"changed"` // bytes differ
	Deleted int `json:"deleted"` // tombstoned
	// Activated is 1 when the active script changed (including to none).
	Activated int  `json:"activated"`
	Unchanged int  `json:"unchanged"`
	DryRun    bool `json:"dry_run,omitempty"`
	// VacationChanged reports that the vacation response read from the
	// active script changed (set by vandelay.ImportSieve).
	VacationChanged bool `json:"vacation_changed,omitempty"`
}

// Changes is the number of changes the result counts.
func (r *SieveResult) Changes() int { return r.Added + r.Changed + r.Deleted + r.Activated }

// SieveSyncOptions configure [Archive.SyncSieve]. A nil pointer means the
// defaults.
type SieveSyncOptions struct {
	// DryRun counts the changes and writes nothing.
	DryRun bool
	// AllowSourceChange accepts scripts from another account than the one
	// the archive's scripts came from (ErrSourceChanged otherwise).
	AllowSourceChange bool
}

// SyncSieve makes the archive's Sieve scripts equal to scripts, the
// complete set a source serves now, in one transaction: new names are
// added, changed bytes replace the old ones (the blob store keeps both),
// names that vanished become tombstones and the active flag follows the
// source. The cursor is each script's name plus content hash, so a re-run
// without changes at the source writes nothing but the run row.
//
// Being one transaction, a killed import leaves the archive as it was.
func (a *Archive) SyncSieve(ctx context.Context, src Source, scripts []NewSieveScript, opts *SieveSyncOptions) (*SieveResult, error) {
	if opts == nil {
		opts = &SieveSyncOptions{}
	}
	if a.readOnly {
		return nil, errors.New("archive opened read-only")
	}
	seen := map[string]bool{}
	actives := 0
	for _, s := range scripts {
		if seen[s.Name] {
			return nil, fmt.Errorf("sieve script %q listed twice by the source", s.Name)
		}
		seen[s.Name] = true
		if s.Active {
			actives++
		}
	}
	if actives > 1 {
		return nil, fmt.Errorf("the source lists %d active sieve scripts (RFC 5804 allows one)", actives)
	}
	stx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	tx := &ptx{a: a, tx: stx, stmts: map[string]*sql.Stmt{}}
	defer tx.Rollback()
	res, err := syncSieve(ctx, tx, src, scripts, opts)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		res.DryRun = true
		return res, nil
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit sieve scripts: %w", err)
	}
	return res, nil
}

func syncSieve(ctx context.Context, tx *ptx, src Source, scripts []NewSieveScript, opts *SieveSyncOptions) (*SieveResult, error) {
	var ms string
	if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING value").Scan(&ms); err != nil {
		return nil, fmt.Errorf("bump archive modseq: %w", err)
	}
	modseq, _ := strconv.ParseInt(ms, 10, 64)
	now := time.Now()
	coll, err := sieveCollection(ctx, tx, src, modseq, now, opts.AllowSourceChange)
	if err != nil {
		return nil, err
	}
	var runID int64
	if err := tx.QueryRowContext(ctx, "INSERT INTO data_runs(kind, started_at) VALUES (?, ?) RETURNING id", CollectionSieve, now.Unix()).Scan(&runID); err != nil {
		return nil, fmt.Errorf("begin sieve run: %w", err)
	}
	old, err := sieveScripts(ctx, tx, coll, false)
	if err != nil {
		return nil, err
	}
	byName := map[string]SieveScript{}
	oldActive := ""
	for _, s := range old {
		byName[s.Name] = s
		if s.Active {
			oldActive = s.Name
		}
	}
	res := &SieveResult{}
	newActive := ""
	for _, s := range scripts {
		if s.Active {
			newActive = s.Name
		}
		hash := Hash(s.Body)
		o, ok := byName[s.Name]
		delete(byName, s.Name)
		switch {
		case !ok:
			res.Added++
			if _, err := putBlob(ctx, tx, hash, s.Body, now); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO sieve_scripts(collection_id, name, hash, size, active, modseq, created_at, updated_at)
				VALUES (?, ?, ?, ?, 0, ?, ?, ?)`, coll, s.Name, hash, len(s.Body), modseq, now.Unix(), now.Unix()); err != nil {
				return nil, fmt.Errorf("store sieve script %q: %w", s.Name, err)
			}
		case o.Hash != hash:
			res.Changed++
			if _, err := putBlob(ctx, tx, hash, s.Body, now); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE sieve_scripts SET hash = ?, size = ?, modseq = ?, updated_at = ? WHERE id = ?",
				hash, len(s.Body), modseq, now.Unix(), o.ID); err != nil {
				return nil, fmt.Errorf("store sieve script %q: %w", s.Name, err)
			}
		default:
			res.Unchanged++
		}
	}
	for _, o := range byName {
		res.Deleted++
		if _, err := tx.ExecContext(ctx, "UPDATE sieve_scripts SET active = 0, deleted_at = ?, modseq = ? WHERE id = ?", now.Unix(), modseq, o.ID); err != nil {
			return nil, fmt.Errorf("tombstone sieve script %q: %w", o.Name, err)
		}
	}
	if newActive != oldActive {
		res.Activated = 1
		// Clear first: the partial unique index allows one active script.
		if _, err := tx.ExecContext(ctx, "UPDATE sieve_scripts SET active = 0, modseq = ? WHERE collection_id = ? AND active = 1", modseq, coll); err != nil {
			return nil, fmt.Errorf("deactivate sieve script: %w", err)
		}
		if newActive != "" {
			if _, err := tx.ExecContext(ctx, "UPDATE sieve_scripts SET active = 1, modseq = ? WHERE collection_id = ? AND name = ? AND deleted_at IS NULL",
				modseq, coll, newActive); err != nil {
				return nil, fmt.Errorf("activate sieve script %q: %w", newActive, err)
			}
		}
	}
	counts, _ := json.Marshal(res)
	if _, err := tx.ExecContext(ctx, "UPDATE data_runs SET finished_at = ?, status = 'complete', counts = ? WHERE id = ?",
		time.Now().Unix(), string(counts), runID); err != nil {
		return nil, fmt.Errorf("finish sieve run: %w", err)
	}
	return res, nil
}

// sieveCollection returns the id of the archive's one live Sieve
// collection, creating it, and applies the source-change guard: scripts
// are matched by name, which means nothing across accounts.
func sieveCollection(ctx context.Context, tx *ptx, src Source, modseq int64, now time.Time, allowChange bool) (int64, error) {
	var id int64
	var kind, endpoint, account string
	err := tx.QueryRowContext(ctx, `SELECT id, source_kind, source_endpoint, account FROM collections
		WHERE kind = ? AND deleted_at IS NULL`, CollectionSieve).Scan(&id, &kind, &endpoint, &account)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = tx.QueryRowContext(ctx, `INSERT INTO collections(kind, source_kind, source_endpoint, account, modseq, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, CollectionSieve, src.Kind, src.Endpoint, src.Account, modseq, now.Unix()).Scan(&id)
		if err != nil {
			return 0, fmt.Errorf("create sieve collection: %w", err)
		}
		return id, nil
	case err != nil:
		return 0, fmt.Errorf("read sieve collection: %w", err)
	}
	old := Source{Kind: kind, Endpoint: endpoint, Account: account}
	if !old.Same(src) {
		if !strings.EqualFold(account, src.Account) && !allowChange {
			return 0, &SourceChangeError{Old: old, New: src}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE collections SET source_kind = ?, source_endpoint = ?, account = ?, modseq = ? WHERE id = ?",
			src.Kind, src.Endpoint, src.Account, modseq, id); err != nil {
			return 0, fmt.Errorf("update sieve collection: %w", err)
		}
	}
	return id, nil
}

type queryer interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func sieveScripts(ctx context.Context, q queryer, coll int64, withDeleted bool) ([]SieveScript, error) {
	query := "SELECT id, name, hash, size, active, modseq, deleted_at IS NOT NULL FROM sieve_scripts WHERE collection_id = ?"
	if !withDeleted {
		query += " AND deleted_at IS NULL"
	}
	rows, err := q.QueryContext(ctx, query+" ORDER BY name, id", coll)
	if err != nil {
		return nil, fmt.Errorf("read sieve scripts: %w", err)
	}
	defer rows.Close()
	var out []SieveScript
	for rows.Next() {
		var s SieveScript
		var active, deleted int
		if err := rows.Scan(&s.ID, &s.Name, &s.Hash, &s.Size, &active, &s.ModSeq, &deleted); err != nil {
			return nil, fmt.Errorf("read sieve scripts: %w", err)
		}
		s.Active, s.Deleted = active != 0, deleted != 0
		out = append(out, s)
	}
	return out, rows.Err()
}

// SieveScripts returns the archive's Sieve scripts sorted by name, with
// the tombstones when withDeleted (a name deleted and re-created has one
// tombstone per deletion). It returns nothing when no Sieve import ran.
func (a *Archive) SieveScripts(ctx context.Context, withDeleted bool) ([]SieveScript, error) {
	var coll int64
	err := a.db.QueryRowContext(ctx, "SELECT id FROM collections WHERE kind = ? AND deleted_at IS NULL", CollectionSieve).Scan(&coll)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sieve collection: %w", err)
	}
	return sieveScripts(ctx, a.db, coll, withDeleted)
}
