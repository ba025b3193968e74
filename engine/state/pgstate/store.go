package pgstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/pgdb"
)

// applyLock is the advisory lock key of the apply lock ("mmapply!" as
// eight bytes).
const applyLock int64 = 0x6d6d6170706c7921

// Store is a state.RecordStore in PostgreSQL. Its methods are safe for
// concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	cfg   *pgx.ConnConfig
	where string

	mu       sync.Mutex
	lockConn *pgx.Conn // the session holding the apply lock, nil when not held
	lockID   string
	lockInfo state.LockInfo
	lockLost bool   // the lock's session ended while held
	out      outage // waiting through an outage (outage.go)
}

var _ state.RecordStore = (*Store)(nil)

// Open connects to the database of dsn and checks its schema; with
// opts.Create it creates or upgrades it. A database without the schema
// is an error wrapping pgdb.ErrNoSchema that says how to create it.
func Open(ctx context.Context, dsn string, opts *pgdb.Options) (*Store, error) {
	cfg, err := pgdb.ParseConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	pool, err := pgdb.Open(ctx, dsn, opts)
	if err != nil {
		if errors.Is(err, pgdb.ErrNoSchema) {
			// pgdb's advice names the route table's commands; say what
			// creates the state's.
			return nil, fmt.Errorf("PostgreSQL %s: %w; check that the connection string names the right database, then run \"mailmig apply\" (or \"mailmig state migrate -to postgres\" to bring a local state) to create it", pgdb.Where(cfg.ConnConfig), pgdb.ErrNoSchema)
		}
		return nil, err
	}
	return &Store{pool: pool, cfg: cfg.ConnConfig, where: pgdb.Where(cfg.ConnConfig)}, nil
}

// Where names the database: user@host:port/db.
func (s *Store) Where() string { return "PostgreSQL " + s.where }

// Pool returns the connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close ends the lock's session if it is still held and closes the pool.
func (s *Store) Close() error {
	s.cancelKeeper()
	s.mu.Lock()
	if s.lockConn != nil {
		s.lockConn.Close(context.Background())
		s.lockConn = nil
	}
	s.mu.Unlock()
	s.pool.Close()
	return nil
}

// Lines calls fn with every record after seq after, in order.
func (s *Store) Lines(ctx context.Context, after uint64, fn func(seq uint64, line []byte) error) error {
	rows, err := s.pool.Query(ctx, `SELECT seq, line FROM mailmig_journal WHERE seq > $1 ORDER BY seq`, int64(after))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq  int64
			line []byte
		)
		if err := rows.Scan(&seq, &line); err != nil {
			return err
		}
		if err := fn(uint64(seq), line); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Line returns record seq's line, nil when there is none.
func (s *Store) Line(ctx context.Context, seq uint64) ([]byte, error) {
	var line []byte
	err := s.pool.QueryRow(ctx, `SELECT line FROM mailmig_journal WHERE seq = $1`, int64(seq)).Scan(&line)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return line, err
}

// ErrLockLost means the session that held the apply lock ended (the
// server restarted, the network failed, an operator ran force-unlock):
// the lock ended with it, so this run may no longer write.
var ErrLockLost = errors.New("the PostgreSQL session holding the apply lock ended, and the lock with it; this run stops here (run the command again: it resumes from the journal)")

// Append inserts record seq, through the lock's session while this Store
// holds the lock.
func (s *Store) Append(ctx context.Context, seq uint64, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const q = `INSERT INTO mailmig_journal (seq, line) VALUES ($1, $2) ON CONFLICT (seq) DO NOTHING`
	var (
		n   int64
		err error
	)
	switch {
	case s.lockLost || s.lockConn != nil:
		// Through the lock's session, which is taken again after an
		// outage when the Store waits for one (outage.go).
		n, err = s.appendThroughLockLocked(ctx, q, seq, line)
	default:
		tag, e := s.pool.Exec(ctx, q, int64(seq), string(line))
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return err
	}
	if n == 1 {
		s.appendedLocked(seq, line)
		return nil
	}
	cur, err := s.Line(ctx, seq)
	if err != nil {
		return err
	}
	if bytes.Equal(cur, line) {
		s.appendedLocked(seq, line)
		return nil // an earlier try committed it
	}
	return fmt.Errorf("record %d: %w; open the journal again (run the command again)", seq, state.ErrConflict)
}

// Snapshot returns the stored snapshot, nil when there is none.
func (s *Store) Snapshot(ctx context.Context) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM mailmig_state_snapshot WHERE id = 1`).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return data, err
}

// PutSnapshot replaces the snapshot.
func (s *Store) PutSnapshot(ctx context.Context, serial uint64, data []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO mailmig_state_snapshot (id, serial, data, at) VALUES (1, $1, $2, now())
		ON CONFLICT (id) DO UPDATE SET serial = EXCLUDED.serial, data = EXCLUDED.data, at = EXCLUDED.at`, int64(serial), string(data))
	return err
}

// Empty reports whether the database holds no journal record and no
// snapshot ("mailmig state migrate" refuses a target that is not empty).
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailmig_journal) OR EXISTS (SELECT 1 FROM mailmig_state_snapshot)`).Scan(&any)
	return !any, err
}

// heldQuery tells whether backend pid $1 holds the apply lock.
const heldQuery = `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid::bigint = $2 AND objid::bigint = $3 AND objsubid = 1)`

func lockKeyParts() (hi, lo int64) {
	return int64(uint64(applyLock) >> 32), int64(uint64(applyLock) & 0xffffffff)
}

// Lock takes the apply lock on a session of its own. A row left by a
// holder whose session ended is reported as taken.
func (s *Store) Lock(ctx context.Context, info state.LockInfo) (state.Unlocker, *state.LockInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lockConn != nil {
		// Another command of this process (an admin API edit while
		// another runs) holds it: locked like by anyone else.
		return nil, nil, &state.LockError{Info: s.lockInfo}
	}
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return nil, nil, pgdb.Explain(s.where, err)
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, applyLock).Scan(&got); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		cur, err := s.ReadLock(ctx)
		if err != nil {
			return nil, nil, err
		}
		if cur == nil { // taken, its row not yet written
			cur = &state.LockInfo{Owner: "another session", Operation: "unknown"}
		}
		return nil, nil, &state.LockError{Info: *cur}
	}
	var taken *state.LockInfo
	var prev []byte
	switch err := conn.QueryRow(ctx, `SELECT info FROM mailmig_state_lock WHERE id = 1`).Scan(&prev); {
	case err == nil:
		var p state.LockInfo
		if json.Unmarshal(prev, &p) == nil {
			dead := false
			p.LiveSession = &dead
			taken = &p
		}
	case !errors.Is(err, pgx.ErrNoRows):
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	b, _ := json.Marshal(info)
	if _, err := conn.Exec(ctx, `INSERT INTO mailmig_state_lock (id, lock_id, info, backend_pid) VALUES (1, $1, $2, pg_backend_pid())
		ON CONFLICT (id) DO UPDATE SET lock_id = EXCLUDED.lock_id, info = EXCLUDED.info, backend_pid = EXCLUDED.backend_pid`, info.ID, string(b)); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	if err := s.heldLocked(ctx, conn, exclusiveTry); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	s.lockConn, s.lockID, s.lockInfo, s.lockLost = conn, info.ID, info, false
	return &lock{s: s, id: info.ID}, taken, nil
}

type lock struct {
	s    *Store
	id   string
	once sync.Once
}

// Unlock removes the holder's row and ends the lock's session (which
// releases the advisory lock even when the statements fail).
func (l *lock) Unlock() error {
	var err error
	l.once.Do(func() { err = l.s.unlock(l.id) })
	return err
}

func (s *Store) unlock(id string) error {
	s.cancelKeeper()
	s.mu.Lock()
	defer s.mu.Unlock()
	conn := s.lockConn
	if conn == nil || s.lockID != id {
		return errors.New("unlock: this process no longer holds the lock")
	}
	lost := s.lockLost || conn.IsClosed()
	s.lockConn, s.lockID, s.lockLost = nil, "", false
	s.out.try = "" // the next lock says how it was taken (heldLocked)
	if lost {
		// The lock ended with its session; the run already reported
		// that (ErrLockLost), and the row is a dead holder's, which the
		// next taker takes over.
		conn.Close(context.Background())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), state.RemoteTimeout)
	defer cancel()
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM mailmig_state_lock WHERE lock_id = $1`, id); err != nil {
		if conn.IsClosed() {
			return nil // as above
		}
		return fmt.Errorf("unlock: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, applyLock); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// ReadLock returns the holder's description, with LiveSession saying
// whether its session still holds the advisory lock; nil when no row.
func (s *Store) ReadLock(ctx context.Context) (*state.LockInfo, error) {
	var (
		b   []byte
		pid int32
	)
	err := s.pool.QueryRow(ctx, `SELECT info, backend_pid FROM mailmig_state_lock WHERE id = 1`).Scan(&b, &pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the lock in %s: %w", s.Where(), err)
	}
	var info state.LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("decode the lock in %s: %w", s.Where(), err)
	}
	hi, lo := lockKeyParts()
	var live bool
	if err := s.pool.QueryRow(ctx, heldQuery, pid, hi, lo).Scan(&live); err != nil {
		return nil, fmt.Errorf("read the lock in %s: %w", s.Where(), err)
	}
	info.LiveSession = &live
	return &info, nil
}

// ForceUnlock removes the lock with this id and ends its holder's session
// if it still runs: that run's next journal record fails (ErrLockLost).
func (s *Store) ForceUnlock(ctx context.Context, id string) (*state.LockInfo, error) {
	cur, err := s.ReadLock(ctx)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, state.ErrNotLocked
	}
	if cur.ID != id {
		return cur, fmt.Errorf("lock id %q does not match the current lock %s held by %s", id, cur.ID, cur.Owner)
	}
	// The row goes first: a holder waiting through outages takes its
	// lock again after its session ends, unless its row is gone.
	var pid int32
	if err := s.pool.QueryRow(ctx, `DELETE FROM mailmig_state_lock WHERE lock_id = $1 RETURNING backend_pid`, id).Scan(&pid); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return cur, fmt.Errorf("remove the lock: %w", err)
	}
	if *cur.LiveSession && pid != 0 {
		if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
			return cur, fmt.Errorf("end the session holding the lock: %w", err)
		}
	}
	return cur, nil
}
