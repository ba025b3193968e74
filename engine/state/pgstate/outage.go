package pgstate

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/internal/pgdb"
)

// The apply lock through a database outage.
//
// The lock is a session advisory lock, so it ends with its session: a
// database that restarts or becomes unreachable takes the lock with it.
// With an outage wait set (SetOutageWait), the Store does not give up at
// once: it reconnects with a backoff and takes the lock again on a new
// session, but continues only when nothing happened in between that it
// would write beside — the lock's row still names this lock (nobody took
// the lock and released or kept it) and the journal's last record is
// still the last one written through this lock (nobody appended). Else,
// or when the wait runs out, the lock is lost as before (ErrLockLost).
//
// A keeper pings the lock's session every keepEvery, so a lost session is
// noticed (and the lock re-taken) as soon as the database is back, not
// only at the next journal record: the window in which another process
// could take the lock is the outage itself.

// exclusiveTry takes the apply lock exclusively (Store.Lock); the shared
// lock of apply workers uses pg_try_advisory_lock_shared.
const exclusiveTry = "pg_try_advisory_lock"

// sharedTry takes the apply lock in shared mode (Store.LockShared).
const sharedTry = "pg_try_advisory_lock_shared"

// keepEvery is the interval of the keeper's ping of the lock's session.
const keepEvery = time.Second

// pingTimeout bounds one ping of the keeper.
const pingTimeout = 5 * time.Second

// outage is the Store's state for waiting through an outage; guarded by
// Store.mu.
type outage struct {
	wait time.Duration
	log  *slog.Logger
	// try is the SQL function that took the lock, taken again with it on
	// a new session: pg_try_advisory_lock (exclusive) or
	// pg_try_advisory_lock_shared.
	try string
	// headSeq and headHash are the journal's last record as this lock
	// knows it: read when the lock was taken, then each record appended
	// through it. A shared lock's holders append beside each other, so
	// it is not checked for them (headKnown false).
	headSeq   uint64
	headHash  [32]byte
	headKnown bool
	// lost says why the lock was lost, for the appends after it.
	lost error

	stopMu sync.Mutex
	stop   context.CancelFunc // ends the keeper; guarded by stopMu
}

// SetOutageWait makes the Store wait up to d for the database when the
// apply lock's session ends, and take the lock again (see above); log
// gets what is waited for. 0 (the default) gives up at once.
func (s *Store) SetOutageWait(d time.Duration, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.out.wait, s.out.log = d, log
	if s.lockConn != nil && !s.lockLost {
		s.startKeeperLocked() // the lock was taken before the wait was set
	}
}

// startKeeperLocked starts the keeper unless it runs or there is no wait;
// s.mu held.
func (s *Store) startKeeperLocked() {
	s.out.stopMu.Lock()
	defer s.out.stopMu.Unlock()
	if s.out.stop != nil || s.out.wait <= 0 {
		return
	}
	kctx, cancel := context.WithCancel(context.Background())
	s.out.stop = cancel
	go s.keep(kctx)
}

// OutageWait returns the wait set by SetOutageWait: the journal gives a
// record's append that much more time (state.OutageWaiter).
func (s *Store) OutageWait() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.wait
}

// heldLocked starts the outage handling of a lock just taken on conn with
// the SQL function try (exclusiveTry, or pg_try_advisory_lock_shared: a
// lock taken without heldLocked is lost with its session, as before);
// called with s.mu held.
func (s *Store) heldLocked(ctx context.Context, conn *pgx.Conn, try string) error {
	s.out.try = try
	s.out.headKnown = false
	if try == exclusiveTry {
		seq, hash, err := lastRecord(ctx, conn)
		if err != nil {
			return fmt.Errorf("take the apply lock in %s: %w", s.Where(), err)
		}
		s.out.headSeq, s.out.headHash, s.out.headKnown = seq, hash, true
	}
	s.out.lost = nil
	s.startKeeperLocked()
	return nil
}

// cancelKeeper ends the keeper. Close and unlock call it before they take
// s.mu: a keeper waiting for the database holds s.mu, and lets go once
// cancelled.
func (s *Store) cancelKeeper() {
	s.out.stopMu.Lock()
	stop := s.out.stop
	s.out.stop = nil
	s.out.stopMu.Unlock()
	if stop != nil {
		stop()
	}
}

// lastRecord returns the seq and line hash of the journal's last record
// (0 when empty).
func lastRecord(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (uint64, [32]byte, error) {
	var (
		seq  int64
		line []byte
	)
	err := q.QueryRow(ctx, `SELECT seq, line FROM mailmig_journal ORDER BY seq DESC LIMIT 1`).Scan(&seq, &line)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, [32]byte{}, nil
	}
	if err != nil {
		return 0, [32]byte{}, err
	}
	return uint64(seq), sha256.Sum256(line), nil
}

// appended notes a record appended through the lock; s.mu held.
func (s *Store) appendedLocked(seq uint64, line []byte) {
	if s.out.headKnown {
		s.out.headSeq, s.out.headHash = seq, sha256.Sum256(line)
	}
}

// keep pings the lock's session until ctx ends, and takes the lock again
// when the session ended.
func (s *Store) keep(ctx context.Context) {
	t := time.NewTicker(keepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.lockConn == nil || s.lockLost {
			s.mu.Unlock()
			return
		}
		// Not under ctx: cancelling a ping would end the session that
		// unlock is about to release properly.
		pctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		err := s.lockConn.Ping(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			if !s.lockConn.IsClosed() {
				// A ping that timed out leaves the session in doubt:
				// end it and take the lock again like after an outage.
				s.lockConn.Close(context.Background())
			}
			_ = s.relockLocked(ctx, 0, nil, err)
		}
		s.mu.Unlock()
	}
}

// errLost is a definite loss: someone else took the lock or wrote the
// journal; waiting longer cannot help.
type errLost struct{ why string }

func (e errLost) Error() string { return e.why }

// appendThroughLockLocked inserts record seq with q through the lock's
// session; when the session ended it takes the lock again (relockLocked)
// and inserts on the new session. Called with s.mu held.
func (s *Store) appendThroughLockLocked(ctx context.Context, q string, seq uint64, line []byte) (int64, error) {
	if s.lockLost {
		if s.out.lost != nil {
			return 0, s.out.lost
		}
		return 0, ErrLockLost
	}
	// A database that comes back only to go again at once gets a few
	// more waits, not an endless loop.
	for range 5 {
		tag, err := s.lockConn.Exec(ctx, q, int64(seq), string(line))
		if err == nil {
			return tag.RowsAffected(), nil
		}
		if !s.lockConn.IsClosed() {
			return 0, err
		}
		if err := s.relockLocked(ctx, seq, line, err); err != nil {
			return 0, err
		}
	}
	return 0, s.loseLocked(fmt.Errorf("%w: the database kept ending the session", ErrLockLost))
}

// loseLocked marks the lock lost with err; s.mu held.
func (s *Store) loseLocked(err error) error {
	s.lockLost, s.out.lost = true, err
	return err
}

// relockLocked takes the lock again on a new session after its session
// ended with cause, waiting up to the outage wait for the database. A
// record seq with line may have been in flight when the session ended
// (0 and nil when none): finding it as the journal's last record is not a
// foreign append. It returns nil with s.lockConn replaced, or an error
// wrapping ErrLockLost (and the lock marked lost). Called with s.mu held.
func (s *Store) relockLocked(ctx context.Context, seq uint64, line []byte, cause error) error {
	if s.out.wait <= 0 || s.out.try == "" || !pgdb.Unreachable(cause) {
		return s.loseLocked(fmt.Errorf("%w: %w", ErrLockLost, cause))
	}
	s.out.log.Warn("lost the PostgreSQL session holding the apply lock; waiting for the database to take the lock again",
		"wait", s.out.wait.String(), "err", cause)
	start := time.Now()
	deadline := start.Add(s.out.wait)
	var pause time.Duration
	last := cause
	for {
		conn, err := s.retake(ctx, seq, line)
		if err == nil {
			s.lockConn.Close(context.Background())
			s.lockConn = conn
			// The pool's idle connections died with the outage too:
			// drop them rather than fail the next read on one.
			s.pool.Reset()
			s.out.log.Warn("took the apply lock again after the database came back", "after", time.Since(start).Round(time.Millisecond).String())
			return nil
		}
		if le, ok := errors.AsType[errLost](err); ok {
			s.out.log.Warn("the apply lock is lost", "err", le.why)
			return s.loseLocked(fmt.Errorf("%w: %s", ErrLockLost, le.why))
		}
		last = err
		pause = pgdb.NextPause(pause)
		if time.Now().Add(pause).After(deadline) || ctx.Err() != nil {
			return s.loseLocked(fmt.Errorf("%w: %w (%s): %w", ErrLockLost, pgdb.ErrOutageTooLong, s.out.wait, last))
		}
		if pgdb.Sleep(ctx, pause) != nil {
			return s.loseLocked(fmt.Errorf("%w: %w", ErrLockLost, last))
		}
	}
}

// retake connects and takes the lock in the mode it was held, then checks
// that nothing happened in between (see above). Errors are outages to
// wait through, except errLost.
func (s *Store) retake(ctx context.Context, seq uint64, line []byte) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT `+s.out.try+`($1)`, applyLock).Scan(&got); err != nil {
		return nil, err
	}
	// The lock's row describes an exclusive holder only; a shared holder
	// (apply workers) has nothing more to check here: the journal's
	// shared appends fold what others wrote.
	exclusive := s.out.try == exclusiveTry
	if !got && !exclusive {
		return nil, errLost{"a process holding the apply lock exclusively took it while this run had lost its database session"}
	}
	if !got {
		// Held. By our own old session, which the server has not yet seen
		// end (its connection vanished without a word)? Then end it and
		// try again; else someone else took the lock.
		var old int32
		hi, lo := lockKeyParts()
		err := conn.QueryRow(ctx, `SELECT l.backend_pid FROM mailmig_state_lock l WHERE l.lock_id = $1
			AND EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.pid = l.backend_pid
				AND k.classid::bigint = $2 AND k.objid::bigint = $3 AND k.objsubid = 1)`, s.lockID, hi, lo).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, errLost{"another process took the apply lock while this run had lost its database session"}
		}
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, old); err != nil {
			return nil, err
		}
		return nil, errors.New("the lock's old session still held it; ended it")
	}
	if exclusive {
		// Taking the lock exclusively removes every other holder's row, so
		// this run's row is still there only if nobody took the lock
		// meanwhile.
		var present bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailmig_state_lock WHERE lock_id = $1)`, s.lockID).Scan(&present); err != nil {
			return nil, err
		}
		if !present {
			return nil, errLost{"the apply lock was taken or released by another process while this run had lost its database session (state force-unlock, or another run that took it)"}
		}
	}
	if exclusive && s.out.headKnown {
		dbSeq, dbHash, err := lastRecord(ctx, conn)
		if err != nil {
			return nil, err
		}
		inFlight := line != nil && seq == s.out.headSeq+1 && dbSeq == seq && dbHash == sha256.Sum256(line)
		if !inFlight && (dbSeq != s.out.headSeq || dbHash != s.out.headHash) {
			return nil, errLost{fmt.Sprintf("the journal in the database ends at record %d, which this run did not write (its last is %d): another process wrote it while this run had lost its database session", dbSeq, s.out.headSeq)}
		}
	}
	// The row names the new session. A worker's row may have been
	// removed meanwhile by another worker as a dead holder's: write it
	// again (shared holders append beside each other; the journal's
	// shared appends fold what others wrote).
	b, _ := json.Marshal(s.lockInfo)
	if _, err := conn.Exec(ctx, `INSERT INTO mailmig_state_lock (lock_id, info, backend_pid, shared) VALUES ($1, $2, pg_backend_pid(), $3)
		ON CONFLICT (lock_id) DO UPDATE SET backend_pid = pg_backend_pid()`, s.lockID, string(b), !exclusive); err != nil {
		return nil, err
	}
	ok = true
	return conn, nil
}
