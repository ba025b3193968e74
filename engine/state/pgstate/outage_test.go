package pgstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/pgdb"
)

// outageDB takes one test database away and brings it back without
// stopping the shared server: ALLOW_CONNECTIONS false and its sessions
// ended (as TestFleetDatabaseOutage does).
type outageDB struct {
	t     *testing.T
	admin string // the maintenance database
	db    string
}

func newOutageDB(t *testing.T, dsn string) *outageDB {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	o := &outageDB{t: t, admin: peers.Get(t).Postgres.DSN, db: cfg.Database}
	t.Cleanup(o.up)
	return o
}

func (o *outageDB) exec(q string, args ...any) {
	o.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, o.admin)
	if err != nil {
		o.t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, q, args...); err != nil {
		o.t.Fatal(err)
	}
}

// down refuses new connections and ends every session of the database
// except the backend pids in keep; it returns once they are gone.
func (o *outageDB) down(keep ...int32) {
	o.t.Helper()
	if keep == nil {
		keep = []int32{}
	}
	o.exec(`ALTER DATABASE ` + o.db + ` ALLOW_CONNECTIONS false`)
	o.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> ALL($2) AND pid <> pg_backend_pid()`, o.db, keep)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, o.admin)
	if err != nil {
		o.t.Fatal(err)
	}
	defer c.Close(ctx)
	for range 300 {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> ALL($2)`, o.db, keep).Scan(&n); err != nil {
			o.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	o.t.Fatal("the database's sessions did not end")
}

func (o *outageDB) up() { o.exec(`ALTER DATABASE ` + o.db + ` ALLOW_CONNECTIONS true`) }

// lockedJournal opens a store waiting up to wait through outages, takes
// the lock and writes two records.
func lockedJournal(t *testing.T, dsn string, wait time.Duration) (*Store, state.Unlocker, *state.Journal) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, dsn, &pgdb.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.SetOutageWait(wait, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	b := state.Remote{Store: s}
	l, _, err := b.Lock(ctx, "one@example.test", "apply")
	if err != nil {
		t.Fatal(err)
	}
	j, err := b.OpenJournal(ctx, fixedOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	return s, l, j
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func records(t *testing.T, s *Store) uint64 {
	t.Helper()
	res, err := state.Remote{Store: s}.Verify(context.Background())
	if err != nil || !res.OK {
		t.Fatalf("verify: %+v %v", res, err)
	}
	return res.Records
}

// TestLockOutage: the database goes away under a held lock.
//   - back within the wait: the append that was waiting goes through on a
//     new session holding the lock again, the chain verifies, the lock is
//     live, and it unlocks cleanly;
//   - the keeper takes the lock again without any append;
//   - longer than the wait: the append fails with ErrLockLost, and the
//     next taker takes the dead holder's lock over;
//   - another process takes the lock meanwhile, or appends to the
//     journal: ErrLockLost, and this run appends nothing.
func TestLockOutage(t *testing.T) {
	ctx := context.Background()

	t.Run("back within the wait", func(t *testing.T) {
		dsn := peers.Get(t).Postgres.NewDatabase(t)
		o := newOutageDB(t, dsn)
		s, l, j := lockedJournal(t, dsn, 30*time.Second)
		o.down()
		done := make(chan error, 1)
		go func() {
			_, err := j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"})
			done <- err
		}()
		time.Sleep(time.Second) // the append waits meanwhile
		select {
		case err := <-done:
			t.Fatalf("the append did not wait for the database: %v", err)
		default:
		}
		o.up()
		if err := <-done; err != nil {
			t.Fatalf("append after the outage: %v", err)
		}
		if n := records(t, s); n != 3 {
			t.Fatalf("%d records, want 3 (init and two holds)", n)
		}
		info, err := s.ReadLock(ctx)
		if err != nil || info == nil || info.Liveness() != state.LockAlive {
			t.Fatalf("lock after the outage: %+v %v", info, err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
		if info, err := s.ReadLock(ctx); err != nil || info != nil {
			t.Fatalf("after unlock: %+v %v", info, err)
		}
	})

	t.Run("keeper", func(t *testing.T) {
		dsn := peers.Get(t).Postgres.NewDatabase(t)
		o := newOutageDB(t, dsn)
		s, l, j := lockedJournal(t, dsn, 30*time.Second)
		o.down()
		time.Sleep(2 * time.Second)
		o.up()
		// Nothing appends: the keeper notices the ended session and
		// takes the lock again once the database is back.
		alive := false
		for range 200 {
			info, err := s.ReadLock(ctx)
			if err == nil && info != nil && info.Liveness() == state.LockAlive {
				alive = true
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !alive {
			t.Fatal("the keeper did not take the lock again")
		}
		if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"}); err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("longer than the wait", func(t *testing.T) {
		dsn := peers.Get(t).Postgres.NewDatabase(t)
		o := newOutageDB(t, dsn)
		s, l, j := lockedJournal(t, dsn, 2*time.Second)
		o.down()
		_, err := j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"})
		if !errors.Is(err, ErrLockLost) || !errors.Is(err, pgdb.ErrOutageTooLong) {
			t.Fatalf("append through a long outage: %v", err)
		}
		o.up()
		if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "c@example.test"}); !errors.Is(err, ErrLockLost) {
			t.Fatalf("append after the lock was lost: %v", err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatalf("unlock of a lost lock: %v", err)
		}
		if n := records(t, s); n != 2 {
			t.Fatalf("%d records, want 2", n)
		}
		other, err := Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		l2, taken, err := state.Remote{Store: other}.Lock(ctx, "two@example.test", "apply")
		if err != nil || taken == nil || taken.Owner != "one@example.test" {
			t.Fatalf("the next run's lock: %v %+v", err, taken)
		}
		l2.Unlock()
	})

	t.Run("force-unlock", func(t *testing.T) {
		// Waiting through outages does not make a run survive
		// "state force-unlock": its row is gone when it reconnects.
		dsn := peers.Get(t).Postgres.NewDatabase(t)
		s, l, j := lockedJournal(t, dsn, 30*time.Second)
		other, err := Open(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if _, err := other.ForceUnlock(ctx, s.lockID); err != nil {
			t.Fatal(err)
		}
		_, err = j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"})
		if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "force-unlock") {
			t.Fatalf("append after force-unlock: %v", err)
		}
		if err := l.Unlock(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := (state.Remote{Store: other}).Lock(ctx, "two@example.test", "apply"); err != nil {
			t.Fatalf("lock after force-unlock: %v", err)
		}
	})

	for _, tc := range []struct {
		name  string
		other func(t *testing.T, c *pgx.Conn, lockID string)
		want  string
	}{
		{"another process took the lock", func(t *testing.T, c *pgx.Conn, _ string) {
			// What Store.Lock does when it takes a dead holder's lock.
			var got bool
			if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, applyLock).Scan(&got); err != nil || !got {
				t.Fatalf("take the lock: %v %v", got, err)
			}
			if _, err := c.Exec(ctx, `UPDATE mailmig_state_lock SET lock_id = 'foreign', info = '{"id":"foreign","owner":"two@example.test"}', backend_pid = pg_backend_pid()`); err != nil {
				t.Fatal(err)
			}
		}, "another process took the apply lock"},
		{"another process took the lock and finished", func(t *testing.T, c *pgx.Conn, _ string) {
			if _, err := c.Exec(ctx, `DELETE FROM mailmig_state_lock`); err != nil {
				t.Fatal(err)
			}
		}, "released by another process"},
		{"another process appended", func(t *testing.T, c *pgx.Conn, _ string) {
			if _, err := c.Exec(ctx, `INSERT INTO mailmig_journal (seq, line) SELECT max(seq) + 1, '{"seq":'||(max(seq)+1)||'}' FROM mailmig_journal`); err != nil {
				t.Fatal(err)
			}
		}, "which this run did not write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := peers.Get(t).Postgres.NewDatabase(t)
			o := newOutageDB(t, dsn)
			s, l, j := lockedJournal(t, dsn, 30*time.Second)
			before := records(t, s)
			// The other process is connected before the outage and acts
			// during it.
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			o.down(int32(c.PgConn().PID()))
			tc.other(t, c, s.lockID)
			if tc.name != "another process took the lock" {
				// It finished (its lock, if any, ended with it); the
				// one that took the lock keeps it, as a running apply.
				c.Close(ctx)
			}
			o.up()
			_, err = j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"})
			if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("append: %v, want ErrLockLost saying %q", err, tc.want)
			}
			o.up()
			var n int64
			if err := c2Count(dsn, &n); err != nil {
				t.Fatal(err)
			}
			want := before
			if tc.name == "another process appended" {
				want++
			}
			if uint64(n) != want {
				t.Fatalf("%d records after, want %d: this run appended", n, want)
			}
			if err := l.Unlock(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func c2Count(dsn string, n *int64) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, `SELECT count(*) FROM mailmig_journal`).Scan(n)
}

// TestLockOutageShared: a lock held in shared mode (apply workers: taken
// with pg_try_advisory_lock_shared, here by hand as the workers' lock
// does) is taken again in shared mode after an outage, beside another
// shared holder; an exclusive holder that took it meanwhile makes it lost.
func TestLockOutageShared(t *testing.T) {
	ctx := context.Background()
	for _, exclusiveMeanwhile := range []bool{false, true} {
		t.Run(fmt.Sprintf("exclusive meanwhile %v", exclusiveMeanwhile), func(t *testing.T) {
			dsn := peers.Get(t).Postgres.NewDatabase(t)
			o := newOutageDB(t, dsn)
			s, err := Open(ctx, dsn, &pgdb.Options{Create: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetOutageWait(30*time.Second, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
			shared := func() *pgx.Conn {
				c, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
				if err != nil {
					t.Fatal(err)
				}
				var got bool
				if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock_shared($1)`, applyLock).Scan(&got); err != nil || !got {
					t.Fatalf("shared lock: %v %v", got, err)
				}
				return c
			}
			conn := shared()
			s.mu.Lock()
			if err := s.heldLocked(ctx, conn, "pg_try_advisory_lock_shared"); err != nil {
				t.Fatal(err)
			}
			s.lockConn, s.lockID = conn, "worker-1"
			s.mu.Unlock()
			j, err := state.Remote{Store: s}.OpenJournal(ctx, fixedOpts())
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); err != nil {
				t.Fatal(err)
			}
			other := shared() // another worker, connected before the outage
			defer other.Close(ctx)
			o.down(int32(other.PgConn().PID()))
			if exclusiveMeanwhile {
				// The other worker finishes, and an exclusive holder (an
				// operator's "routes set", connected before the outage)
				// takes the lock.
				var got bool
				if err := other.QueryRow(ctx, `SELECT pg_advisory_unlock_shared($1) AND pg_try_advisory_lock($1)`, applyLock).Scan(&got); err != nil || !got {
					t.Fatalf("exclusive lock during the outage: %v %v", got, err)
				}
			}
			o.up()
			_, err = j.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"})
			if exclusiveMeanwhile {
				if !errors.Is(err, ErrLockLost) {
					t.Fatalf("append after an exclusive holder took the lock: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("append after the outage, beside another shared holder: %v", err)
			}
			if n := records(t, s); n != 3 {
				t.Fatalf("%d records, want 3", n)
			}
		})
	}
}
