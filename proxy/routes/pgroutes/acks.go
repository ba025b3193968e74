package pgroutes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

// Freeze acknowledgements of the fleet (schema migration 0005_freeze_acks).
//
// Applying a change number only says that a proxy routes by the new table:
// a delivery whose DATA began before the freeze is still being written to
// the source, and a cut-over whose final sync started then would miss it.
// So, as with the SQLite table (issue 15, proxy/freezeack.go), each proxy
// acknowledges a frozen route's generation once the account has no
// session and no SMTP/LMTP delivery in flight on it, and the cut-over
// waits for that after the freeze and after the flip (Barrier.AwaitQuiet).
//
// The acknowledgements are rows of their own (account, proxy, generation)
// rather than a number next to the applied one: they are per account, so
// one slow delivery holds back only its own account's cut-over, and they
// do not touch the change counter, so writing one makes no proxy reload.
// A proxy says it acknowledges freezes (mailmig_proxies.acks_freezes) when
// its acker starts; a live proxy without acknowledgements (a test
// follower, a proxy of an older release still running) is waited for as
// before, until it has applied the change.

// FreezeAcks writes the acknowledgements of one proxy: it has the four
// calls of proxy.AckStore, so proxy.FreezeAcker drives it exactly as it
// drives the SQLite table. The Follower keeps the registration and the
// heartbeat, so those calls only mark the proxy as acknowledging.
type FreezeAcks struct{ f *Follower }

// FreezeAcks returns the follower's acknowledgement store.
func (f *Follower) FreezeAcks() *FreezeAcks { return &FreezeAcks{f} }

// RegisterProxy marks the follower's proxy as one that acknowledges
// freezes: from now on a cut-over waits for its acknowledgements rather
// than for its applied change number. id must be the follower's id.
func (a *FreezeAcks) RegisterProxy(ctx context.Context, id, _ string) error {
	f := a.f
	if id != f.id {
		return fmt.Errorf("acknowledge freezes as proxy %s: this follower is %s", id, f.id)
	}
	f.mu.Lock()
	f.acking = true
	f.mu.Unlock()
	if _, err := f.st.pool.Exec(ctx, `UPDATE mailmig_proxies SET acks_freezes = true WHERE id = $1`, id); err != nil {
		return fmt.Errorf("register proxy %s for freeze acknowledgements in %s: %w", id, f.st.where, err)
	}
	return nil
}

// Heartbeat does nothing: the follower heartbeats with every catch-up.
func (a *FreezeAcks) Heartbeat(context.Context, string) error { return nil }

// UnregisterProxy does nothing: the follower removes the proxy's row and
// its acknowledgements when its Run ends; until then a draining proxy is
// still waited for.
func (a *FreezeAcks) UnregisterProxy(context.Context, string) error { return nil }

// AckFreeze records that the proxy has made account quiet at generation.
// It is written only while the route is still frozen at that generation
// (the route row is share-locked, so it cannot pass an unfreeze that is
// deleting the account's acknowledgements); an acknowledgement of a
// generation the route has left is dropped without error: the proxy
// acknowledges the newer one when it sees it.
func (a *FreezeAcks) AckFreeze(ctx context.Context, proxy, account string, generation int64) error {
	acct := routes.Normalize(account)
	_, err := a.f.st.pool.Exec(ctx, `INSERT INTO mailmig_freeze_acks (account, proxy, generation, acked)
		SELECT account, $2, generation, now() FROM mailmig_routes
			WHERE account = $1 AND state = 'frozen' AND generation = $3 FOR SHARE
		ON CONFLICT (account, proxy) DO UPDATE SET generation = excluded.generation, acked = excluded.acked
			WHERE mailmig_freeze_acks.generation < excluded.generation`, acct, proxy, generation)
	if err != nil {
		return fmt.Errorf("acknowledge the freeze of %s in %s: %w", acct, a.f.st.where, err)
	}
	return nil
}

// forgetAcks removes an account's acknowledgements; the route write that
// unfreezes or deletes the account calls it in its transaction.
func forgetAcks(ctx context.Context, tx pgx.Tx, account string) error {
	_, err := tx.Exec(ctx, `DELETE FROM mailmig_freeze_acks WHERE account = $1`, account)
	return err
}

// AwaitQuiet waits until the account's frozen route is quiet on every
// proxy: a proxy that acknowledges freezes has acknowledged the route's
// current generation (no session, no delivery of the account in flight
// there); any other has applied its change number. A cut-over calls it
// after the freeze and after the flip (the route is still frozen then, at
// a new generation). Proxies out of contact are left out as AwaitRoute
// leaves them out: only those that had seen the account's pending mark. It fails at once when the route is not frozen
// (routes.ErrNotFrozen), and with an error wrapping ErrBarrier that names
// each proxy still missing and why after the timeout.
func (b *Barrier) AwaitQuiet(ctx context.Context, account string) error {
	return b.AwaitQuietThrough(ctx, account, OutageOptions{})
}

// AwaitQuietThrough is AwaitQuiet that waits through an outage of the
// database as AwaitRouteThrough does.
func (b *Barrier) AwaitQuietThrough(ctx context.Context, account string, o OutageOptions) error {
	acct := routes.Normalize(account)
	var gen, seq int64
	var state string
	start := time.Now()
	err := b.retry(ctx, &o, func(ctx context.Context) error {
		return b.Store.pool.QueryRow(ctx, `SELECT generation, seq, state FROM mailmig_routes WHERE account = $1`, acct).Scan(&gen, &seq, &state)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("await the freeze of %s: %w", acct, routes.ErrNotFound)
	case err != nil:
		return fmt.Errorf("await the freeze of %s: %w", acct, err)
	case routes.State(state) != routes.Frozen:
		return fmt.Errorf("await the freeze of %s: %w", acct, routes.ErrNotFrozen)
	}
	o.started = start
	return b.poll(ctx, seq, func(ctx context.Context) ([]lagger, error) { return b.notQuiet(ctx, acct, gen, seq) }, o)
}

// notQuiet returns the proxies that have not acknowledged generation (or,
// not acknowledging freezes, not applied seq), with AwaitRoute's rule for
// proxies out of contact: left out only once they had applied the
// account's pending mark.
func (b *Barrier) notQuiet(ctx context.Context, account string, gen, seq int64) ([]lagger, error) {
	rows, err := b.Store.pool.Query(ctx, `SELECT p.id, p.heartbeat > now() - p.lease_ms * interval '1 millisecond', p.heartbeat, p.applied >= $3
		FROM mailmig_proxies p
		LEFT JOIN mailmig_freeze_acks a ON a.account = $1 AND a.proxy = p.id
		WHERE (p.heartbeat > now() - p.lease_ms * interval '1 millisecond'
				OR NOT EXISTS (SELECT 1 FROM mailmig_route_pending m WHERE m.account = $1 AND m.seq <= p.applied))
			AND CASE WHEN p.acks_freezes THEN coalesce(a.generation, -1) < $2 ELSE p.applied < $3 END
		ORDER BY p.id`, account, gen, seq)
	if err != nil {
		return nil, err
	}
	var out []lagger
	var l lagger
	_, err = pgx.ForEachRow(rows, []any{&l.ID, &l.Live, &l.Heartbeat, &l.Open}, func() error {
		l.Heartbeat = l.Heartbeat.UTC()
		out = append(out, l)
		return nil
	})
	return out, err
}
