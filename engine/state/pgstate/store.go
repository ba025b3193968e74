package pgstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/pgdb"
)

// applyLock is the advisory lock key of the apply lock ("mmapply!" as
// eight bytes).
const applyLock int64 = 0x6d6d6170706c7921

// appendTurn is the advisory lock key that makes the appenders of a shared
// journal take turns ("mmjturn!" as eight bytes).
const appendTurn int64 = 0x6d6d6a7475726e21

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
	lockLost bool // the lock's session ended while held
	// lockShared: lockConn holds the lock in shared mode (an apply worker).
	lockShared bool
}

var (
	_ state.RecordStore = (*Store)(nil)
	_ state.AppendTurns = (*Store)(nil)
)

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
	case s.lockLost:
		return ErrLockLost
	case s.lockConn != nil:
		tag, e := s.lockConn.Exec(ctx, q, int64(seq), string(line))
		n, err = tag.RowsAffected(), e
		if err != nil && s.lockConn.IsClosed() {
			s.lockLost = true
			return fmt.Errorf("%w: %w", ErrLockLost, err)
		}
	default:
		tag, e := s.pool.Exec(ctx, q, int64(seq), string(line))
		n, err = tag.RowsAffected(), e
	}
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	cur, err := s.Line(ctx, seq)
	if err != nil {
		return err
	}
	if bytes.Equal(cur, line) {
		return nil // an earlier try committed it
	}
	return fmt.Errorf("record %d: %w; open the journal again (run the command again)", seq, state.ErrConflict)
}

// AppendTurn waits for this process's turn to append to a shared
// journal: a session advisory lock on a connection of the pool, which
// PostgreSQL grants in the order asked. A process that dies in its turn
// ends it with its session.
func (s *Store) AppendTurn(ctx context.Context) (func(), error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock($1)`, appendTurn); err != nil {
		c.Release()
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), state.RemoteTimeout)
		defer cancel()
		if _, err := c.Exec(ctx, `SELECT pg_advisory_unlock($1)`, appendTurn); err != nil {
			// Not unlocked: end the session, which ends the turn.
			c.Conn().Close(ctx)
		}
		c.Release()
	}, nil
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

// PutSnapshot replaces the snapshot, unless the stored one covers more
// records that are still there: apply workers sharing the journal each
// write theirs, and one that folded less must not replace a longer one.
func (s *Store) PutSnapshot(ctx context.Context, serial uint64, data []byte) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO mailmig_state_snapshot (id, serial, data, at) VALUES (1, $1, $2, now())
		ON CONFLICT (id) DO UPDATE SET serial = EXCLUDED.serial, data = EXCLUDED.data, at = EXCLUDED.at
		WHERE mailmig_state_snapshot.serial <= EXCLUDED.serial
			OR NOT EXISTS (SELECT 1 FROM mailmig_journal j WHERE j.seq = mailmig_state_snapshot.serial)`, int64(serial), string(data))
	return err
}

// Empty reports whether the database holds no journal record and no
// snapshot ("mailmig state migrate" refuses a target that is not empty).
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var any bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailmig_journal) OR EXISTS (SELECT 1 FROM mailmig_state_snapshot)`).Scan(&any)
	return !any, err
}

// holdersQuery lists the lock's holders, each with whether its session
// still holds the advisory lock (in either mode).
const holdersQuery = `SELECT l.info, l.shared, EXISTS (SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted
	AND p.pid = l.backend_pid AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND p.classid::bigint = $1 AND p.objid::bigint = $2 AND p.objsubid = 1)
	FROM mailmig_state_lock l`

// deadHoldersDelete removes the rows of holders whose session no longer
// holds the advisory lock.
const deadHoldersDelete = `DELETE FROM mailmig_state_lock l WHERE NOT EXISTS (SELECT 1 FROM pg_locks p WHERE p.locktype = 'advisory' AND p.granted
	AND p.pid = l.backend_pid AND p.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND p.classid::bigint = $1 AND p.objid::bigint = $2 AND p.objsubid = 1)
	RETURNING l.info, l.shared`

func lockKeyParts() (hi, lo int64) {
	return int64(uint64(applyLock) >> 32), int64(uint64(applyLock) & 0xffffffff)
}

// Lock takes the apply lock on a session of its own. Rows left by holders
// whose session ended are removed; the first is reported as taken.
func (s *Store) Lock(ctx context.Context, info state.LockInfo) (state.Unlocker, *state.LockInfo, error) {
	return s.takeLock(ctx, info, false)
}

// LockShared takes the apply lock in shared mode on a session of its own:
// together with other apply workers, never with an exclusive holder.
// Rows left by holders whose session ended are removed; a dead exclusive
// holder (else the first dead worker) is reported as taken.
func (s *Store) LockShared(ctx context.Context, info state.LockInfo) (state.Unlocker, *state.LockInfo, error) {
	info.Shared = true
	return s.takeLock(ctx, info, true)
}

func (s *Store) takeLock(ctx context.Context, info state.LockInfo, shared bool) (state.Unlocker, *state.LockInfo, error) {
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
	try := `SELECT pg_try_advisory_lock($1)`
	if shared {
		try = `SELECT pg_try_advisory_lock_shared($1)`
	}
	var got bool
	if err := conn.QueryRow(ctx, try, applyLock).Scan(&got); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	if !got {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, s.lockedBy(ctx)
	}
	// Holding the lock, every row whose session no longer holds it is a
	// dead holder's (taking it exclusively, that is every row).
	hi, lo := lockKeyParts()
	rows, err := conn.Query(ctx, deadHoldersDelete, hi, lo)
	var taken *state.LockInfo
	if err == nil {
		for rows.Next() {
			var (
				b  []byte
				sh bool
			)
			if err = rows.Scan(&b, &sh); err != nil {
				break
			}
			var p state.LockInfo
			if json.Unmarshal(b, &p) == nil && (taken == nil || (taken.Shared && !sh)) {
				dead := false
				p.LiveSession = &dead
				taken = &p
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	b, _ := json.Marshal(info)
	if _, err := conn.Exec(ctx, `INSERT INTO mailmig_state_lock (lock_id, info, backend_pid, shared) VALUES ($1, $2, pg_backend_pid(), $3)`,
		info.ID, string(b), shared); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
	}
	s.lockConn, s.lockID, s.lockInfo, s.lockShared = conn, info.ID, info, shared
	return &lock{s: s, id: info.ID}, taken, nil
}

// lockedBy describes who holds the lock that could not be taken: the live
// exclusive holder, else every live apply worker.
func (s *Store) lockedBy(ctx context.Context) error {
	hs, err := s.ReadLocks(ctx)
	if err != nil {
		return err
	}
	var workers []state.LockInfo
	for _, h := range hs {
		if h.LiveSession == nil || !*h.LiveSession {
			continue
		}
		if !h.Shared {
			return &state.LockError{Info: h}
		}
		workers = append(workers, h)
	}
	if len(workers) > 0 {
		return &state.LockError{Info: workers[0], Holders: workers}
	}
	// Taken, its row not yet written.
	return &state.LockError{Info: state.LockInfo{Owner: "another session", Operation: "unknown"}}
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
	s.mu.Lock()
	defer s.mu.Unlock()
	conn := s.lockConn
	if conn == nil || s.lockID != id {
		return errors.New("unlock: this process no longer holds the lock")
	}
	lost := s.lockLost || conn.IsClosed()
	unlockSQL := `SELECT pg_advisory_unlock($1)`
	if s.lockShared {
		unlockSQL = `SELECT pg_advisory_unlock_shared($1)`
	}
	s.lockConn, s.lockID, s.lockLost, s.lockShared = nil, "", false, false
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
	if _, err := conn.Exec(ctx, unlockSQL, applyLock); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// ReadLock returns one holder's description, with LiveSession saying
// whether its session still holds the advisory lock: the first of
// ReadLocks (a live holder before a dead one); nil when no row.
func (s *Store) ReadLock(ctx context.Context) (*state.LockInfo, error) {
	hs, err := s.ReadLocks(ctx)
	if err != nil || len(hs) == 0 {
		return nil, err
	}
	return &hs[0], nil
}

// ReadLocks returns every holder's description, with LiveSession set:
// live holders before dead ones, the exclusive holder before workers,
// then by creation.
func (s *Store) ReadLocks(ctx context.Context) ([]state.LockInfo, error) {
	hi, lo := lockKeyParts()
	rows, err := s.pool.Query(ctx, holdersQuery, hi, lo)
	if err != nil {
		return nil, fmt.Errorf("read the lock in %s: %w", s.Where(), err)
	}
	defer rows.Close()
	var out []state.LockInfo
	for rows.Next() {
		var (
			b          []byte
			shared, ok bool
		)
		if err := rows.Scan(&b, &shared, &ok); err != nil {
			return nil, fmt.Errorf("read the lock in %s: %w", s.Where(), err)
		}
		var info state.LockInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return nil, fmt.Errorf("decode the lock in %s: %w", s.Where(), err)
		}
		live := ok
		info.LiveSession, info.Shared = &live, shared
		out = append(out, info)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the lock in %s: %w", s.Where(), err)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if *a.LiveSession != *b.LiveSession {
			return *a.LiveSession
		}
		if a.Shared != b.Shared {
			return !a.Shared
		}
		return a.Created.Before(b.Created)
	})
	return out, nil
}

// ForceUnlock removes the holder with this lock id (the exclusive one or
// one apply worker) and ends its session if it still runs: that run's
// next journal record fails (ErrLockLost).
func (s *Store) ForceUnlock(ctx context.Context, id string) (*state.LockInfo, error) {
	hs, err := s.ReadLocks(ctx)
	if err != nil {
		return nil, err
	}
	if len(hs) == 0 {
		return nil, state.ErrNotLocked
	}
	var cur *state.LockInfo
	for i := range hs {
		if hs[i].ID == id {
			cur = &hs[i]
		}
	}
	if cur == nil {
		if len(hs) == 1 {
			return &hs[0], fmt.Errorf("lock id %q does not match the current lock %s held by %s", id, hs[0].ID, hs[0].Owner)
		}
		ids := make([]string, len(hs))
		for i, h := range hs {
			ids[i] = h.ID + " (" + h.Operation + " by " + h.Owner + ")"
		}
		return &hs[0], fmt.Errorf("lock id %q matches none of the lock's holders: %s", id, strings.Join(ids, ", "))
	}
	if *cur.LiveSession {
		if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend(backend_pid) FROM mailmig_state_lock WHERE lock_id = $1`, id); err != nil {
			return cur, fmt.Errorf("end the session holding the lock: %w", err)
		}
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM mailmig_state_lock WHERE lock_id = $1`, id); err != nil {
		return cur, fmt.Errorf("remove the lock: %w", err)
	}
	return cur, nil
}
