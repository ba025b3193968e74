package pgstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailmig/mailmig/engine"
)

// BudgetLimits are one backend's limits as the plan sets them; zero
// means unlimited.
type BudgetLimits struct {
	Connections       int
	MessagesPerSecond float64
	BytesPerSecond    int64
}

// DefaultBudgetLease is how long a slot stays held after its holder's
// last renewal (renewed every third of it): a process that died gives its
// slots back after at most this long.
const DefaultBudgetLease = 30 * time.Second

// Budget is engine.Budget in PostgreSQL (tables of migration 0004): the
// backends' connection slots as rows claimed with FOR UPDATE SKIP LOCKED
// under a lease, and their rates as token buckets refilled on the
// database clock. Every apply process sharing the state holds one; its
// methods are safe for concurrent use. Close it to give its slots back.
type Budget struct {
	pool   *pgxpool.Pool
	id     string
	lease  time.Duration
	limits map[string]BudgetLimits
	log    *slog.Logger
	// Poll is the pause between claims while every slot is taken.
	// Default: 250 ms.
	Poll time.Duration

	mu      sync.Mutex
	held    map[slotKey]bool
	ensured map[string]int // backend → slots known to exist
	stop    chan struct{}
	done    chan struct{}
	closed  bool
	warned  atomic.Int64 // when Take last logged a failure (Unix ns)
}

type slotKey struct {
	backend string
	slot    int
}

var _ engine.Budget = (*Budget)(nil)

// Budget returns a Budget over the store's database for the given limits
// per backend. lease 0 means DefaultBudgetLease.
func (s *Store) Budget(limits map[string]BudgetLimits, lease time.Duration, log *slog.Logger) *Budget {
	return NewBudget(s.pool, limits, lease, log)
}

// NewBudget returns a Budget over pool (see Store.Budget).
func NewBudget(pool *pgxpool.Pool, limits map[string]BudgetLimits, lease time.Duration, log *slog.Logger) *Budget {
	if lease <= 0 {
		lease = DefaultBudgetLease
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	var r [6]byte
	_, _ = rand.Read(r[:])
	b := &Budget{pool: pool, id: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(r[:])), lease: lease,
		limits: limits, log: log, held: map[slotKey]bool{}, ensured: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go b.renew()
	return b
}

// ID names the holder in mailmig_budget_slots.
func (b *Budget) ID() string { return b.id }

// Acquire implements engine.Budget: one slot of each limited backend, all
// in one transaction or none, retried every Poll until ctx ends.
func (b *Budget) Acquire(ctx context.Context, backends []string) (func(), error) {
	var want []string
	for _, name := range backends {
		if b.limits[name].Connections > 0 {
			want = append(want, name)
		}
	}
	if len(want) == 0 {
		return func() {}, nil
	}
	poll := b.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	for {
		got, err := b.claim(ctx, want)
		if err != nil {
			return nil, err
		}
		if got != nil {
			return func() { b.release(got) }, nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// claim takes a free slot of every backend in one transaction; nil when
// one of them has none free (nothing is then held).
func (b *Budget) claim(ctx context.Context, backends []string) ([]slotKey, error) {
	if err := b.ensure(ctx, backends); err != nil {
		return nil, err
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	// A slot is free when nobody holds it or its holder's lease ran out
	// (the holder died). SKIP LOCKED: a slot another process is claiming
	// right now is not waited for.
	const q = `UPDATE mailmig_budget_slots s SET holder = $3, lease_until = clock_timestamp() + $4 * interval '1 millisecond', acquired = clock_timestamp()
		WHERE (s.backend, s.slot) = (SELECT backend, slot FROM mailmig_budget_slots
			WHERE backend = $1 AND slot <= $2 AND (holder IS NULL OR lease_until < clock_timestamp())
			ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING s.slot`
	var got []slotKey
	for _, name := range backends {
		var slot int
		err := tx.QueryRow(ctx, q, name, b.limits[name].Connections, b.id, b.lease.Milliseconds()).Scan(&slot)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		got = append(got, slotKey{name, slot})
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	b.mu.Lock()
	for _, k := range got {
		b.held[k] = true
	}
	b.mu.Unlock()
	return got, nil
}

// ensure creates the backends' slot rows 1..Connections once per process.
func (b *Budget) ensure(ctx context.Context, backends []string) error {
	for _, name := range backends {
		n := b.limits[name].Connections
		b.mu.Lock()
		done := b.ensured[name] >= n
		b.mu.Unlock()
		if done {
			continue
		}
		if _, err := b.pool.Exec(ctx, `INSERT INTO mailmig_budget_slots (backend, slot) SELECT $1, g FROM generate_series(1, $2::integer) g ON CONFLICT DO NOTHING`, name, n); err != nil {
			return err
		}
		b.mu.Lock()
		b.ensured[name] = n
		b.mu.Unlock()
	}
	return nil
}

// release gives slots back. When that fails (the database is out of
// reach) their lease runs out instead.
func (b *Budget) release(slots []slotKey) {
	b.mu.Lock()
	for _, k := range slots {
		delete(b.held, k)
	}
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, k := range slots {
		if _, err := b.pool.Exec(ctx, `UPDATE mailmig_budget_slots SET holder = NULL, lease_until = NULL WHERE backend = $1 AND slot = $2 AND holder = $3`, k.backend, k.slot, b.id); err != nil {
			b.log.Warn("give back a shared connection slot (it comes back when its lease runs out)", "backend", k.backend, "slot", k.slot, "err", err)
		}
	}
}

// renew extends the lease of every slot held, three times per lease.
func (b *Budget) renew() {
	defer close(b.done)
	t := time.NewTicker(b.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		n := len(b.held)
		b.mu.Unlock()
		if n == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.lease/3)
		tag, err := b.pool.Exec(ctx, `UPDATE mailmig_budget_slots SET lease_until = clock_timestamp() + $2 * interval '1 millisecond' WHERE holder = $1`, b.id, b.lease.Milliseconds())
		cancel()
		switch {
		case err != nil:
			b.log.Warn("renew the lease of shared connection slots", "err", err)
		case int(tag.RowsAffected()) < n:
			// Our lease ran out (the database was out of reach) and
			// someone took a slot over: the change keeps running, so
			// for a while the backend has one connection more.
			b.log.Warn("shared connection slots were taken over after their lease ran out", "held", n, "renewed", tag.RowsAffected())
		}
	}
}

// Close stops renewing and gives back every slot still held.
func (b *Budget) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var slots []slotKey
	for k := range b.held {
		slots = append(slots, k)
	}
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	if len(slots) > 0 {
		b.release(slots)
	}
	return nil
}

// abandon stops renewing without giving anything back, as a process that
// died would (tests).
func (b *Budget) abandon() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
}

// Take implements engine.Budget: up to want tokens of the backend's
// bucket, refilled at the plan's rate on the database clock and holding
// at most half a second's worth (at least one chunk), in one statement.
func (b *Budget) Take(ctx context.Context, backend string, kind engine.RateKind, want int64) (int64, time.Duration, error) {
	l := b.limits[backend]
	perSecond := l.MessagesPerSecond
	if kind == engine.RateBytes {
		perSecond = float64(l.BytesPerSecond)
	}
	if perSecond <= 0 || want <= 0 {
		return want, 0, nil
	}
	chunk := max(1, math.Ceil(perSecond/10))
	capacity := max(chunk, perSecond/2)
	// The first take creates the bucket full; every take refills it by
	// the time since the last at the rate then in force (the old row's),
	// caps it, and grants what is there up to want. Both writes use
	// now(): one clock reading for the statement.
	const q = `INSERT INTO mailmig_budget_rates AS r (backend, kind, rate, capacity, tokens, granted, updated)
		VALUES ($1, $2, $3::float8, $4::float8, $4::float8 - floor(least($4::float8, $5::float8)), floor(least($4::float8, $5::float8)), now())
		ON CONFLICT (backend, kind) DO UPDATE SET
			rate = EXCLUDED.rate, capacity = EXCLUDED.capacity, updated = now(),
			granted = floor(least(least(EXCLUDED.capacity, r.tokens + r.rate * greatest(0, extract(epoch FROM now() - r.updated))), $5::float8)),
			tokens = least(EXCLUDED.capacity, r.tokens + r.rate * greatest(0, extract(epoch FROM now() - r.updated)))
				- floor(least(least(EXCLUDED.capacity, r.tokens + r.rate * greatest(0, extract(epoch FROM now() - r.updated))), $5::float8))
		RETURNING granted, tokens`
	var granted, left float64
	if err := b.pool.QueryRow(ctx, q, backend, string(kind), perSecond, capacity, float64(want)).Scan(&granted, &left); err != nil {
		// Every wait tries once while the database is away: say so once
		// a minute, not per message.
		if now := time.Now().UnixNano(); now-b.warned.Load() > int64(time.Minute) {
			b.warned.Store(now)
			b.log.Warn("take from the shared rate budget (this process keeps to the limit on its own meanwhile)", "backend", backend, "kind", kind, "err", err)
		}
		return 0, 0, fmt.Errorf("shared %s budget of %s: %w", kind, backend, err)
	}
	if granted >= 1 {
		return int64(granted), 0, nil
	}
	return 0, time.Duration((1 - left) / perSecond * float64(time.Second)), nil
}
