package archive

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrSourceChanged is returned by [Archive.BeginRun] when the archive holds
// mail from another source and RunOptions.AllowSourceChange is not set. The
// error is a *SourceChangeError.
var ErrSourceChanged = errors.New("archive holds mail from a different source")

// SourceChangeError names the two sources of a refused run.
type SourceChangeError struct {
	Old, New Source
}

// Error names both sources and the flag that overrides the guard.
func (e *SourceChangeError) Error() string {
	return fmt.Sprintf("archive holds mail from %s %s (account %s), not %s %s (account %s); pass --allow-source-change to import it anyway",
		e.Old.Kind, e.Old.Endpoint, e.Old.Account, e.New.Kind, e.New.Endpoint, e.New.Account)
}

// Is makes errors.Is(err, ErrSourceChanged) true.
func (e *SourceChangeError) Is(target error) bool { return target == ErrSourceChanged }

// RunOptions configure [Archive.BeginRun]. A nil *RunOptions means the
// defaults.
type RunOptions struct {
	// AllowSourceChange lets a run import a source other than the one the
	// archive holds. The old source's cursors and locations are dropped;
	// messages and mailboxes are matched again by content and path, and
	// what the new source lacks is tombstoned when the run completes.
	AllowSourceChange bool
	// DryRun keeps everything in one transaction that Finish rolls back:
	// the counts say what a real run would have done.
	DryRun bool
	// BatchMessages and BatchBytes bound a write transaction: after this
	// many added messages or bytes the batch is committed. Defaults: 200
	// and 32 MiB.
	BatchMessages int
	BatchBytes    int64
}

// Counts are what a run changed, as seen at its end.
type Counts struct {
	// MessagesAdded are new distinct messages; MessagesDeleted tombstoned
	// ones; MessagesMoved existing messages whose set of mailboxes changed
	// (moves, copies, removal from one of several mailboxes);
	// MessagesReflagged existing messages whose keywords changed.
	MessagesAdded, MessagesDeleted, MessagesMoved, MessagesReflagged int
	// MailboxesCreated, MailboxesRenamed and MailboxesDeleted count
	// mailbox changes (placeholder parents included).
	MailboxesCreated, MailboxesRenamed, MailboxesDeleted int
	// Fetched counts message bodies handed to Add and FetchedBytes their
	// size; BlobsStored and BlobBytes the ones that were new to the
	// archive.
	Fetched, BlobsStored    int
	FetchedBytes, BlobBytes int64
	// Skipped counts messages a source chose not to import (e.g. \Deleted).
	Skipped int
}

// Run is one import pass into the archive. Its methods are safe for
// concurrent use; writes are serialized and committed in batches, so a
// process killed at any moment leaves the archive as of the last batch.
// Sources must save a collection's cursor only after all of its changes
// were handed to the run (SetCursor is committed with them).
type Run struct {
	a    *Archive
	opts RunOptions
	src  Source

	mu      sync.Mutex
	tx      *ptx
	modseq  int64
	runID   int64
	pending int
	pendB   int64
	touched map[int64]*snap
	counts  Counts
	done    bool
	start   time.Time
	// ckpt checkpoints the WAL in the background (nil in a dry run);
	// walBytes counts the bytes committed since it was last woken.
	ckpt     *checkpointer
	walBytes int64
}

type snap struct {
	created   bool
	mailboxes string
	keywords  string
}

// BeginRun starts an import run for src. It applies the source-change
// guard ([ErrSourceChanged]).
func (a *Archive) BeginRun(ctx context.Context, src Source, opts *RunOptions) (*Run, error) {
	if a.readOnly {
		return nil, errors.New("archive opened read-only")
	}
	r := &Run{a: a, src: src, touched: map[int64]*snap{}, start: time.Now()}
	if opts != nil {
		r.opts = *opts
	}
	if r.opts.BatchMessages <= 0 {
		r.opts.BatchMessages = 200
	}
	if r.opts.BatchBytes <= 0 {
		r.opts.BatchBytes = 32 << 20
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	old, err := activeSource(ctx, tx)
	if err != nil {
		r.rollbackLocked()
		return nil, err
	}
	now := time.Now().Unix()
	switch {
	case old != nil && old.Same(src):
		r.src.ID = old.ID
		_, err = tx.ExecContext(ctx, "UPDATE sources SET login = ?, last_run_at = ? WHERE id = ?", src.Login, now, old.ID)
	case old != nil && !r.opts.AllowSourceChange:
		r.rollbackLocked()
		return nil, &SourceChangeError{Old: *old, New: src}
	default:
		if old != nil {
			// A new source: its identities (UIDs, UIDLs, file names) mean
			// nothing for the old one's, so drop them and match by content.
			// Snapshot first, so the counts compare with the old state.
			err = r.snapshotAllLocked(ctx, tx)
			for _, q := range []string{"UPDATE sources SET active = 0", "DELETE FROM cursors", "DELETE FROM locations"} {
				if err != nil {
					break
				}
				_, err = tx.ExecContext(ctx, q)
			}
		}
		if err == nil {
			err = tx.QueryRowContext(ctx, `INSERT INTO sources(kind, endpoint, account, login, first_run_at, last_run_at)
				VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, src.Kind, src.Endpoint, src.Account, src.Login, now, now).Scan(&r.src.ID)
		}
	}
	if err == nil {
		err = tx.QueryRowContext(ctx, "INSERT INTO runs(source_id, started_at) VALUES (?, ?) RETURNING id", r.src.ID, now).Scan(&r.runID)
	}
	if err != nil {
		r.rollbackLocked()
		return nil, fmt.Errorf("begin import run: %w", err)
	}
	if err := r.commitLocked(); err != nil {
		return nil, err
	}
	if !r.opts.DryRun {
		r.ckpt = startCheckpointer(a)
	}
	return r, nil
}

// TempDir is the directory of the archive file: where a source spools a
// message too large to hold in memory, on the archive's file system
// rather than in a memory-backed /tmp.
func (r *Run) TempDir() string { return filepath.Dir(r.a.path) }

// Source returns the run's source (with its archive id).
func (r *Run) Source() Source { return r.src }

// DryRun reports whether the run will be rolled back.
func (r *Run) DryRun() bool { return r.opts.DryRun }

// Counts returns the counters so far. Message counts (added, deleted,
// moved, reflagged) are computed by Finish; before it they are zero.
func (r *Run) Counts() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts
}

// Skip counts a message the source chose not to import.
func (r *Run) Skip() {
	r.mu.Lock()
	r.counts.Skipped++
	r.mu.Unlock()
}

func (r *Run) txLocked(ctx context.Context) (*ptx, error) {
	if r.done {
		return nil, errors.New("import run already finished")
	}
	if r.tx != nil {
		return r.tx, nil
	}
	// Not ctx: database/sql rolls a transaction back when its context is
	// cancelled, and a first SIGINT must still let Finish commit the batch.
	stx, err := r.a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	tx := &ptx{a: r.a, tx: stx, stmts: map[string]*sql.Stmt{}}
	var s string
	if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'modseq' RETURNING value").Scan(&s); err != nil {
		tx.Rollback()
		return nil, fmt.Errorf("bump archive modseq: %w", err)
	}
	r.modseq, _ = strconv.ParseInt(s, 10, 64)
	r.tx = tx
	return tx, nil
}

func (r *Run) commitLocked() error {
	if r.tx == nil || r.opts.DryRun {
		return nil
	}
	err := r.tx.Commit()
	r.tx = nil
	r.walBytes += r.pendB
	r.pending, r.pendB = 0, 0
	if err != nil {
		return fmt.Errorf("commit archive batch: %w", err)
	}
	if r.ckpt != nil && r.walBytes >= checkpointEvery {
		r.walBytes = 0
		r.ckpt.wake()
	}
	return nil
}

func (r *Run) rollbackLocked() {
	if r.tx != nil {
		r.tx.Rollback()
		r.tx = nil
	}
}

// Checkpoint commits the current batch (a no-op in a dry run).
func (r *Run) Checkpoint(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commitLocked()
}

// snapshotLocked records a message's state before the run first changes it.
func (r *Run) snapshotLocked(ctx context.Context, tx *ptx, id int64) error {
	if _, ok := r.touched[id]; ok {
		return nil
	}
	s := &snap{}
	if err := tx.QueryRowContext(ctx, "SELECT keywords FROM messages WHERE id = ?", id).Scan(&s.keywords); err != nil {
		return fmt.Errorf("read message %d: %w", id, err)
	}
	mbs, err := membership(ctx, tx, id)
	if err != nil {
		return err
	}
	s.mailboxes = mbs
	r.touched[id] = s
	return nil
}

// snapshotAllLocked records the state of every live message.
func (r *Run) snapshotAllLocked(ctx context.Context, tx *ptx) error {
	rows, err := tx.QueryContext(ctx, `SELECT m.id, m.keywords, l.mailbox_id FROM messages m
		LEFT JOIN (SELECT DISTINCT message_id, mailbox_id FROM locations) l ON l.message_id = m.id
		WHERE m.deleted_at IS NULL ORDER BY m.id, l.mailbox_id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kw string
		var mb sql.NullInt64
		if err := rows.Scan(&id, &kw, &mb); err != nil {
			return err
		}
		s := r.touched[id]
		if s == nil {
			s = &snap{keywords: kw}
			r.touched[id] = s
		}
		if mb.Valid {
			if s.mailboxes != "" {
				s.mailboxes += ","
			}
			s.mailboxes += strconv.FormatInt(mb.Int64, 10)
		}
	}
	return rows.Err()
}

func membership(ctx context.Context, tx *ptx, id int64) (string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT DISTINCT mailbox_id FROM locations WHERE message_id = ? ORDER BY mailbox_id", id)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var b int64
		if err := rows.Scan(&b); err != nil {
			return "", err
		}
		ids = append(ids, strconv.FormatInt(b, 10))
	}
	return strings.Join(ids, ","), rows.Err()
}

// recomputeLocked sets a message's keywords to the union of its locations'
// and stamps it with the run's modseq when anything may have changed.
func (r *Run) recomputeLocked(ctx context.Context, tx *ptx, id int64, membershipChanged bool) error {
	rows, err := tx.QueryContext(ctx, "SELECT keywords FROM locations WHERE message_id = ?", id)
	if err != nil {
		return err
	}
	var all []string
	n := 0
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		all = append(all, splitKeywords(k)...)
		n++
	}
	rows.Close()
	if n == 0 {
		// No copy left: keep the last keywords; Finish tombstones it if it
		// did not reappear elsewhere (a move) by then.
		if membershipChanged {
			_, err = tx.ExecContext(ctx, "UPDATE messages SET modseq = ? WHERE id = ?", r.modseq, id)
		}
		return err
	}
	kw := joinKeywords(all)
	if membershipChanged {
		_, err = tx.ExecContext(ctx, "UPDATE messages SET keywords = ?, modseq = ? WHERE id = ?", kw, r.modseq, id)
	} else {
		_, err = tx.ExecContext(ctx, "UPDATE messages SET keywords = ?, modseq = ? WHERE id = ? AND keywords != ?", kw, r.modseq, id, kw)
	}
	return err
}

// Location is where a source holds a copy of a message: a key unique in
// its mailbox (IMAP: the UID in decimal; POP3: the UIDL; Maildir: the
// unique part of the file name; Takeout: the content hash).
type Location struct {
	Key       string
	MessageID int64
	// Keywords are the copy's own JMAP keywords.
	Keywords []string
	// ModSeq is the source's modification sequence of the copy (IMAP
	// MODSEQ), 0 when the source has none.
	ModSeq uint64
}

// Locations returns the copies recorded for a mailbox, keyed by Key.
func (r *Run) Locations(ctx context.Context, mailboxID int64) (map[string]Location, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT key, message_id, keywords, modseq FROM locations WHERE mailbox_id = ?", mailboxID)
	if err != nil {
		return nil, fmt.Errorf("read locations: %w", err)
	}
	defer rows.Close()
	out := map[string]Location{}
	for rows.Next() {
		var l Location
		var kw string
		var ms int64
		if err := rows.Scan(&l.Key, &l.MessageID, &kw, &ms); err != nil {
			return nil, err
		}
		l.Keywords, l.ModSeq = splitKeywords(kw), uint64(ms)
		out[l.Key] = l
	}
	return out, rows.Err()
}

// LocationHashes returns the key of every copy in the archive with the
// hash of its message. Sources whose item ids are unique across folders
// and survive a move (Microsoft Graph's immutable ids) use it to record a
// moved message with [Run.AddKnown] instead of fetching it again.
func (r *Run) LocationHashes(ctx context.Context) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT l.key, m.blob FROM locations l JOIN messages m ON m.id = l.message_id")
	if err != nil {
		return nil, fmt.Errorf("read locations: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, h string
		if err := rows.Scan(&k, &h); err != nil {
			return nil, err
		}
		out[k] = h
	}
	return out, rows.Err()
}

// NewMessage is a message body a source hands to [Run.Add].
type NewMessage struct {
	// Body is the raw message, exactly as the source served it. The run
	// does not keep a reference after Add returns, so a source may reuse
	// the buffer for its next message.
	Body []byte
	// Content, when Body is nil, supplies the Size bytes of the message
	// instead (e.g. a large message spooled to a file while it was
	// hashed): Add reads it chunk by chunk into one buffer it reuses, and
	// only when the blob is new. Hash must then be set.
	Content io.Reader
	Size    int64
	// Hash is Hash(Body) when the source computed it while reading;
	// computed by Add when empty (required with Content).
	Hash string
	// ReceivedAt is the internal date; used when the message is new.
	ReceivedAt time.Time
	// Keywords of this copy.
	Keywords []string
	// ModSeq is the source's modification sequence of the copy.
	ModSeq uint64
}

// Add records a copy of a message at (mailboxID, key). A message with the
// same bytes already in the archive is reused (one message, several
// mailboxes; a move is a membership change), otherwise the blob is stored
// and a message created. Adding an existing location replaces it.
func (r *Run) Add(ctx context.Context, mailboxID int64, key string, m *NewMessage) error {
	hash := m.Hash
	if m.Body == nil && m.Content != nil {
		if hash == "" {
			return fmt.Errorf("archive message %s in mailbox %d: streamed content without its hash", key, mailboxID)
		}
	} else {
		if hash == "" {
			hash = Hash(m.Body)
		}
		m.Size = int64(len(m.Body))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	if err := r.addLocked(ctx, tx, mailboxID, key, hash, m); err != nil {
		return fmt.Errorf("archive message %s in mailbox %d: %w", key, mailboxID, err)
	}
	r.counts.Fetched++
	r.counts.FetchedBytes += m.Size
	r.pending++
	r.pendB += m.Size
	if r.pending >= r.opts.BatchMessages || r.pendB >= r.opts.BatchBytes {
		return r.commitLocked()
	}
	return nil
}

func (r *Run) addLocked(ctx context.Context, tx *ptx, mailboxID int64, key, hash string, m *NewMessage) error {
	// An existing copy at this location is replaced.
	var oldID int64
	err := tx.QueryRowContext(ctx, "SELECT message_id FROM locations WHERE mailbox_id = ? AND key = ?", mailboxID, key).Scan(&oldID)
	switch {
	case err == nil:
		if err := r.snapshotLocked(ctx, tx, oldID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM locations WHERE mailbox_id = ? AND key = ?", mailboxID, key); err != nil {
			return err
		}
		if err := r.recomputeLocked(ctx, tx, oldID, true); err != nil {
			return err
		}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	var id int64
	err = tx.QueryRowContext(ctx, "SELECT id FROM messages WHERE blob = ? AND deleted_at IS NULL", hash).Scan(&id)
	now := time.Now()
	switch {
	case err == nil:
		if err := r.snapshotLocked(ctx, tx, id); err != nil {
			return err
		}
	case errors.Is(err, sql.ErrNoRows):
		var stored bool
		switch {
		case r.opts.DryRun:
			// Rolled back at the end: the row for the counts, no bytes
			// (they would only grow the pack until the next open).
			stored, err = insertPacked(ctx, tx, hash, m.Size, -1, now)
		case m.Body == nil && m.Content != nil:
			stored, err = putBlobFrom(ctx, tx, hash, m.Content, m.Size, now)
		default:
			stored, err = putBlob(ctx, tx, hash, m.Body, now)
		}
		if err != nil {
			return err
		}
		if stored {
			r.counts.BlobsStored++
			r.counts.BlobBytes += m.Size
		}
		recv := m.ReceivedAt
		if recv.IsZero() {
			recv = now
		}
		if err := tx.QueryRowContext(ctx, `INSERT INTO messages(blob, size, received_at, keywords, modseq, created_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, hash, m.Size, recv.Unix(), joinKeywords(m.Keywords), r.modseq, now.Unix()).Scan(&id); err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		r.touched[id] = &snap{created: true}
		if _, err := tx.ExecContext(ctx, "INSERT INTO locations(mailbox_id, key, message_id, keywords, modseq) VALUES (?, ?, ?, ?, ?)",
			mailboxID, key, id, joinKeywords(m.Keywords), int64(m.ModSeq)); err != nil {
			return fmt.Errorf("insert location: %w", err)
		}
		return nil // a new message's keywords and modseq are already right
	default:
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO locations(mailbox_id, key, message_id, keywords, modseq) VALUES (?, ?, ?, ?, ?)",
		mailboxID, key, id, joinKeywords(m.Keywords), int64(m.ModSeq)); err != nil {
		return fmt.Errorf("insert location: %w", err)
	}
	return r.recomputeLocked(ctx, tx, id, true)
}

// AddKnown records a copy of a message whose content the archive already
// holds as a live message with that hash, without the body. It reports
// false (and changes nothing) when there is no such message.
func (r *Run) AddKnown(ctx context.Context, mailboxID int64, key, hash string, keywords []string, modseq uint64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return false, err
	}
	var id int64
	err = tx.QueryRowContext(ctx, "SELECT id FROM messages WHERE blob = ? AND deleted_at IS NULL", hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := r.addLocked(ctx, tx, mailboxID, key, hash, &NewMessage{Keywords: keywords, ModSeq: modseq}); err != nil {
		return false, err
	}
	return true, nil
}

// SetKeywords updates the keywords (and source modseq) of a copy.
func (r *Run) SetKeywords(ctx context.Context, mailboxID int64, key string, keywords []string, modseq uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	var id int64
	var old string
	if err := tx.QueryRowContext(ctx, "SELECT message_id, keywords FROM locations WHERE mailbox_id = ? AND key = ?", mailboxID, key).Scan(&id, &old); err != nil {
		return fmt.Errorf("set keywords of %s in mailbox %d: %w", key, mailboxID, err)
	}
	kw := joinKeywords(keywords)
	if _, err := tx.ExecContext(ctx, "UPDATE locations SET keywords = ?, modseq = ? WHERE mailbox_id = ? AND key = ?", kw, int64(modseq), mailboxID, key); err != nil {
		return err
	}
	if kw == old {
		return nil
	}
	if err := r.snapshotLocked(ctx, tx, id); err != nil {
		return err
	}
	return r.recomputeLocked(ctx, tx, id, false)
}

// Remove forgets the copy at (mailboxID, key): it disappeared at the
// source. A message left without copies is tombstoned by Finish unless it
// reappears elsewhere during the run.
func (r *Run) Remove(ctx context.Context, mailboxID int64, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	return r.removeLocked(ctx, tx, mailboxID, key)
}

func (r *Run) removeLocked(ctx context.Context, tx *ptx, mailboxID int64, key string) error {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT message_id FROM locations WHERE mailbox_id = ? AND key = ?", mailboxID, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.snapshotLocked(ctx, tx, id); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM locations WHERE mailbox_id = ? AND key = ?", mailboxID, key); err != nil {
		return err
	}
	return r.recomputeLocked(ctx, tx, id, true)
}

// ResetMailbox forgets every copy and the cursor of a mailbox, e.g. after
// an IMAP UIDVALIDITY change; the source then adds the copies again and
// they are matched to the existing messages by content.
func (r *Run) ResetMailbox(ctx context.Context, mailboxID int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	return r.resetLocked(ctx, tx, mailboxID)
}

func (r *Run) resetLocked(ctx context.Context, tx *ptx, mailboxID int64) error {
	rows, err := tx.QueryContext(ctx, "SELECT key FROM locations WHERE mailbox_id = ?", mailboxID)
	if err != nil {
		return err
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, k)
	}
	rows.Close()
	for _, k := range keys {
		if err := r.removeLocked(ctx, tx, mailboxID, k); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "DELETE FROM cursors WHERE mailbox_id = ?", mailboxID)
	return err
}

// Cursor is a collection's sync position. IMAP: Validity = UIDVALIDITY,
// Next = UIDNEXT, ModSeq = HIGHESTMODSEQ; other sources use Extra.
type Cursor struct {
	Validity, Next, ModSeq uint64
	Extra                  string
	// Updated is when the cursor was saved (zero when none is stored).
	Updated time.Time
}

// Cursor returns the mailbox's stored cursor (zero when none).
func (r *Run) Cursor(ctx context.Context, mailboxID int64) (Cursor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return Cursor{}, err
	}
	var c Cursor
	var v, n, m, u int64
	err = tx.QueryRowContext(ctx, "SELECT validity, next, modseq, extra, updated_at FROM cursors WHERE mailbox_id = ?", mailboxID).Scan(&v, &n, &m, &c.Extra, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return Cursor{}, nil
	}
	if err != nil {
		return c, fmt.Errorf("read cursor: %w", err)
	}
	c.Validity, c.Next, c.ModSeq, c.Updated = uint64(v), uint64(n), uint64(m), time.Unix(u, 0).UTC()
	return c, nil
}

// SetCursor saves a mailbox's cursor and commits the batch with it, so the
// cursor never runs ahead of the copies it covers.
func (r *Run) SetCursor(ctx context.Context, mailboxID int64, c Cursor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return err
	}
	if err := setCursor(ctx, tx, mailboxID, c); err != nil {
		return err
	}
	return r.commitLocked()
}

func setCursor(ctx context.Context, tx *ptx, mailboxID int64, c Cursor) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO cursors(mailbox_id, validity, next, modseq, extra, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(mailbox_id) DO UPDATE SET validity = excluded.validity, next = excluded.next, modseq = excluded.modseq,
		extra = excluded.extra, updated_at = excluded.updated_at`,
		mailboxID, int64(c.Validity), int64(c.Next), int64(c.ModSeq), c.Extra, time.Now().Unix()); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	return nil
}

// Result is what [Run.Finish] reports.
type Result struct {
	Counts
	// Complete is the value passed to Finish.
	Complete bool
	// DryRun reports that nothing was written.
	DryRun bool
	// Duration is the run's wall time.
	Duration time.Duration
}

// Finish ends the run. When complete is true (every in-scope collection
// was synced), messages left without any copy are tombstoned. The counts
// are computed, the run is recorded and the last batch committed — or,
// in a dry run, everything is rolled back.
func (r *Run) Finish(ctx context.Context, complete bool) (*Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if complete {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM messages m WHERE deleted_at IS NULL
			AND NOT EXISTS (SELECT 1 FROM locations l WHERE l.message_id = m.id)`)
		if err != nil {
			return nil, err
		}
		var orphans []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			orphans = append(orphans, id)
		}
		rows.Close()
		for _, id := range orphans {
			if err := r.snapshotLocked(ctx, tx, id); err != nil {
				return nil, err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE messages SET deleted_at = ?, modseq = ? WHERE id = ?", now.Unix(), r.modseq, id); err != nil {
				return nil, fmt.Errorf("tombstone message %d: %w", id, err)
			}
		}
	}
	if err := r.countLocked(ctx, tx); err != nil {
		return nil, err
	}
	status := "partial"
	if complete {
		status = "complete"
		if _, err := tx.ExecContext(ctx, "UPDATE sources SET last_complete_at = ? WHERE id = ?", now.Unix(), r.src.ID); err != nil {
			return nil, err
		}
	}
	counts := fmt.Sprintf(`{"added":%d,"deleted":%d,"moved":%d,"reflagged":%d,"mailboxes_created":%d,"mailboxes_renamed":%d,"mailboxes_deleted":%d,"fetched":%d,"fetched_bytes":%d,"skipped":%d}`,
		r.counts.MessagesAdded, r.counts.MessagesDeleted, r.counts.MessagesMoved, r.counts.MessagesReflagged,
		r.counts.MailboxesCreated, r.counts.MailboxesRenamed, r.counts.MailboxesDeleted, r.counts.Fetched, r.counts.FetchedBytes, r.counts.Skipped)
	if _, err := tx.ExecContext(ctx, "UPDATE runs SET finished_at = ?, status = ?, counts = ? WHERE id = ?", now.Unix(), status, counts, r.runID); err != nil {
		return nil, err
	}
	res := &Result{Counts: r.counts, Complete: complete, DryRun: r.opts.DryRun, Duration: now.Sub(r.start)}
	if r.opts.DryRun {
		r.rollbackLocked()
	} else if err := r.commitLocked(); err != nil {
		r.ckpt.stop()
		return nil, err
	}
	r.ckpt.stop()
	r.done = true
	return res, nil
}

// Abort rolls back the uncommitted batch and ends the run; committed
// batches stay (they are consistent and the next run resumes from them).
func (r *Run) Abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rollbackLocked()
	r.ckpt.stop()
	r.done = true
}

func (r *Run) countLocked(ctx context.Context, tx *ptx) error {
	c := &r.counts
	c.MessagesAdded, c.MessagesDeleted, c.MessagesMoved, c.MessagesReflagged = 0, 0, 0, 0
	for id, s := range r.touched {
		var kw string
		var deleted sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT keywords, deleted_at FROM messages WHERE id = ?", id).Scan(&kw, &deleted); err != nil {
			return fmt.Errorf("count changes: %w", err)
		}
		switch {
		case s.created:
			if !deleted.Valid {
				c.MessagesAdded++
			}
		case deleted.Valid:
			c.MessagesDeleted++
		default:
			mbs, err := membership(ctx, tx, id)
			if err != nil {
				return err
			}
			if mbs != s.mailboxes {
				c.MessagesMoved++
			}
			if kw != s.keywords {
				c.MessagesReflagged++
			}
		}
	}
	return nil
}

// MailboxInfo is a mailbox as a source lists it, for [Run.SyncMailboxes].
type MailboxInfo struct {
	// Path is the full UTF-8 name with Sep between levels.
	Path string
	Sep  string
	// Role is a Role* constant from the source (SPECIAL-USE), or "" to let
	// the name heuristic decide (RoleFromName).
	Role       string
	Subscribed bool
	// Selectable is false for \Noselect / \NonExistent parents.
	Selectable bool
	// SourceRef is a stable identity that survives a rename at the source
	// (IMAP: "uidvalidity:N" or a MAILBOXID; Maildir: the uidlist's
	// UIDVALIDITY); "" when there is none. It lets a renamed mailbox keep
	// its archive id and messages.
	SourceRef string
}

// SyncMailboxes makes the archive's mailboxes match the source's list:
// missing parents are added as placeholders, renames are detected by
// SourceRef, vanished mailboxes for which inScope returns true are
// tombstoned (their copies removed), and role, subscription and hierarchy
// updated. A nil inScope means every mailbox is in scope. It returns the
// live mailboxes by path.
func (r *Run) SyncMailboxes(ctx context.Context, list []MailboxInfo, inScope func(path string) bool) (map[string]*Mailbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	tx, err := r.txLocked(ctx)
	if err != nil {
		return nil, err
	}
	if inScope == nil {
		inScope = func(string) bool { return true }
	}
	out, err := r.syncMailboxesLocked(ctx, tx, list, inScope)
	if err != nil {
		return nil, fmt.Errorf("sync mailboxes: %w", err)
	}
	return out, r.commitLocked()
}

func (r *Run) syncMailboxesLocked(ctx context.Context, tx *ptx, list []MailboxInfo, inScope func(string) bool) (map[string]*Mailbox, error) {
	// Desired set, with placeholder parents.
	want := map[string]*MailboxInfo{}
	for i := range list {
		mi := list[i]
		if strings.EqualFold(mi.Path, "INBOX") {
			mi.Path = "INBOX"
		}
		if old, ok := want[mi.Path]; ok && old.Selectable {
			continue
		}
		want[mi.Path] = &mi
	}
	for _, mi := range list {
		if mi.Sep == "" {
			continue
		}
		p := mi.Path
		for {
			i := strings.LastIndex(p, mi.Sep)
			if i <= 0 {
				break
			}
			p = p[:i]
			if _, ok := want[p]; !ok {
				want[p] = &MailboxInfo{Path: p, Sep: mi.Sep, Selectable: false}
			}
		}
	}
	// Roles: explicit first (first path wins), then the name heuristic for
	// roles nobody claimed.
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	taken := map[string]bool{}
	for _, p := range paths {
		mi := want[p]
		if p == "INBOX" {
			mi.Role = RoleInbox
		}
		if mi.Role != "" {
			if taken[mi.Role] {
				mi.Role = ""
			} else {
				taken[mi.Role] = true
			}
		}
	}
	best := map[string]string{} // role → path with the lowest rank
	bestRank := map[string]int{}
	for _, p := range paths {
		mi := want[p]
		if mi.Role != "" || !mi.Selectable {
			continue
		}
		if g, rank := roleFromName(p, mi.Sep); g != "" && !taken[g] {
			if b, ok := bestRank[g]; !ok || rank < b {
				best[g], bestRank[g] = p, rank
			}
		}
	}
	for g, p := range best {
		want[p].Role = g
	}
	// Current live mailboxes.
	rows, err := tx.QueryContext(ctx, `SELECT id, path, name, sep, COALESCE(parent_id, 0), role, subscribed, selectable, modseq, created_at, deleted_at, source_ref
		FROM mailboxes WHERE deleted_at IS NULL`)
	if err != nil {
		return nil, err
	}
	type cur struct {
		*Mailbox
		ref string
	}
	have := map[string]*cur{}
	for rows.Next() {
		var m Mailbox
		var sub, sel int
		var created int64
		var deleted sql.NullInt64
		var ref string
		if err := rows.Scan(&m.ID, &m.Path, &m.Name, &m.Sep, &m.ParentID, &m.Role, &sub, &sel, &m.ModSeq, &created, &deleted, &ref); err != nil {
			rows.Close()
			return nil, err
		}
		m.Subscribed, m.Selectable = sub != 0, sel != 0
		have[m.Path] = &cur{&m, ref}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Renames: a vanished mailbox and a new one with the same SourceRef.
	byRef := map[string]*cur{}
	for p, c := range have {
		if _, still := want[p]; !still && c.ref != "" && inScope(p) {
			byRef[c.ref] = c
		}
	}
	type rename struct {
		c  *cur
		to string
	}
	var renames []rename
	for _, p := range paths {
		mi := want[p]
		if _, ok := have[p]; ok || mi.SourceRef == "" {
			continue
		}
		if c, ok := byRef[mi.SourceRef]; ok {
			delete(byRef, mi.SourceRef)
			renames = append(renames, rename{c, p})
		}
	}
	for _, rn := range renames {
		// Two steps so that swapped names do not collide on the unique path.
		if _, err := tx.ExecContext(ctx, "UPDATE mailboxes SET path = ? WHERE id = ?", fmt.Sprintf("\x00renaming-%d", rn.c.ID), rn.c.ID); err != nil {
			return nil, err
		}
		delete(have, rn.c.Path)
	}
	for _, rn := range renames {
		if _, err := tx.ExecContext(ctx, "UPDATE mailboxes SET path = ?, modseq = ? WHERE id = ?", rn.to, r.modseq, rn.c.ID); err != nil {
			return nil, err
		}
		rn.c.Path = rn.to
		have[rn.to] = rn.c
		r.counts.MailboxesRenamed++
	}
	// Deletions.
	for p, c := range have {
		if _, ok := want[p]; ok || !inScope(p) {
			continue
		}
		if err := r.resetLocked(ctx, tx, c.ID); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE mailboxes SET deleted_at = ?, modseq = ? WHERE id = ?", time.Now().Unix(), r.modseq, c.ID); err != nil {
			return nil, err
		}
		delete(have, p)
		r.counts.MailboxesDeleted++
	}
	// Creations and updates, parents first (shorter paths sort first
	// within a hierarchy because the separator follows the parent name).
	sort.Slice(paths, func(i, j int) bool {
		di, dj := strings.Count(paths[i], want[paths[i]].Sep), strings.Count(paths[j], want[paths[j]].Sep)
		if want[paths[i]].Sep == "" {
			di = 0
		}
		if want[paths[j]].Sep == "" {
			dj = 0
		}
		if di != dj {
			return di < dj
		}
		return paths[i] < paths[j]
	})
	now := time.Now().Unix()
	for _, p := range paths {
		mi := want[p]
		name, parent := p, int64(0)
		if mi.Sep != "" {
			if i := strings.LastIndex(p, mi.Sep); i > 0 {
				name = p[i+len(mi.Sep):]
				if pc, ok := have[p[:i]]; ok {
					parent = pc.ID
				}
			}
		}
		var parentArg any
		if parent != 0 {
			parentArg = parent
		}
		c, ok := have[p]
		if !ok {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO mailboxes(path, name, sep, parent_id, role, subscribed, selectable, source_ref, modseq, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, p, name, mi.Sep, parentArg, mi.Role, b2i(mi.Subscribed), b2i(mi.Selectable),
				mi.SourceRef, r.modseq, now).Scan(&id); err != nil {
				return nil, fmt.Errorf("create mailbox %q: %w", p, err)
			}
			have[p] = &cur{&Mailbox{ID: id, Path: p, Name: name, Sep: mi.Sep, ParentID: parent, Role: mi.Role,
				Subscribed: mi.Subscribed, Selectable: mi.Selectable, ModSeq: r.modseq, Created: time.Unix(now, 0).UTC()}, mi.SourceRef}
			r.counts.MailboxesCreated++
			continue
		}
		if c.Name != name || c.Sep != mi.Sep || c.ParentID != parent || c.Role != mi.Role || c.Subscribed != mi.Subscribed ||
			c.Selectable != mi.Selectable || c.ref != mi.SourceRef || c.ModSeq == r.modseq {
			if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET name = ?, sep = ?, parent_id = ?, role = ?, subscribed = ?, selectable = ?,
				source_ref = ?, modseq = ? WHERE id = ?`, name, mi.Sep, parentArg, mi.Role, b2i(mi.Subscribed), b2i(mi.Selectable),
				mi.SourceRef, r.modseq, c.ID); err != nil {
				return nil, fmt.Errorf("update mailbox %q: %w", p, err)
			}
			c.Name, c.Sep, c.ParentID, c.Role, c.Subscribed, c.Selectable, c.ref, c.ModSeq = name, mi.Sep, parent, mi.Role, mi.Subscribed, mi.Selectable, mi.SourceRef, r.modseq
		}
	}
	out := map[string]*Mailbox{}
	for p, c := range have {
		out[p] = c.Mailbox
	}
	return out, nil
}
