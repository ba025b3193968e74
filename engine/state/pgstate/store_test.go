package pgstate

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/pgdb"
)

// newStore opens a store with the schema on a fresh database of the
// peers' PostgreSQL.
func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	dsn := peers.Get(t).Postgres.NewDatabase(t)
	s, err := Open(context.Background(), dsn, &pgdb.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func fixedOpts() *state.Options {
	n := 0
	return &state.Options{Actor: "tester@example.test", PlanHash: "h1", Lineage: func() string { return "lineage-1" },
		Now: func() time.Time { n++; return time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC) }}
}

// TestJournalRoundTrip: records appended to PostgreSQL fold to the same
// state when opened again (with and without the snapshot), verify passes,
// and the chain is the one a journal.jsonl with the same records has.
func TestJournalRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	b := state.Remote{Store: s}
	dir := t.TempDir()
	local, err := state.Open(dir, fixedOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	j, err := b.OpenJournal(ctx, fixedOpts())
	if err != nil {
		t.Fatal(err)
	}
	recs := []state.Record{
		{Type: state.TypeStart, Account: "a@example.test", Action: "import", Wave: "w1"},
		{Type: state.TypeFinish, Account: "a@example.test", Action: "import", Outcome: state.OutcomeOK, Counts: &state.Counts{Messages: 3}},
		{Type: state.TypeTransition, Account: "a@example.test", Phase: state.PhaseStaged},
	}
	for i, r := range recs {
		if _, err := j.Append(r); err != nil {
			t.Fatal(err)
		}
		if _, err := local.Append(r); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := j.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if j.Head() != local.Head() || j.Serial() != 4 {
		t.Fatalf("head %s serial %d, local head %s", j.Head(), j.Serial(), local.Head())
	}
	j.Close()

	j2, err := b.OpenJournal(ctx, &state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	a := j2.Account("a@example.test")
	if j2.Serial() != 4 || j2.Lineage() != "lineage-1" || a == nil || a.Phase != state.PhaseStaged || !a.Imported {
		t.Fatalf("folded %+v serial %d", a, j2.Serial())
	}
	if _, err := j2.Append(recs[0]); !errors.Is(err, state.ErrReadOnly) {
		t.Fatalf("read-only append: %v", err)
	}
	res, err := b.Verify(ctx)
	if err != nil || !res.OK || res.Records != 4 || res.Head != local.Head() {
		t.Fatalf("verify %+v %v", res, err)
	}
	n := 0
	if err := b.ReadRecords(ctx, func(r *state.Record) bool { n++; return true }); err != nil || n != 4 {
		t.Fatalf("read %d records: %v", n, err)
	}
}

// TestVerifyFindsEdits: a record changed in the table, a record removed
// from the end, and a stale snapshot that no longer matches.
func TestVerifyFindsEdits(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, sql string
		broken    uint64
	}{
		{"edited", `UPDATE mailmig_journal SET line = replace(line, '"import"', '"export"') WHERE seq = 2`, 3},
		{"edited last", `UPDATE mailmig_journal SET line = replace(line, '"staged"', '"done"') WHERE seq = 4`, 4},
		{"truncated", `DELETE FROM mailmig_journal WHERE seq = 4`, 4},
		{"gap", `DELETE FROM mailmig_journal WHERE seq = 2`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			b := state.Remote{Store: s}
			j, err := b.OpenJournal(ctx, fixedOpts())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []state.Record{
				{Type: state.TypeStart, Account: "a@example.test", Action: "import"},
				{Type: state.TypeFinish, Account: "a@example.test", Action: "import", Outcome: state.OutcomeOK},
				{Type: state.TypeTransition, Account: "a@example.test", Phase: state.PhaseStaged},
			} {
				if _, err := j.Append(r); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
			j.Close()
			if _, err := s.Pool().Exec(ctx, tc.sql); err != nil {
				t.Fatal(err)
			}
			res, err := b.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK || res.BrokenSeq != tc.broken {
				t.Fatalf("verify %+v, want broken at %d", res, tc.broken)
			}
			t.Log(res.Problem)
		})
	}
}

// TestAppendConflict: two journals opened at the same serial cannot both
// append the next record; the chain stays one.
func TestAppendConflict(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	b := state.Remote{Store: s}
	j1, err := b.OpenJournal(ctx, fixedOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j1.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	j2, err := b.OpenJournal(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j1.Append(state.Record{Type: state.TypeRelease, Account: "a@example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := j2.Append(state.Record{Type: state.TypeHold, Account: "b@example.test"}); !errors.Is(err, state.ErrConflict) {
		t.Fatalf("second writer: %v, want ErrConflict", err)
	}
	if res, err := b.Verify(ctx); err != nil || !res.OK || res.Records != 3 {
		t.Fatalf("verify %+v %v", res, err)
	}
}

// TestLock: a second taker is refused with the holder named; a holder
// whose session ended (a killed apply) leaves a dead lock that the next
// taker takes over; force-unlock ends a live holder's session, whose next
// record then fails.
func TestLock(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	b := state.Remote{Store: s}
	l1, taken, err := b.Lock(ctx, "one@example.test", "apply")
	if err != nil || taken != nil {
		t.Fatal(err, taken)
	}
	other, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ob := state.Remote{Store: other}
	_, _, err = ob.Lock(ctx, "two@example.test", "apply")
	var le *state.LockError
	if !errors.As(err, &le) || le.Info.Owner != "one@example.test" || !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	info, err := ob.ReadLock(ctx)
	if err != nil || info == nil || info.Liveness() != state.LockAlive {
		t.Fatalf("read lock %+v %v", info, err)
	}
	if err := l1.Unlock(); err != nil {
		t.Fatal(err)
	}
	if info, err := ob.ReadLock(ctx); err != nil || info != nil {
		t.Fatalf("after unlock %+v %v", info, err)
	}

	// A holder that dies: its session is ended by the server.
	l2, _, err := b.Lock(ctx, "one@example.test", "apply")
	if err != nil {
		t.Fatal(err)
	}
	terminate(t, dsn, s)
	info, err = ob.ReadLock(ctx)
	if err != nil || info == nil || info.Liveness() != state.LockDead {
		t.Fatalf("dead holder %+v %v", info, err)
	}
	l3, taken, err := ob.Lock(ctx, "two@example.test", "apply")
	if err != nil || taken == nil || taken.Owner != "one@example.test" || taken.Liveness() != state.LockDead {
		t.Fatalf("take over: %v %+v", err, taken)
	}
	// The dead holder's journal may not write.
	j, err := b.OpenJournal(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("append after the lock was lost: %v", err)
	}
	if _, err := j.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("second append after the lock was lost: %v", err)
	}
	// The lock ended with its session: unlocking it is not an error.
	if err := l2.Unlock(); err != nil {
		t.Fatalf("unlock of a lost lock: %v", err)
	}

	// Force-unlock of a live holder ends its session.
	cur, err := b.ReadLock(ctx)
	if err != nil || cur == nil {
		t.Fatal(err)
	}
	if _, err := b.ForceUnlock(ctx, "nope"); err == nil {
		t.Fatal("force-unlock with a wrong id succeeded")
	}
	if _, err := b.ForceUnlock(ctx, cur.ID); err != nil {
		t.Fatal(err)
	}
	j2, err := ob.OpenJournal(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j2.Append(state.Record{Type: state.TypeHold, Account: "a@example.test"}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("append after force-unlock: %v", err)
	}
	_ = l3.Unlock()
	if _, _, err := b.Lock(ctx, "three@example.test", "apply"); err != nil {
		t.Fatalf("lock after force-unlock: %v", err)
	}
}

// terminate ends the session holding s's lock from outside, as the server
// does when the holder's machine disappears.
func terminate(t *testing.T, dsn string, s *Store) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	s.mu.Lock()
	pid := s.lockConn.PgConn().PID()
	s.mu.Unlock()
	if _, err := c.Exec(ctx, fmt.Sprintf(`SELECT pg_terminate_backend(%d)`, pid)); err != nil {
		t.Fatal(err)
	}
	// The server ends the backend asynchronously: wait until it is gone.
	for i := 0; i < 200; i++ {
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the lock's session did not end")
}
