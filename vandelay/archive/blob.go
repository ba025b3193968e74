package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// ChunkSize is the size of the rows a blob is stored in. Readers stream one
// chunk at a time, so a large message is never loaded whole by [Archive.Blob].
const ChunkSize = 1 << 20

// Hash returns the archive's content hash of b: lowercase hex SHA-256.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// HasBlob reports whether the archive stores a blob with that hash.
func (a *Archive) HasBlob(ctx context.Context, hash string) (bool, error) {
	var n int
	err := a.db.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE hash = ?", hash).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Blob opens the raw bytes stored under hash, exactly as fetched from the
// source. The reader streams (from the pack file, or chunk by chunk for a
// blob stored before schema 10); close it when done. It is safe to read
// while other goroutines use the archive.
func (a *Archive) Blob(ctx context.Context, hash string) (io.ReadCloser, int64, error) {
	var size, chunks int64
	var off sql.NullInt64
	err := a.db.QueryRowContext(ctx, "SELECT size, chunks, pack_offset FROM blobs WHERE hash = ?", hash).Scan(&size, &chunks, &off)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("blob %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", hash, err)
	}
	if off.Valid {
		return packReader{io.NewSectionReader(a.pack, off.Int64, size)}, size, nil
	}
	return &blobReader{ctx: ctx, db: a.db, hash: hash, chunks: chunks}, size, nil
}

// packReader reads one blob's section of the pack.
type packReader struct{ *io.SectionReader }

func (packReader) Close() error { return nil }

// openPack opens the pack file, truncating what no committed blob
// references (see pack).
func (a *Archive) openPack(ctx context.Context) error {
	var used int64
	if err := a.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(pack_offset + size), 0) FROM blobs WHERE pack_offset IS NOT NULL").Scan(&used); err != nil {
		return fmt.Errorf("read pack extent: %w", err)
	}
	p, err := openPack(a.path+PackSuffix, a.readOnly, used)
	if err != nil {
		return err
	}
	a.pack = p
	return nil
}

// BlobBytes returns a whole blob in memory; for small blobs and tests.
func (a *Archive) BlobBytes(ctx context.Context, hash string) ([]byte, error) {
	r, size, err := a.Blob(ctx, hash)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := bytes.NewBuffer(make([]byte, 0, size))
	_, err = io.Copy(b, r)
	return b.Bytes(), err
}

type blobReader struct {
	ctx    context.Context
	db     *sql.DB
	hash   string
	chunks int64
	next   int64
	cur    []byte
	buf    []byte // the chunk buffer, reused from chunk to chunk
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.next >= r.chunks {
			return 0, io.EOF
		}
		if err := r.load(); err != nil {
			return 0, fmt.Errorf("read blob %s chunk %d: %w", r.hash, r.next, err)
		}
		r.next++
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// load reads chunk r.next into r.buf. Scanning into sql.RawBytes (valid
// until the rows close) and copying into the reused buffer spares the
// per-chunk clone that scanning into a []byte makes: one 1 MiB
// allocation less per chunk of every exported message.
func (r *blobReader) load() error {
	rows, err := r.db.QueryContext(r.ctx, "SELECT data FROM blob_chunks WHERE hash = ? AND n = ?", r.hash, r.next)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	var raw sql.RawBytes
	if err := rows.Scan(&raw); err != nil {
		return err
	}
	r.buf = append(r.buf[:0], raw...)
	r.cur = r.buf
	return rows.Close()
}

func (r *blobReader) Close() error { return nil }

// insertPacked records a blob whose bytes go to the pack at off, unless a
// blob with that hash is recorded already; tx syncs the pack before it
// commits (ptx.Commit).
func insertPacked(ctx context.Context, tx *ptx, hash string, size, off int64, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO blobs(hash, size, chunks, created_at, pack_offset) VALUES (?, ?, 0, ?, ?)",
		hash, size, now.Unix(), off)
	if err != nil {
		return false, fmt.Errorf("store blob: %w", err)
	}
	n, err := res.RowsAffected()
	if n > 0 {
		tx.packed = true
	}
	return n > 0, err
}

// putBlob stores body under its hash unless present; it reports whether it
// wrote a new blob. The bytes go to the pack file (one buffered append),
// the row that says where to the database.
func putBlob(ctx context.Context, tx *ptx, hash string, body []byte, now time.Time) (bool, error) {
	return tx.a.pack.appendIf(func(off int64) (bool, error) {
		return insertPacked(ctx, tx, hash, int64(len(body)), off, now)
	}, body, nil, int64(len(body)))
}

// putBlobFrom is putBlob for a body of size bytes read from r, so that a
// large message is never held whole in memory; from a file (the IMAP
// source's spool) the kernel copies it into the pack. r must yield exactly
// size bytes; when it fails, nothing is stored (the row is rolled back
// and the bytes it wrote are taken off the pack).
func putBlobFrom(ctx context.Context, tx *ptx, hash string, r io.Reader, size int64, now time.Time) (stored bool, err error) {
	// A savepoint, because the row is inserted before the reader has
	// yielded everything: when it fails, the row must go, not the batch
	// (whose other messages a saved cursor may already cover).
	if _, err := tx.ExecContext(ctx, "SAVEPOINT put_blob"); err != nil {
		return false, fmt.Errorf("store blob: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO put_blob"); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if _, rerr := tx.ExecContext(ctx, "RELEASE put_blob"); rerr != nil {
			stored, err = false, errors.Join(err, rerr)
		}
	}()
	stored, err = tx.a.pack.appendIf(func(off int64) (bool, error) {
		return insertPacked(ctx, tx, hash, size, off, now)
	}, nil, r, size)
	if err != nil {
		return false, fmt.Errorf("store blob: %w", err)
	}
	return stored, nil
}
