package routes

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Freeze acknowledgements (issue 15).
//
// A cut-over may start its final sync only when no proxy can still put
// anything of the account onto the source: every proxy has seen the
// freeze, ended the account's sessions and has no delivery of the account
// in flight. Each proxy says so by writing an acknowledgement row; the
// engine waits for one from every live proxy instead of sleeping a fixed
// settle delay.
//
// Mechanism in the SQLite store (the simplest that is robust for proxies
// sharing one file on one machine):
//
//   - proxies(id, addr, started, heartbeat): a proxy registers at start,
//     writes its heartbeat every HeartbeatInterval and deletes its row
//     when it stops. A proxy whose heartbeat is older than the lease
//     (DefaultLease) is dead — a SIGKILL leaves its row — and is not
//     waited for.
//   - freeze_acks(proxy, account, generation, acked): the highest frozen
//     generation of the account the proxy has made quiet.
//
// Neither table touches the change counter: heartbeats and acks do not
// make the proxies reload the route table. A fleet store (PostgreSQL) puts
// the same two facts behind the same calls (proxy.FreezeAcker writes them,
// the engine waits for them through cmd/mailmig's engine.Barrier).

// DefaultLease is how old a proxy's heartbeat may be before the proxy
// counts as gone and is no longer waited for.
const DefaultLease = 5 * time.Second

// HeartbeatInterval is how often a registered proxy writes its heartbeat.
const HeartbeatInterval = time.Second

// ackPoll is how often AwaitFreeze looks at the acknowledgements.
const ackPoll = 10 * time.Millisecond

const ackSchema = `
CREATE TABLE IF NOT EXISTS proxies (
	id        TEXT PRIMARY KEY,
	addr      TEXT NOT NULL,
	started   INTEGER NOT NULL,
	heartbeat INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS freeze_acks (
	proxy      TEXT NOT NULL,
	account    TEXT NOT NULL,
	generation INTEGER NOT NULL,
	acked      INTEGER NOT NULL,
	PRIMARY KEY (proxy, account)
);
`

// ErrNotFrozen means AwaitFreeze was asked about an account whose route is
// not frozen (any more): someone else changed it.
var ErrNotFrozen = errors.New("route is not frozen")

// Proxy is a registered proxy.
type Proxy struct {
	// ID names the proxy (host, pid and a random part).
	ID string `json:"id"`
	// Addr says where it runs (host name, listeners), for operators.
	Addr string `json:"addr"`
	// Started and Heartbeat are the registration and the last heartbeat.
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// RegisterProxy records a proxy as live (or renews it).
func (s *Store) RegisterProxy(ctx context.Context, id, addr string) error {
	now := s.now().UnixNano()
	_, err := s.db.ExecContext(ctx, `INSERT INTO proxies (id, addr, started, heartbeat) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, heartbeat = excluded.heartbeat`, id, addr, now, now)
	if err != nil {
		return fmt.Errorf("register proxy %s: %w", id, err)
	}
	return nil
}

// Heartbeat renews a proxy's registration.
func (s *Store) Heartbeat(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE proxies SET heartbeat = ? WHERE id = ?`, s.now().UnixNano(), id)
	if err != nil {
		return fmt.Errorf("proxy heartbeat: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		// Removed by hand (or by a clean-up): register again.
		return s.RegisterProxy(ctx, id, "")
	}
	return nil
}

// UnregisterProxy removes a proxy and its acknowledgements (a clean stop).
func (s *Store) UnregisterProxy(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM proxies WHERE id = ?`, id); err != nil {
		return fmt.Errorf("unregister proxy %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM freeze_acks WHERE proxy = ?`, id); err != nil {
		return fmt.Errorf("unregister proxy %s: %w", id, err)
	}
	return nil
}

// Proxies lists the registered proxies, live or not, by ID.
func (s *Store) Proxies(ctx context.Context) ([]Proxy, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, addr, started, heartbeat FROM proxies ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read proxies: %w", err)
	}
	defer rows.Close()
	var out []Proxy
	for rows.Next() {
		var p Proxy
		var st, hb int64
		if err := rows.Scan(&p.ID, &p.Addr, &st, &hb); err != nil {
			return nil, fmt.Errorf("read proxies: %w", err)
		}
		p.Started, p.Heartbeat = time.Unix(0, st).UTC(), time.Unix(0, hb).UTC()
		out = append(out, p)
	}
	return out, rows.Err()
}

// AckFreeze records that proxy has made account quiet at generation: it
// has seen the route frozen, ended the account's sessions and has no
// delivery of it in flight. Older generations never replace newer ones.
func (s *Store) AckFreeze(ctx context.Context, proxy, account string, generation int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO freeze_acks (proxy, account, generation, acked) VALUES (?, ?, ?, ?)
		ON CONFLICT (proxy, account) DO UPDATE SET generation = excluded.generation, acked = excluded.acked
		WHERE excluded.generation > freeze_acks.generation`, proxy, Normalize(account), generation, s.now().UnixNano())
	if err != nil {
		return fmt.Errorf("acknowledge freeze of %s: %w", Normalize(account), err)
	}
	return nil
}

// FreezeWait is the outcome of AwaitFreeze.
type FreezeWait struct {
	// Generation is the frozen route's generation that was acknowledged.
	Generation int64
	// Proxies are the live proxies that acknowledged it; empty when no
	// proxy is registered (nothing to wait for).
	Proxies []string
	// Waited is how long the wait took.
	Waited time.Duration
}

// AwaitFreeze waits until every live proxy (heartbeat within lease;
// DefaultLease when 0) has acknowledged the account's current frozen
// generation, and returns ErrNotFrozen when the route is not frozen. It
// stops with ctx: put a deadline on it. An error names the proxies still
// missing.
func (s *Store) AwaitFreeze(ctx context.Context, account string, lease time.Duration) (FreezeWait, error) {
	if lease <= 0 {
		lease = DefaultLease
	}
	start := time.Now()
	r, err := s.Get(ctx, account)
	if err != nil {
		return FreezeWait{}, err
	}
	if r.State != Frozen {
		return FreezeWait{}, fmt.Errorf("await freeze of %s: %w", r.Account, ErrNotFrozen)
	}
	out := FreezeWait{Generation: r.Generation}
	tick := time.NewTicker(ackPoll)
	defer tick.Stop()
	for {
		acked, missing, err := s.freezeAcks(ctx, r.Account, r.Generation, lease)
		if err != nil {
			return out, err
		}
		if len(missing) == 0 {
			out.Proxies, out.Waited = acked, time.Since(start)
			return out, nil
		}
		select {
		case <-ctx.Done():
			out.Waited = time.Since(start)
			return out, fmt.Errorf("freeze of %s not acknowledged by %s: %w", r.Account, strings.Join(missing, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

// freezeAcks splits the live proxies into those that acknowledged
// generation (or a later one) and those that did not.
func (s *Store) freezeAcks(ctx context.Context, account string, generation int64, lease time.Duration) (acked, missing []string, err error) {
	live := s.now().Add(-lease).UnixNano()
	rows, err := s.db.QueryContext(ctx, `SELECT p.id, COALESCE(a.generation, -1) FROM proxies p
		LEFT JOIN freeze_acks a ON a.proxy = p.id AND a.account = ? WHERE p.heartbeat >= ?`, account, live)
	if err != nil {
		return nil, nil, fmt.Errorf("read freeze acknowledgements: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var g int64
		if err := rows.Scan(&id, &g); err != nil {
			return nil, nil, fmt.Errorf("read freeze acknowledgements: %w", err)
		}
		if g >= generation {
			acked = append(acked, id)
		} else {
			missing = append(missing, id)
		}
	}
	slices.Sort(acked)
	slices.Sort(missing)
	return acked, missing, rows.Err()
}

// migrateAcks creates the acknowledgement and UIDL-map tables in route
// tables made before them.
func migrateAcks(ctx context.Context, db *sql.DB) error {
	_, err := db.ExecContext(ctx, ackSchema+uidlSchema)
	return err
}
