package pgstate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
)

// Workers is one apply worker's registration and its account claims
// (mailmig_workers, mailmig_claims). Several "mailmig apply -worker NAME"
// processes share one state: each holds the apply lock in shared mode
// (state.Remote.LockShared) and claims the accounts it works on, so no
// account is worked on by two workers at once.
//
// A worker is live while its heartbeat is younger than its lease, and a
// claim holds until its lease_until; both are measured on the database's
// clock (now()), so the workers' clocks do not matter. Heartbeat renews
// both. A claim whose lease ran out (its worker died or lost the
// database) is taken over by the next worker that claims the account.
//
// An account's archive stays on the machine that imported it: SetArchive
// records which worker that is, and while that worker is live no other
// worker claims the account (archive affinity); once it is dead (or
// stopped), another worker may, and is told so (Claim.Takeover).
//
// Its methods are safe for concurrent use.
type Workers struct {
	s        *Store
	id       string
	lease    time.Duration
	instance string // tells this process from another registered under id

	mu   sync.Mutex
	held map[string]bool // accounts this worker claimed and did not release
}

// Claim is an account claimed (or held) by a worker.
type Claim struct {
	Account string
	// Worker holds the claim: the claimer for a claimed account; for a
	// held one the live worker holding it, "" when the account is only
	// held back because its archive is on another live worker.
	Worker string
	// ArchiveWorker keeps the account's archive; "" when no worker
	// recorded one (SetArchive).
	ArchiveWorker string
	// LeaseUntil is when the claim runs out unless renewed (database
	// clock); zero for an account held only by its archive.
	LeaseUntil time.Time
	// Takeover: the account was held, or its archive kept, by another
	// worker that is dead (or stopped); PrevWorker names it. The claimer
	// has no archive of the account (unless ArchiveWorker is itself) and
	// what the dead worker had in flight for it was interrupted.
	Takeover   bool
	PrevWorker string
}

// WorkerInfo describes a registered worker (ListWorkers).
type WorkerInfo struct {
	ID, Host string
	PID      int
	// Started and Heartbeat are on the database's clock; HeartbeatAge is
	// how long ago the last heartbeat was, by the same clock.
	Started, Heartbeat time.Time
	HeartbeatAge       time.Duration
	Lease              time.Duration
	// Live: the heartbeat is younger than the lease and the worker did
	// not stop. Stopped: it deregistered (a clean exit).
	Live, Stopped bool
	// Claims are the accounts it holds (including claims whose lease ran
	// out and that nobody took over yet), sorted.
	Claims []string
	// Archives counts the accounts whose archive it keeps.
	Archives int
}

// Errors of Workers.
var (
	// ErrWorkerRunning: another live process is registered under the
	// same worker name.
	ErrWorkerRunning = errors.New("another process runs as this worker")
	// ErrWorkerReplaced: this worker's registration is gone (another
	// process registered under its name after its lease ran out, or it
	// deregistered); it must stop working.
	ErrWorkerReplaced = errors.New("this worker's registration was taken over by another process")
	// ErrClaimLost: the account's claim is no longer this worker's (its
	// lease ran out and another worker took it over).
	ErrClaimLost = errors.New("the account's claim was taken over by another worker")
)

// Workers returns the worker named id with lease (the longest it may go
// without a heartbeat before others treat it as dead). Register it before
// use.
func (s *Store) Workers(id string, lease time.Duration) *Workers {
	return &Workers{s: s, id: id, lease: lease, instance: state.NewLineage(), held: map[string]bool{}}
}

// ID returns the worker's name.
func (w *Workers) ID() string { return w.id }

// Lease returns the worker's lease: heartbeat well within it (a third).
func (w *Workers) Lease() time.Duration { return w.lease }

// Held returns the accounts this worker claimed and has not released or
// lost (as far as its last Claim, Release and Heartbeat know), sorted.
func (w *Workers) Held() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.held))
	for a := range w.held {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// micros passes a duration to SQL, which makes it an interval
// ($N * interval '1 microsecond').
func micros(d time.Duration) int64 { return d.Microseconds() }

// Register records the worker (id, host, pid, started, heartbeat, lease).
// A name whose previous process is dead or stopped is taken over; a name
// a live process uses is refused (ErrWorkerRunning).
func (w *Workers) Register(ctx context.Context) error {
	host, _ := os.Hostname()
	tag, err := w.s.pool.Exec(ctx, `INSERT INTO mailmig_workers (id, instance, host, pid, started, heartbeat, lease, stopped)
		VALUES ($1, $2, $3, $4, now(), now(), $5 * interval '1 microsecond', NULL)
		ON CONFLICT (id) DO UPDATE SET instance = EXCLUDED.instance, host = EXCLUDED.host, pid = EXCLUDED.pid,
			started = now(), heartbeat = now(), lease = EXCLUDED.lease, stopped = NULL
		WHERE mailmig_workers.instance = EXCLUDED.instance OR mailmig_workers.stopped IS NOT NULL
			OR mailmig_workers.heartbeat + mailmig_workers.lease <= now()`,
		w.id, w.instance, host, os.Getpid(), micros(w.lease))
	if err != nil {
		return fmt.Errorf("register worker %s in %s: %w", w.id, w.s.Where(), err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var (
		h   string
		pid int
		age int64
	)
	if err := w.s.pool.QueryRow(ctx, `SELECT host, pid, (extract(epoch FROM now() - heartbeat) * 1e6)::bigint
		FROM mailmig_workers WHERE id = $1`, w.id).Scan(&h, &pid, &age); err != nil {
		return fmt.Errorf("register worker %s in %s: %w", w.id, w.s.Where(), err)
	}
	return fmt.Errorf("worker %s: %w (pid %d on %s, last heartbeat %s ago); give this one another -worker name, or stop that one",
		w.id, ErrWorkerRunning, pid, h, (time.Duration(age) * time.Microsecond).Round(time.Millisecond))
}

// Heartbeat renews the worker's heartbeat and every claim it holds. lost
// are the accounts this worker claimed (and did not release) that are no
// longer its own: another worker took them over after their lease ran
// out. The worker must stop working on them. ErrWorkerReplaced means the
// whole registration is gone.
func (w *Workers) Heartbeat(ctx context.Context) (lost []string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tx, err := w.s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("heartbeat of worker %s: %w", w.id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	tag, err := tx.Exec(ctx, `UPDATE mailmig_workers SET heartbeat = now() WHERE id = $1 AND instance = $2 AND stopped IS NULL`, w.id, w.instance)
	if err != nil {
		return nil, fmt.Errorf("heartbeat of worker %s: %w", w.id, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, fmt.Errorf("worker %s: %w", w.id, ErrWorkerReplaced)
	}
	rows, err := tx.Query(ctx, `UPDATE mailmig_claims SET lease_until = now() + $2 * interval '1 microsecond' WHERE worker = $1 RETURNING account`,
		w.id, micros(w.lease))
	if err != nil {
		return nil, fmt.Errorf("heartbeat of worker %s: %w", w.id, err)
	}
	renewed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("heartbeat of worker %s: %w", w.id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("heartbeat of worker %s: %w", w.id, err)
	}
	mine := make(map[string]bool, len(renewed))
	for _, a := range renewed {
		mine[a] = true
	}
	for a := range w.held {
		if !mine[a] {
			lost = append(lost, a)
			delete(w.held, a)
		}
	}
	slices.Sort(lost)
	return lost, nil
}

// Claim claims up to max of accounts, in their order: those nobody
// holds, those this worker holds already (renewed; they count towards
// max), and those whose claim's lease ran out — but never one whose
// archive another live worker keeps. Rows another worker is claiming at
// the same moment are skipped (FOR UPDATE SKIP LOCKED), so two workers
// never claim the same account. Claiming renews the worker's heartbeat;
// a worker that is not registered (or was replaced) claims nothing
// (ErrWorkerReplaced). held are the accounts another live
// worker holds, or whose archive it keeps. An account in neither list
// was free but not claimed (max reached, or another worker was claiming
// it just then): ask again later.
func (w *Workers) Claim(ctx context.Context, accounts []string, max int) (claimed, held []Claim, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	accounts = dedupe(accounts)
	if len(accounts) == 0 {
		return nil, nil, nil
	}
	// An account asked for the first time gets its (unclaimed) row in a
	// statement of its own, committed at once: the claim below then
	// locks rows that exist. Two workers inserting the same new account
	// wait for each other's insert, in sorted order (no deadlock), and
	// the loser does nothing.
	if _, err := w.s.pool.Exec(ctx, `INSERT INTO mailmig_claims (account)
		SELECT a FROM unnest($1::text[]) AS a WHERE NOT EXISTS (SELECT 1 FROM mailmig_claims c WHERE c.account = a) ORDER BY a
		ON CONFLICT (account) DO NOTHING`, accounts); err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	if max <= 0 {
		held, err = w.heldBy(ctx, w.s.pool, accounts, nil)
		return nil, held, err
	}
	tx, err := w.s.pool.Begin(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	// Claiming is a sign of life too; a worker whose name another
	// process took over claims nothing.
	tag, err := tx.Exec(ctx, `UPDATE mailmig_workers SET heartbeat = now() WHERE id = $1 AND instance = $2 AND stopped IS NULL`, w.id, w.instance)
	if err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	if tag.RowsAffected() == 0 {
		return nil, nil, fmt.Errorf("worker %s: %w", w.id, ErrWorkerReplaced)
	}
	rows, err := tx.Query(ctx, `SELECT c.account, coalesce(c.worker, ''), coalesce(c.archive_worker, '')
		FROM unnest($1::text[]) WITH ORDINALITY AS u(account, ord)
		JOIN mailmig_claims c ON c.account = u.account
		WHERE (c.worker IS NULL OR c.worker = $2 OR c.lease_until <= now())
			AND (c.archive_worker IS NULL OR c.archive_worker = $2 OR NOT EXISTS (SELECT 1 FROM mailmig_workers aw
				WHERE aw.id = c.archive_worker AND aw.stopped IS NULL AND aw.heartbeat + aw.lease > now()))
		ORDER BY u.ord
		LIMIT $3
		FOR UPDATE OF c SKIP LOCKED`, accounts, w.id, max)
	if err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	claimed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Claim, error) {
		var c Claim
		var prev string
		if err := r.Scan(&c.Account, &prev, &c.ArchiveWorker); err != nil {
			return c, err
		}
		switch {
		case prev != "" && prev != w.id:
			c.Takeover, c.PrevWorker = true, prev // its lease ran out
		case c.ArchiveWorker != "" && c.ArchiveWorker != w.id:
			c.Takeover, c.PrevWorker = true, c.ArchiveWorker // its archiver is dead
		}
		c.Worker = w.id
		return c, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	names := make([]string, len(claimed))
	for i, c := range claimed {
		names[i] = c.Account
	}
	if len(claimed) > 0 {
		rows, err := tx.Query(ctx, `UPDATE mailmig_claims SET worker = $2, lease_until = now() + $3 * interval '1 microsecond',
				claimed_at = CASE WHEN worker IS DISTINCT FROM $2 THEN now() ELSE claimed_at END, released_at = NULL, outcome = ''
			WHERE account = ANY($1) RETURNING account, lease_until`, names, w.id, micros(w.lease))
		if err != nil {
			return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
		}
		until := map[string]time.Time{}
		var (
			a string
			t time.Time
		)
		if _, err := pgx.ForEachRow(rows, []any{&a, &t}, func() error { until[a] = t; return nil }); err != nil {
			return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
		}
		for i := range claimed {
			claimed[i].LeaseUntil = until[claimed[i].Account]
		}
	}
	held, err = w.heldBy(ctx, tx, accounts, names)
	if err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	for _, c := range claimed {
		w.held[c.Account] = true
	}
	return claimed, held, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// heldBy lists the accounts (other than except) that another live worker
// holds or keeps the archive of.
func (w *Workers) heldBy(ctx context.Context, q querier, accounts, except []string) ([]Claim, error) {
	rows, err := q.Query(ctx, `SELECT c.account,
			CASE WHEN c.worker IS NOT NULL AND c.worker <> $2 AND c.lease_until > now() THEN c.worker ELSE '' END,
			coalesce(c.archive_worker, ''),
			CASE WHEN c.worker IS NOT NULL AND c.worker <> $2 AND c.lease_until > now() THEN c.lease_until END
		FROM unnest($1::text[]) WITH ORDINALITY AS u(account, ord)
		JOIN mailmig_claims c ON c.account = u.account
		WHERE NOT (c.account = ANY(coalesce($3::text[], '{}')))
			AND ((c.worker IS NOT NULL AND c.worker <> $2 AND c.lease_until > now())
				OR (c.archive_worker IS NOT NULL AND c.archive_worker <> $2 AND EXISTS (SELECT 1 FROM mailmig_workers aw
					WHERE aw.id = c.archive_worker AND aw.stopped IS NULL AND aw.heartbeat + aw.lease > now())))
		ORDER BY u.ord`, accounts, w.id, except)
	if err != nil {
		return nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	out, err := pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return nil, fmt.Errorf("claim accounts for worker %s: %w", w.id, err)
	}
	return out, nil
}

// Release ends this worker's claim on account with outcome (e.g. "ok",
// "failed", "waiting"); the archive affinity stays. A claim another
// worker took over meanwhile is ErrClaimLost.
func (w *Workers) Release(ctx context.Context, account, outcome string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tag, err := w.s.pool.Exec(ctx, `UPDATE mailmig_claims SET worker = NULL, lease_until = NULL, released_at = now(), outcome = $3
		WHERE account = $1 AND worker = $2`, account, w.id, outcome)
	if err != nil {
		return fmt.Errorf("release the claim on %s: %w", account, err)
	}
	delete(w.held, account)
	if tag.RowsAffected() == 0 {
		return w.lostErr(ctx, account)
	}
	return nil
}

// SetArchive records that this worker's machine now keeps account's
// archive; the worker must hold the account's claim (else ErrClaimLost).
func (w *Workers) SetArchive(ctx context.Context, account string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tag, err := w.s.pool.Exec(ctx, `UPDATE mailmig_claims SET archive_worker = $2 WHERE account = $1 AND worker = $2`, account, w.id)
	if err != nil {
		return fmt.Errorf("record the archive of %s: %w", account, err)
	}
	if tag.RowsAffected() == 0 {
		delete(w.held, account)
		return w.lostErr(ctx, account)
	}
	return nil
}

// lostErr says who holds account now.
func (w *Workers) lostErr(ctx context.Context, account string) error {
	var holder *string
	err := w.s.pool.QueryRow(ctx, `SELECT worker FROM mailmig_claims WHERE account = $1`, account).Scan(&holder)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || (err == nil && holder == nil):
		return fmt.Errorf("%s: %w (nobody holds it now)", account, ErrClaimLost)
	case err != nil:
		return fmt.Errorf("%s: %w", account, ErrClaimLost)
	}
	return fmt.Errorf("%s: %w (worker %s holds it now)", account, ErrClaimLost, *holder)
}

// Deregister is a clean exit: every claim the worker still holds is
// released (outcome "worker stopped") and the worker is marked stopped,
// so its archives are no longer kept from other workers.
func (w *Workers) Deregister(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	tx, err := w.s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("deregister worker %s: %w", w.id, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	tag, err := tx.Exec(ctx, `UPDATE mailmig_workers SET stopped = now() WHERE id = $1 AND instance = $2`, w.id, w.instance)
	if err != nil {
		return fmt.Errorf("deregister worker %s: %w", w.id, err)
	}
	if tag.RowsAffected() == 0 {
		// Another process runs under the name now: its claims are its own.
		w.held = map[string]bool{}
		return fmt.Errorf("deregister worker %s: %w", w.id, ErrWorkerReplaced)
	}
	if _, err := tx.Exec(ctx, `UPDATE mailmig_claims SET worker = NULL, lease_until = NULL, released_at = now(), outcome = 'worker stopped'
		WHERE worker = $1`, w.id); err != nil {
		return fmt.Errorf("deregister worker %s: %w", w.id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("deregister worker %s: %w", w.id, err)
	}
	w.held = map[string]bool{}
	return nil
}

// ListWorkers returns every registered worker, by id, with its liveness
// on the database's clock and the accounts it holds.
func (s *Store) ListWorkers(ctx context.Context) ([]WorkerInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT w.id, w.host, w.pid, w.started, w.heartbeat,
			(extract(epoch FROM now() - w.heartbeat) * 1e6)::bigint, (extract(epoch FROM w.lease) * 1e6)::bigint,
			w.stopped IS NULL AND w.heartbeat + w.lease > now(), w.stopped IS NOT NULL,
			coalesce((SELECT array_agg(c.account ORDER BY c.account) FROM mailmig_claims c WHERE c.worker = w.id), '{}'),
			(SELECT count(*) FROM mailmig_claims c WHERE c.archive_worker = w.id)
		FROM mailmig_workers w ORDER BY w.id`)
	if err != nil {
		return nil, fmt.Errorf("list the workers in %s: %w", s.Where(), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (WorkerInfo, error) {
		var (
			wi         WorkerInfo
			age, lease int64
		)
		err := r.Scan(&wi.ID, &wi.Host, &wi.PID, &wi.Started, &wi.Heartbeat, &age, &lease, &wi.Live, &wi.Stopped, &wi.Claims, &wi.Archives)
		wi.HeartbeatAge, wi.Lease = time.Duration(age)*time.Microsecond, time.Duration(lease)*time.Microsecond
		return wi, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the workers in %s: %w", s.Where(), err)
	}
	return out, nil
}

// Claims returns every account's claim row, sorted by account: who holds
// it (Worker, "" when released), until when, and where its archive is
// (Takeover and PrevWorker are not set).
func (s *Store) Claims(ctx context.Context) ([]Claim, error) {
	rows, err := s.pool.Query(ctx, `SELECT account, coalesce(worker, ''), coalesce(archive_worker, ''), lease_until
		FROM mailmig_claims ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("list the claims in %s: %w", s.Where(), err)
	}
	out, err := pgx.CollectRows(rows, scanClaim)
	if err != nil {
		return nil, fmt.Errorf("list the claims in %s: %w", s.Where(), err)
	}
	return out, nil
}

// dedupe drops repeated accounts, keeping the first of each.
func dedupe(accounts []string) []string {
	seen := make(map[string]bool, len(accounts))
	out := make([]string, 0, len(accounts))
	for _, a := range accounts {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// scanClaim reads a row of account, worker, archive worker and lease end
// (NULL when released) into a Claim.
func scanClaim(r pgx.CollectableRow) (Claim, error) {
	var (
		c     Claim
		until *time.Time
	)
	err := r.Scan(&c.Account, &c.Worker, &c.ArchiveWorker, &until)
	if until != nil {
		c.LeaseUntil = *until
	}
	return c, err
}
