package pgroutes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/proxy/routes"
)

// DefaultBarrierTimeout is the default of Barrier.Timeout.
const DefaultBarrierTimeout = 30 * time.Second

// ErrBarrier means live proxies did not acknowledge a change in time.
var ErrBarrier = errors.New("proxies did not acknowledge the route change")

// Barrier waits for the fleet to acknowledge route changes. Its methods are
// safe for concurrent use.
type Barrier struct {
	// Store is the route table.
	Store *Store
	// Timeout bounds AwaitRoute. Default: DefaultBarrierTimeout.
	Timeout time.Duration
	// Poll is the interval between checks. Default: 10ms.
	Poll time.Duration
}

// AwaitRoute waits until every proxy has applied the account's latest
// route change, except the proxies out of contact — heartbeat older than
// their lease — that had applied the account's pending mark (see
// MarkPending): those refuse the account on their own until they are back.
// A proxy out of contact that never saw the mark may be alive and serving
// the account from an old table, so it is waited for, like a live one. It
// returns an error wrapping ErrBarrier, naming the proxies that lag and
// how to forget one that is gone for good, after the timeout.
func (b *Barrier) AwaitRoute(ctx context.Context, account string) error {
	return b.AwaitRouteThrough(ctx, account, OutageOptions{})
}

// AwaitChange waits until every proxy has applied change number seq (an
// alias or domain edit, whose number Store.Version gives right after it),
// with AwaitRoute's errors. No account's pending mark applies, so a proxy
// out of contact is waited for too.
func (b *Barrier) AwaitChange(ctx context.Context, seq int64) error {
	return b.poll(ctx, seq, func(ctx context.Context) ([]lagger, error) { return b.lagging(ctx, "", seq) }, OutageOptions{})
}

// lagger is a proxy a barrier waits for.
type lagger struct {
	ID   string
	Live bool
	// Heartbeat is its last contact, for one that is not live.
	Heartbeat time.Time
	// Open: it applied the change but has not acknowledged the freeze (a
	// session or delivery of the account still open there; AwaitQuiet).
	Open bool
}

// lagging returns the proxies a barrier on account's change seq waits
// for: those that have not applied seq, unless out of contact after
// applying the account's pending mark.
func (b *Barrier) lagging(ctx context.Context, account string, seq int64) ([]lagger, error) {
	rows, err := b.Store.pool.Query(ctx, `SELECT id, heartbeat > now() - lease_ms * interval '1 millisecond', heartbeat
		FROM mailmig_proxies p
		WHERE applied < $1 AND (heartbeat > now() - lease_ms * interval '1 millisecond'
			OR NOT EXISTS (SELECT 1 FROM mailmig_route_pending m WHERE m.account = $2 AND m.seq <= p.applied))`,
		seq, routes.Normalize(account))
	if err != nil {
		return nil, err
	}
	var out []lagger
	var l lagger
	if _, err := pgx.ForEachRow(rows, []any{&l.ID, &l.Live, &l.Heartbeat}, func() error {
		l.Heartbeat = l.Heartbeat.UTC()
		out = append(out, l)
		return nil
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b lagger) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// describeLag words the proxies a barrier gave up on.
func describeLag(ls []lagger) string {
	var parts []string
	var gone []string
	for _, l := range ls {
		if l.Live && l.Open {
			parts = append(parts, l.ID+" (live, a session or delivery of the account still open)")
			continue
		}
		if l.Live {
			parts = append(parts, l.ID+" (live, behind)")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (out of contact since %s, before it saw that the account is pending: it may still route the account to its source)",
			l.ID, l.Heartbeat.Format(time.RFC3339)))
		gone = append(gone, l.ID)
	}
	s := strings.Join(parts, ", ")
	if len(gone) > 0 {
		s += fmt.Sprintf(`; bring %s back, or, if it is gone for good, remove it from the registry with "mailmig routes proxies -forget %s"`,
			strings.Join(gone, ", "), gone[0])
	}
	return s
}

// Proxy is one registered proxy as operators see it.
type Proxy struct {
	ID      string    `json:"id"`
	Address string    `json:"address"`
	Started time.Time `json:"started"`
	// Heartbeat is the time of the last contact.
	Heartbeat time.Time     `json:"heartbeat"`
	Lease     time.Duration `json:"lease"`
	// Live is false once the heartbeat is older than the lease.
	Live bool `json:"live"`
	// Applied is the last change number the proxy applied, at AppliedAt.
	Applied   int64     `json:"applied"`
	AppliedAt time.Time `json:"applied_at"`
	// Lag is how many change numbers the proxy is behind.
	Lag int64 `json:"lag"`
}

// Proxies lists the registered proxies and the table's change number.
func (s *Store) Proxies(ctx context.Context) ([]Proxy, int64, error) {
	var out []Proxy
	var seq int64
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT seq FROM mailmig_route_meta`).Scan(&seq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, address, started, heartbeat, lease_ms, applied, applied_at,
			heartbeat > now() - lease_ms * interval '1 millisecond' FROM mailmig_proxies ORDER BY id`)
		if err != nil {
			return err
		}
		var p Proxy
		var ms int64
		_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.Address, &p.Started, &p.Heartbeat, &ms, &p.Applied, &p.AppliedAt, &p.Live}, func() error {
			q := p
			q.Lease = time.Duration(ms) * time.Millisecond
			q.Lag = seq - q.Applied
			q.Started, q.Heartbeat, q.AppliedAt = q.Started.UTC(), q.Heartbeat.UTC(), q.AppliedAt.UTC()
			out = append(out, q)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read the proxies from %s: %w", s.where, err)
	}
	return out, seq, nil
}

// Acks returns, for the changes numbered from..to, how long after the
// change the last live proxy applied it: the flip latency the fleet
// figures report. It reads mailmig_route_changes.at and the proxies'
// applied_at, so it needs the proxies to have applied exactly these
// numbers one by one (a benchmark writes one change at a time).
func (s *Store) Acks(ctx context.Context, seq int64) (time.Duration, error) {
	var d time.Duration
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(p.applied_at) - min(c.at), interval '0')
		FROM mailmig_route_changes c, mailmig_proxies p WHERE c.seq = $1 AND p.applied >= $1`, seq).Scan(&d)
	return d, err
}
