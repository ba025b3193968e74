package pgroutes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/internal/pgdb"
)

// AwaitRouteThrough is AwaitRoute that waits through an outage of the
// database of up to wait in all (0: none, as AwaitRoute). While the
// database is out of reach it polls with a backoff, and the time it was
// away does not count against the barrier's timeout.
//
// Every proxy lost the database too, so right after it comes back their
// heartbeats are old and they would all look dead: the barrier would
// pass before any of them caught up. So a proxy that was live when the
// barrier last reached the database is still waited for, for one lease
// after the database is back, which is time for its next heartbeat
// (three per lease) with the change applied; one that does not come back
// within the lease is dead, as before.
//
// The same holds when the outage ended just before the barrier began (the
// freeze itself waited for the database): o.Mark, shared with the route
// writes (RetryWrite), carries the latest outage seen.
func (b *Barrier) AwaitRouteThrough(ctx context.Context, account string, o OutageOptions) error {
	var seq int64
	start := time.Now()
	err := b.retry(ctx, &o, func(ctx context.Context) error {
		var err error
		seq, err = b.Store.RouteSeq(ctx, account)
		return err
	})
	if err != nil {
		return err
	}
	o.started = start
	return b.poll(ctx, seq, func(ctx context.Context) ([]lagger, error) { return b.lagging(ctx, account, seq) }, o)
}

// retry runs the read that starts a barrier (which change to wait for)
// with pgdb.Retry, and notes in o whether it met an outage.
func (b *Barrier) retry(ctx context.Context, o *OutageOptions, fn func(context.Context) error) error {
	if o.Wait <= 0 {
		return fn(ctx)
	}
	return pgdb.Retry(ctx, o.Wait, fn, func(err error) {
		o.told = true
		if o.OnOutage != nil {
			o.OnOutage(err)
		}
	})
}

// poll waits until missing finds no proxy to wait for, or the barrier's
// timeout passes (the time the database was out of reach not counted),
// or an outage outlasts o.Wait. Right after an outage it also waits for
// the proxies that were live before it (recovering).
func (b *Barrier) poll(ctx context.Context, seq int64, missing func(context.Context) ([]lagger, error), o OutageOptions) error {
	wait, onOutage := o.Wait, o.OnOutage
	timeout, poll := b.Timeout, b.Poll
	if timeout <= 0 {
		timeout = DefaultBarrierTimeout
	}
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	start := o.started
	if start.IsZero() {
		start = time.Now()
	}
	var (
		told     = o.told
		lastOK   = start       // the last poll that reached the database
		before   time.Time     // lastOK when the latest outage began
		down     time.Time     // when the current outage began; zero while reachable
		away     time.Duration // outages so far, in all
		back     time.Time     // when the database came back; zero before any outage
		pause    time.Duration
		lag, rec []lagger
		err      error
	)
	if told {
		// The database was away before the first poll: as if the
		// outage began at the start.
		back = time.Now()
		before, away = start, back.Sub(start)
		o.Mark.saw(before, back)
	} else if bf, bk := o.Mark.last(); !bk.IsZero() {
		before, back = bf, bk // recovering() ends its grace after a lease
	}
	for {
		lag, err = missing(ctx)
		now := time.Now()
		if err == nil && !down.IsZero() {
			away += now.Sub(down)
			down, back = time.Time{}, now
			o.Mark.saw(before, back)
		}
		if err == nil && !back.IsZero() {
			rec, err = b.recovering(ctx, seq, time.Since(before), time.Since(back))
			lag = mergeLag(lag, rec)
		}
		switch {
		case err == nil:
			lastOK, pause = now, 0
			if len(lag) == 0 {
				return nil
			}
		case pgdb.Unreachable(err) && wait > 0:
			if down.IsZero() {
				down, before = now, lastOK
				if onOutage != nil && !told {
					onOutage(err)
					told = true
				}
			}
			if away+now.Sub(down) > wait {
				return fmt.Errorf("wait for the proxies to see change %d: %w (%s): %w", seq, pgdb.ErrOutageTooLong, wait, err)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		spent := now.Sub(start) - away
		if !down.IsZero() {
			spent -= now.Sub(down)
		}
		if spent > timeout {
			if err != nil {
				return fmt.Errorf("wait for the proxies to see change %d: %w", seq, err)
			}
			return fmt.Errorf("%w %d within %s: %s", ErrBarrier, seq, timeout, describeLag(lag))
		}
		d := poll
		if !down.IsZero() {
			pause = pgdb.NextPause(pause)
			d = pause
		}
		if err := pgdb.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

// mergeLag adds the recovering proxies (live before an outage) that
// missing did not already name, sorted by id.
func mergeLag(lag, rec []lagger) []lagger {
	for _, r := range rec {
		if !slices.ContainsFunc(lag, func(l lagger) bool { return l.ID == r.ID }) {
			lag = append(lag, r)
		}
	}
	slices.SortFunc(lag, func(a, b lagger) int { return strings.Compare(a.ID, b.ID) })
	return lag
}

// OutageOptions configure waiting through an outage of the database.
type OutageOptions struct {
	// Wait bounds the time the database may be out of reach, in all; 0
	// does not wait.
	Wait time.Duration
	// OnOutage, when set, is told the first outage error.
	OnOutage func(error)
	// Mark, when set, records the latest outage seen, shared by the
	// route writes and the barriers of one apply.
	Mark *OutageMark

	// told and started: the read that began the barrier met an outage,
	// and when it began (set by the barrier itself).
	told    bool
	started time.Time
}

// OutageMark is the latest outage of the database seen by one process:
// when it was last reached before, and when it was back. A nil
// *OutageMark records nothing.
type OutageMark struct {
	mu           sync.Mutex
	before, back time.Time
}

func (m *OutageMark) saw(before, back time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if back.After(m.back) {
		m.before, m.back = before, back
	}
}

func (m *OutageMark) last() (before, back time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.before, m.back
}

// RetryWrite runs a route write (fn) with pgdb.Retry, and records an
// outage it waited through in o.Mark. Only writes that set values
// outright may be retried (a lost answer to a commit is not known).
func RetryWrite(ctx context.Context, o OutageOptions, fn func(context.Context) error) error {
	start := time.Now()
	saw := false
	err := pgdb.Retry(ctx, o.Wait, fn, func(err error) {
		saw = true
		if o.OnOutage != nil {
			o.OnOutage(err)
		}
	})
	if saw && err == nil {
		o.Mark.saw(start, time.Now())
	}
	return err
}

// recovering returns the proxies behind seq that were live when the
// barrier last reached the database (sinceOK ago) and whose lease has not
// run out since the database came back (sinceBack ago), whatever their
// heartbeat says now.
func (b *Barrier) recovering(ctx context.Context, seq int64, sinceOK, sinceBack time.Duration) ([]lagger, error) {
	rows, err := b.Store.pool.Query(ctx, `SELECT id FROM mailmig_proxies
		WHERE applied < $1 AND heartbeat > now() - (lease_ms + $2) * interval '1 millisecond' AND lease_ms > $3`,
		seq, sinceOK.Milliseconds(), sinceBack.Milliseconds())
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	out := make([]lagger, len(ids))
	for i, id := range ids {
		out[i] = lagger{ID: id, Live: true} // live before the outage: not dead yet
	}
	return out, err
}
