package archive

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrInUse is returned by [Open] when another process holds the archive.
var ErrInUse = errors.New("archive in use by another process")

// ErrNotExist is returned by [Open] with Options.ReadOnly when the archive
// file does not exist, or exists without a schema because the first run was
// killed before it committed anything.
var ErrNotExist = errors.New("archive does not exist")

// ErrTooNew is returned by [Open] when the archive was written by a newer
// mailmig whose schema this one does not know.
var ErrTooNew = errors.New("archive schema is newer than this mailmig")

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migration is one numbered schema step. The steps are the files
// migrations/NNNN_name.sql, applied in order, all pending ones inside one transaction;
// PRAGMA user_version records the last one applied. Numbers increase
// strictly; a gap is allowed (numbers are handed out to parallel lines of
// work before they merge), and a step is pending when its number is above
// the archive's version.
type Migration struct {
	// Version is the NNNN prefix of the file name.
	Version int
	// Name is the file name.
	Name string
	// SQL is the file's text.
	SQL string
}

// Migrations returns the embedded schema steps in order.
func Migrations() ([]Migration, error) {
	ents, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range ents {
		n, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("bad migration file name %q (want NNNN_name.sql)", e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version < 1 || i > 0 && m.Version <= ms[i-1].Version {
			return nil, fmt.Errorf("migration %s out of sequence (two steps numbered %d, or 0)", m.Name, m.Version)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int {
	ms, err := Migrations()
	if err != nil {
		panic(err) // embedded at build time; a test checks it
	}
	return ms[len(ms)-1].Version
}

// Options configure [Open]. A nil *Options means the defaults.
type Options struct {
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
	// ReadOnly opens an existing archive for reading with a shared lock:
	// several readers may share it, a writer may not. Default: false
	// (read-write, exclusive, created when missing).
	ReadOnly bool
	// Wait is how long Open waits for another process that holds the
	// lock (a plan reading the archive's overview holds a shared lock for
	// a few milliseconds) before it returns [ErrInUse]; Open returns
	// ctx's error when ctx ends first. Default: 0, fail at once.
	Wait time.Duration
}

// Archive is one open archive file. Its methods are safe for concurrent use
// by several goroutines; one process at a time holds it (see [ErrInUse]).
type Archive struct {
	db       *sql.DB
	path     string
	lockFile *os.File
	log      *slog.Logger
	readOnly bool
	// pack holds the blob bytes (see PackSuffix).
	pack *pack

	ckptMu sync.Mutex
	ckpts  map[*checkpointer]bool // of runs in progress
}

// lock takes the flock, retrying for up to wait while another process
// holds it. flock(2) cannot be interrupted by a context, so a blocking
// lock in a goroutine would outlive a cancelled caller; short retries
// keep the wait cancellable and the lock owned by this goroutine.
func lock(ctx context.Context, f *os.File, how int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Open opens (and, unless read-only, creates and migrates) the archive at
// path. It takes an exclusive advisory lock on the file (a shared one when
// read-only), so a second process gets [ErrInUse] instead of waiting.
func Open(ctx context.Context, path string, opts *Options) (*Archive, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	flag := os.O_RDWR | os.O_CREATE
	how := syscall.LOCK_EX
	if opts.ReadOnly {
		flag = os.O_RDONLY
		how = syscall.LOCK_SH
	}
	lf, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("open archive %s: %w", path, ErrNotExist)
		}
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	if err := lock(ctx, lf, how, opts.Wait); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open archive %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("lock archive %s: %w", path, err)
	}
	q := url.Values{}
	// cache_size: a small page cache (2 MiB, 32 pages of 64 KiB per
	// connection). Blob pages are written once and read once, so a cache
	// buys little; but with modernc's allocator every 64 KiB page is a
	// region of its own that is faulted in, and handed back with one
	// madvise each when the connection closes. Measured on the 3,000-message
	// import (docs/import.md, "Where the time goes"): 64 MiB gave 280 MB
	// peak RSS and about 1 s of CPU in madvise and page faults at Close;
	// 2 MiB gives about 75 MB and no measurable slowdown.
	//
	// temp_store: statement journals (SQLite keeps one per INSERT that a
	// constraint could abort half way: most of an import's) in memory, not
	// in a temporary file: the profile of the 3,000-message import showed
	// them as a third of SQLite's pwrite calls.
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)", "cache_size(-2048)", "wal_autocheckpoint(8192)", "temp_store(MEMORY)"} {
		q.Add("_pragma", p)
	}
	if opts.ReadOnly {
		q.Set("mode", "ro")
	} else {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	a := &Archive{db: db, path: path, lockFile: lf, log: log, readOnly: opts.ReadOnly}
	if fi, err := lf.Stat(); err == nil && fi.Size() == 0 && !opts.ReadOnly {
		if err := a.setPageSize(ctx); err != nil {
			a.Close()
			return nil, fmt.Errorf("create archive %s: %w", path, err)
		}
	}
	if err := a.migrate(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	if err := a.openPack(ctx); err != nil {
		a.Close()
		return nil, fmt.Errorf("open archive %s: %w", path, err)
	}
	return a, nil
}

// Path returns the archive's file name.
func (a *Archive) Path() string { return a.path }

// Close closes the database and releases the lock.
func (a *Archive) Close() error {
	a.stopCheckpointers()
	err := a.db.Close()
	if a.pack != nil {
		if perr := a.pack.close(); err == nil {
			err = perr
		}
	}
	// The flock is dropped with its descriptor, after SQLite closed its own
	// descriptors: closing ours first would also drop SQLite's POSIX locks.
	if cerr := a.lockFile.Close(); err == nil {
		err = cerr
	}
	return err
}

// PageSize is the SQLite page size of new archives: SQLite's default
// since blob bytes live in the pack file (schema 10) and the database holds
// only small rows. It was 64 KiB while blobs filled the database (16 times
// fewer page operations for the same bytes); for small rows a large page
// costs instead, as every changed page is copied whole into the statement
// journal and the WAL. Older archives keep their page size.
const PageSize = 4096

// setPageSize gives a new, empty database PageSize pages. SQLite ignores
// page_size in WAL mode (and modernc applies DSN pragmas in lexical order,
// journal_mode first), so leave WAL, set it, VACUUM, and return to WAL.
func (a *Archive) setPageSize(ctx context.Context) error {
	c, err := a.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range []string{"PRAGMA journal_mode=DELETE", fmt.Sprintf("PRAGMA page_size=%d", PageSize), "VACUUM", "PRAGMA journal_mode=WAL"} {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

func (a *Archive) migrate(ctx context.Context) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	var cur int
	if err := a.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
		var se *sqlite.Error
		if a.readOnly && errors.As(err, &se) && se.Code() == sqlite3.SQLITE_READONLY_ROLLBACK {
			// A hot rollback journal, which a reader cannot roll back.
			// An archive is in rollback-journal mode only while
			// setPageSize creates it, so this is a first run killed
			// before anything was committed: nothing to read yet, and
			// the next writer rolls the journal back.
			return fmt.Errorf("no schema yet (a first run was interrupted while creating it): %w", ErrNotExist)
		}
		return fmt.Errorf("read schema version: %w", err)
	}
	last := ms[len(ms)-1]
	if cur > last.Version {
		return fmt.Errorf("schema version %d, this build knows %d: %w", cur, last.Version, ErrTooNew)
	}
	if cur == 0 {
		// A file without a schema version is either empty (a first run
		// killed before its schema committed: nothing to read, nothing
		// lost) or some other program's database, which must not be
		// touched.
		var tables int
		if err := a.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&tables); err != nil {
			return fmt.Errorf("read schema: %w", err)
		}
		if tables > 0 {
			return fmt.Errorf("not a mailmig archive (a foreign SQLite database)")
		}
		if a.readOnly {
			return fmt.Errorf("no schema yet (a first run was interrupted before it committed anything): %w", ErrNotExist)
		}
	}
	if cur < last.Version && a.readOnly {
		return fmt.Errorf("schema version %d is older than %d; open it read-write once to migrate", cur, last.Version)
	}
	if cur == last.Version {
		return nil
	}
	pending := ms
	for len(pending) > 0 && pending[0].Version <= cur {
		pending = pending[1:]
	}
	// Every pending migration in one transaction: a run killed while
	// creating or upgrading an archive leaves it at a version this build
	// wrote whole (the old one, or the newest), never in between, so a
	// read-only reader after the kill finds what it expects.
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", last.Version)); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply migrations %s to %s: %w", pending[0].Name, last.Name, err)
	}
	for _, m := range pending {
		a.log.Info("archive migrated", "version", m.Version, "migration", m.Name)
	}
	return nil
}

// ModSeq returns the archive's change counter: every committed change to a
// mailbox or message stamps the row with a new, larger value, so a consumer
// that remembers the value it last saw can ask for what changed since
// ([MessageFilter.ChangedSince], [MailboxFilter.ChangedSince]).
func (a *Archive) ModSeq(ctx context.Context) (int64, error) {
	var s string
	if err := a.db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key='modseq'").Scan(&s); err != nil {
		return 0, fmt.Errorf("read archive modseq: %w", err)
	}
	return strconv.ParseInt(s, 10, 64)
}

func unixOrZero(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(n.Int64, 0).UTC()
}
