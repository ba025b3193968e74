package archive

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// CollectionFiles is the collection kind of a file tree (WebDAV, a
// Takeout's Drive): one collection per source root.
const CollectionFiles = "files"

// KindFile is the export mapping kind of files and folders: ArchiveID is
// a [File.ID], RemoteID the path at the target below its root, Created
// records that the export made it (only those are ever deleted there).
// The target's ETag after the last PUT is kept in the export target's
// state under "file-etag:"+RemoteID.
const KindFile = "File"

// NewFile is a file or folder as a source lists it. Path is relative to
// the source's root, "/"-separated, without a leading or trailing slash,
// exactly as the source names it (decoded from the URL, never Unicode-
// normalised).
type NewFile struct {
	Path      string
	IsDir     bool
	MediaType string
	Size      int64
	MTime     time.Time
	ETag      string
	// Hash is the SHA-256 of the bytes already stored by
	// [Archive.PutBlobStream] (files only).
	Hash string
}

// File is one file or folder of the archive.
type File struct {
	ID           int64
	CollectionID int64
	Path         string
	IsDir        bool
	MediaType    string
	Size         int64
	MTime        time.Time
	ETag         string
	Hash         string // "" for folders
	ModSeq       int64
	Deleted      bool
}

// FilesResult counts what a files import changed.
type FilesResult struct {
	Added     int `json:"added"`
	Changed   int `json:"changed"`
	Deleted   int `json:"deleted"`
	Unchanged int `json:"unchanged"`
}

// Changes is the number of changes.
func (r *FilesResult) Changes() int { return r.Added + r.Changed + r.Deleted }

// PutBlobStream stores what r yields in the blob store, streamed into the
// pack file (a 50 MB file is never held whole), and returns its hash and
// size. The row is committed after the bytes are synced: a killed run
// leaves at most unreferenced tail bytes, which the next open drops; bytes
// already stored are kept once (the new copy is taken off the pack again).
func (a *Archive) PutBlobStream(ctx context.Context, r io.Reader) (string, int64, error) {
	if a.readOnly {
		return "", 0, errors.New("archive opened read-only")
	}
	h := sha256.New()
	off, size, err := a.pack.appendFrom(&hashingReader{ctx: ctx, r: r, h: h}, -1)
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	hash := hex.EncodeToString(h.Sum(nil))
	tx, err := a.beginPtx(ctx)
	if err != nil {
		a.pack.undo(off, size)
		return "", 0, err
	}
	defer tx.Rollback()
	added, err := insertPacked(ctx, tx, hash, size, off, time.Now())
	if err == nil && added {
		err = tx.Commit()
	}
	if err != nil || !added {
		a.pack.undo(off, size) // stored already: the new copy goes again
	}
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	return hash, size, nil
}

// hashingReader hashes what it reads and stops when ctx ends.
type hashingReader struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
}

func (r *hashingReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	return n, err
}

// FileCollection returns the id of the source's live file collection at
// root, 0 when the archive has none.
func (a *Archive) FileCollection(ctx context.Context, src Source, root string) (int64, error) {
	return davCollectionID(ctx, a.db, CollectionFiles, src, root)
}

// FileCollections returns the archive's file collections (with the
// tombstones when withDeleted).
func (a *Archive) FileCollections(ctx context.Context, withDeleted bool) ([]Collection, error) {
	return a.DAVCollections(ctx, CollectionFiles, withDeleted)
}

// SyncFiles records one batch of an import of the source's tree at root,
// in one transaction: the collection is created when missing, each entry
// added or updated by path (a file whose hash, size, type and time are
// the same only has its ETag refreshed), the paths in deleted tombstoned,
// and ctag stored as the collection's cursor when not "". An import may
// call it several times; a killed import keeps the batches committed.
func (a *Archive) SyncFiles(ctx context.Context, src Source, root string, entries []NewFile, deleted []string, ctag string) (*FilesResult, error) {
	if a.readOnly {
		return nil, errors.New("archive opened read-only")
	}
	stx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	tx := &ptx{a: a, tx: stx, stmts: map[string]*sql.Stmt{}}
	defer tx.Rollback()
	var ms string
	if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING value").Scan(&ms); err != nil {
		return nil, fmt.Errorf("bump archive modseq: %w", err)
	}
	modseq, _ := strconv.ParseInt(ms, 10, 64)
	now := time.Now().Unix()
	id, err := davCollectionID(ctx, tx, CollectionFiles, src, root)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		err = tx.QueryRowContext(ctx, `INSERT INTO collections(kind, source_kind, source_endpoint, account, href, modseq, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, CollectionFiles, src.Kind, src.Endpoint, src.Account, root, modseq, now).Scan(&id)
		if err != nil {
			return nil, fmt.Errorf("create file collection %s: %w", root, err)
		}
	}
	old, err := files(ctx, tx, id, false)
	if err != nil {
		return nil, err
	}
	byPath := map[string]File{}
	for _, f := range old {
		byPath[f.Path] = f
	}
	res := &FilesResult{}
	for _, e := range entries {
		o, ok := byPath[e.Path]
		var mtime any
		if !e.MTime.IsZero() {
			mtime = e.MTime.Unix()
		}
		var hash any
		if !e.IsDir {
			hash = e.Hash
		}
		switch {
		case ok && o.IsDir == e.IsDir && o.Hash == e.Hash && o.Size == e.Size && o.MediaType == e.MediaType && o.MTime.Unix() == e.MTime.Unix():
			res.Unchanged++
			if o.ETag != e.ETag {
				if _, err := tx.ExecContext(ctx, "UPDATE files SET etag = ? WHERE id = ?", e.ETag, o.ID); err != nil {
					return nil, fmt.Errorf("store %s: %w", e.Path, err)
				}
			}
			continue
		case ok && o.IsDir != e.IsDir:
			// A folder became a file or the other way round: two
			// different things under one name.
			if _, err := tx.ExecContext(ctx, "UPDATE files SET deleted_at = ?, modseq = ? WHERE id = ?", now, modseq, o.ID); err != nil {
				return nil, fmt.Errorf("tombstone %s: %w", e.Path, err)
			}
			ok = false
			res.Changed++
		case ok:
			res.Changed++
		default:
			res.Added++
		}
		if ok {
			_, err = tx.ExecContext(ctx, "UPDATE files SET media_type = ?, size = ?, mtime = ?, etag = ?, hash = ?, modseq = ?, updated_at = ? WHERE id = ?",
				e.MediaType, e.Size, mtime, e.ETag, hash, modseq, now, o.ID)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO files(collection_id, path, is_dir, media_type, size, mtime, etag, hash, modseq, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, e.Path, b2i(e.IsDir), e.MediaType, e.Size, mtime, e.ETag, hash, modseq, now, now)
		}
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", e.Path, err)
		}
	}
	for _, p := range deleted {
		o, ok := byPath[p]
		if !ok {
			continue
		}
		res.Deleted++
		if _, err := tx.ExecContext(ctx, "UPDATE files SET deleted_at = ?, modseq = ? WHERE id = ?", now, modseq, o.ID); err != nil {
			return nil, fmt.Errorf("tombstone %s: %w", p, err)
		}
	}
	if ctag != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO collection_cursors(collection_id, ctag, updated_at) VALUES (?, ?, ?)
			ON CONFLICT(collection_id) DO UPDATE SET ctag = excluded.ctag, updated_at = excluded.updated_at`, id, ctag, now); err != nil {
			return nil, fmt.Errorf("store cursor of %s: %w", root, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit %s: %w", root, err)
	}
	return res, nil
}

// Files returns a file collection's entries ordered by path (a folder
// before what it holds), with the tombstones when withDeleted.
func (a *Archive) Files(ctx context.Context, collection int64, withDeleted bool) ([]File, error) {
	return files(ctx, a.db, collection, withDeleted)
}

func files(ctx context.Context, q queryer, coll int64, withDeleted bool) ([]File, error) {
	query := "SELECT id, collection_id, path, is_dir, media_type, size, mtime, etag, COALESCE(hash, ''), modseq, deleted_at IS NOT NULL FROM files WHERE collection_id = ?"
	if !withDeleted {
		query += " AND deleted_at IS NULL"
	}
	rows, err := q.QueryContext(ctx, query+" ORDER BY path, id", coll)
	if err != nil {
		return nil, fmt.Errorf("read files: %w", err)
	}
	defer rows.Close()
	var out []File
	for rows.Next() {
		var f File
		var dir, del int
		var mtime sql.NullInt64
		if err := rows.Scan(&f.ID, &f.CollectionID, &f.Path, &dir, &f.MediaType, &f.Size, &mtime, &f.ETag, &f.Hash, &f.ModSeq, &del); err != nil {
			return nil, fmt.Errorf("read files: %w", err)
		}
		f.IsDir, f.Deleted = dir != 0, del != 0
		if mtime.Valid {
			f.MTime = time.Unix(mtime.Int64, 0).UTC()
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// RetireFileCollections tombstones the source's live file collections
// whose root is not in live, with their files.
func (a *Archive) RetireFileCollections(ctx context.Context, src Source, live []string) (int, error) {
	keep := map[string]bool{}
	for _, h := range live {
		keep[h] = true
	}
	rows, err := a.db.QueryContext(ctx, `SELECT id, href FROM collections WHERE kind = ? AND source_kind = ? AND source_endpoint = ? AND account = ? AND deleted_at IS NULL`,
		CollectionFiles, src.Kind, src.Endpoint, src.Account)
	if err != nil {
		return 0, fmt.Errorf("read file collections: %w", err)
	}
	var gone []int64
	for rows.Next() {
		var id int64
		var href string
		if err := rows.Scan(&id, &href); err != nil {
			rows.Close()
			return 0, err
		}
		if !keep[href] {
			gone = append(gone, id)
		}
	}
	rows.Close()
	now := time.Now().Unix()
	for _, id := range gone {
		if _, err := a.db.ExecContext(ctx, `UPDATE collections SET deleted_at = ? WHERE id = ?`, now, id); err != nil {
			return 0, err
		}
		if _, err := a.db.ExecContext(ctx, `UPDATE files SET deleted_at = ? WHERE collection_id = ? AND deleted_at IS NULL`, now, id); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}
