package pgroutes

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/proxy/routes"
)

// Channel is the NOTIFY channel of route changes; the payload is the
// change number.
const Channel = "mailmig_routes"

// KeepChanges is how many change numbers the change log keeps; a follower
// further behind reloads the whole table.
const KeepChanges = 100_000

// Options configure Open. A nil *Options means defaults.
type Options struct {
	// Password replaces the DSN's password (the plan's password_ref).
	Password string
	// Create creates or upgrades the schema. Default: false, and a
	// database without the schema is pgdb.ErrNoSchema.
	Create bool
	// MaxConns bounds the connection pool. Default: 4.
	MaxConns int32
}

// Store is the route table in PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool  *pgxpool.Pool
	where string
}

var _ routes.DB = (*Store)(nil)

// Open connects to the database named by dsn and checks its schema.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	var o pgdb.Options
	if opts != nil {
		o = pgdb.Options{Password: opts.Password, Create: opts.Create, MaxConns: opts.MaxConns}
	}
	cfg, err := pgdb.ParseConfig(dsn, &o)
	if err != nil {
		return nil, err
	}
	pool, err := pgdb.Open(ctx, dsn, &o)
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool, where: "postgres " + pgdb.Where(cfg.ConnConfig)}, nil
}

// Pool returns the connection pool (the Follower and Barrier use it).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Where implements routes.DB: the database without its password.
func (s *Store) Where() string { return s.where }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// Version implements routes.Source: the last change number.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT seq FROM mailmig_route_meta`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the route table version: %w", err)
	}
	return v, nil
}

// readTx runs fn in a read-only repeatable-read transaction: one
// consistent view of every table.
func (s *Store) readTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// names interns backend names while scanning a large table, so a million
// routes share a handful of strings.
type names map[string]string

func (n names) get(b []byte) string {
	if v, ok := n[string(b)]; ok {
		return v
	}
	v := string(b)
	n[v] = v
	return v
}

const routeCols = `account, backend, state, generation, updated`

// scanRoutes reads routes rows.
func scanRoutes(rows pgx.Rows, n names) ([]routes.Route, error) {
	defer rows.Close()
	var out []routes.Route
	var backend, state []byte
	for rows.Next() {
		var r routes.Route
		if err := rows.Scan(&r.Account, &backend, &state, &r.Generation, &r.Updated); err != nil {
			return nil, err
		}
		r.Backend = n.get(backend)
		r.State = routes.State(n.get(state))
		r.Updated = r.Updated.UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// Snapshot implements routes.Source: the whole table in one transaction.
func (s *Store) Snapshot(ctx context.Context) (*routes.Table, error) {
	t, _, err := s.snapshot(ctx, false)
	return t, err
}

// snapshot reads the whole table and, with pending, the pending marks
// (account → change number of its mark) in the same transaction.
func (s *Store) snapshot(ctx context.Context, pending bool) (*routes.Table, map[string]int64, error) {
	var t *routes.Table
	var marks map[string]int64
	err := s.readTx(ctx, func(tx pgx.Tx) error {
		if pending {
			var err error
			if marks, err = readMarks(ctx, tx, nil); err != nil {
				return err
			}
		}
		var seq int64
		var def string
		if err := tx.QueryRow(ctx, `SELECT seq, default_backend FROM mailmig_route_meta`).Scan(&seq, &def); err != nil {
			return err
		}
		var hint float64
		if err := tx.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'mailmig_routes'::regclass`).Scan(&hint); err != nil {
			return err
		}
		b := routes.NewBuilder(max(int(hint), 0))
		rows, err := tx.Query(ctx, `SELECT `+routeCols+` FROM mailmig_routes`)
		if err != nil {
			return err
		}
		if err := buildRoutes(rows, b); err != nil {
			return err
		}
		aliases := map[string]string{}
		rows, err = tx.Query(ctx, `SELECT identifier, account FROM mailmig_route_aliases`)
		if err != nil {
			return err
		}
		var id, acct string
		if _, err := pgx.ForEachRow(rows, []any{&id, &acct}, func() error { aliases[id] = acct; return nil }); err != nil {
			return err
		}
		var domains []string
		rows, err = tx.Query(ctx, `SELECT domain FROM mailmig_route_domains`)
		if err != nil {
			return err
		}
		var d string
		if _, err := pgx.ForEachRow(rows, []any{&d}, func() error { domains = append(domains, d); return nil }); err != nil {
			return err
		}
		t = b.Table(seq, def, aliases, domains)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the route table from %s: %w", s.where, err)
	}
	return t, marks, nil
}

// Changes reads what changed after change number since: the new values of
// the changed keys and the number they are current at. full is true when
// the log no longer reaches back to since: reload with Snapshot then.
func (s *Store) Changes(ctx context.Context, since int64) (d routes.Delta, upto int64, full bool, err error) {
	d, _, upto, full, err = s.changes(ctx, since)
	return d, upto, full, err
}

// changes is Changes that also returns the pending marks that changed:
// account → the change number of its mark, 0 when the mark was removed.
func (s *Store) changes(ctx context.Context, since int64) (d routes.Delta, marks map[string]int64, upto int64, full bool, err error) {
	var marked []string
	err = s.readTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT seq, default_backend FROM mailmig_route_meta`).Scan(&upto, new(string)); err != nil {
			return err
		}
		if upto <= since {
			return nil
		}
		var oldest *int64
		if err := tx.QueryRow(ctx, `SELECT min(seq) FROM mailmig_route_changes`).Scan(&oldest); err != nil {
			return err
		}
		if oldest == nil || *oldest > since+1 {
			full = true
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT kind, key FROM mailmig_route_changes WHERE seq > $1 AND seq <= $2`, since, upto)
		if err != nil {
			return err
		}
		var kind, key string
		var accts, ids []string
		if _, err := pgx.ForEachRow(rows, []any{&kind, &key}, func() error {
			switch kind {
			case "route":
				accts = append(accts, key)
			case "pending":
				marked = append(marked, key)
			case "alias":
				ids = append(ids, key)
			case "domain", "domain-":
				// A removed domain may still be derived from routes:
				// only a full reload knows.
				if kind == "domain-" {
					full = true
				}
				d.Domains = append(d.Domains, key)
			case "default":
				def := ""
				d.Default = &def
			}
			return nil
		}); err != nil {
			return err
		}
		if full {
			return nil
		}
		if d.Default != nil {
			if err := tx.QueryRow(ctx, `SELECT default_backend FROM mailmig_route_meta`).Scan(d.Default); err != nil {
				return err
			}
		}
		if len(accts) > 0 {
			d.Routes = make(map[string]*routes.Route, len(accts))
			for _, a := range accts {
				d.Routes[a] = nil
			}
			rows, err := tx.Query(ctx, `SELECT `+routeCols+` FROM mailmig_routes WHERE account = ANY($1)`, accts)
			if err != nil {
				return err
			}
			rs, err := scanRoutes(rows, names{})
			if err != nil {
				return err
			}
			for i := range rs {
				d.Routes[rs[i].Account] = &rs[i]
			}
		}
		if len(marked) > 0 {
			if marks, err = readMarks(ctx, tx, marked); err != nil {
				return err
			}
			for _, a := range marked {
				if _, ok := marks[a]; !ok {
					marks[a] = 0
				}
			}
		}
		if len(ids) > 0 {
			d.Aliases = make(map[string]string, len(ids))
			for _, id := range ids {
				d.Aliases[id] = ""
			}
			rows, err := tx.Query(ctx, `SELECT identifier, account FROM mailmig_route_aliases WHERE identifier = ANY($1)`, ids)
			if err != nil {
				return err
			}
			var id, acct string
			if _, err := pgx.ForEachRow(rows, []any{&id, &acct}, func() error { d.Aliases[id] = acct; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("read route changes from %s: %w", s.where, err)
	}
	return d, marks, upto, full, err
}

// change is one logged key of a write.
type change struct{ kind, key string }

// write runs fn in one transaction holding the change counter's row lock.
// fn returns the keys it changed; none means nothing is committed and no
// number is used. write returns the change number (0 when unchanged).
func (s *Store) write(ctx context.Context, what string, fn func(tx pgx.Tx, now time.Time) ([]change, error)) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	var seq int64
	var now time.Time
	if err := tx.QueryRow(ctx, `UPDATE mailmig_route_meta SET seq = seq + 1 RETURNING seq, now()`).Scan(&seq, &now); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	cs, err := fn(tx, now)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if len(cs) == 0 {
		return 0, nil // the rollback returns the number
	}
	kinds, keys := make([]string, len(cs)), make([]string, len(cs))
	for i, c := range cs {
		kinds[i], keys[i] = c.kind, c.key
	}
	if _, err := tx.Exec(ctx, `INSERT INTO mailmig_route_changes (seq, kind, key)
		SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS c(k, v) ON CONFLICT DO NOTHING`, seq, kinds, keys); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if seq%1000 == 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM mailmig_route_changes WHERE seq <= $1`, seq-KeepChanges); err != nil {
			return 0, fmt.Errorf("%s: prune the change log: %w", what, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, fmt.Sprint(seq)); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return seq, nil
}

func (s *Store) get(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, account string, lock bool) (routes.Route, bool, error) {
	sql := `SELECT ` + routeCols + ` FROM mailmig_routes WHERE account = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	rows, err := q.Query(ctx, sql, account)
	if err != nil {
		return routes.Route{}, false, err
	}
	rs, err := scanRoutes(rows, names{})
	if err != nil || len(rs) == 0 {
		return routes.Route{}, false, err
	}
	return rs[0], true, nil
}

// Get implements routes.DB.
func (s *Store) Get(ctx context.Context, account string) (routes.Route, error) {
	a := routes.Normalize(account)
	r, ok, err := s.get(ctx, s.pool, a, false)
	if err != nil {
		return r, fmt.Errorf("read route %s: %w", a, err)
	}
	if !ok {
		return r, fmt.Errorf("route %s: %w", a, routes.ErrNotFound)
	}
	return r, nil
}

// List implements routes.DB.
func (s *Store) List(ctx context.Context) ([]routes.Route, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+routeCols+` FROM mailmig_routes ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	rs, err := scanRoutes(rows, names{})
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	return rs, nil
}

// Update implements routes.DB: like routes.Store.Update, one transaction
// that logs the change. The returned route's change number is what
// Barrier.AwaitRoute waits for.
func (s *Store) Update(ctx context.Context, account string, fn func(r *routes.Route, ok bool) error) (routes.Route, error) {
	account = routes.Normalize(account)
	if account == "" {
		return routes.Route{}, fmt.Errorf("update route: %w: empty account", routes.ErrInvalid)
	}
	var out routes.Route
	_, err := s.write(ctx, "update route "+account, func(tx pgx.Tx, now time.Time) ([]change, error) {
		cur, ok, err := s.get(ctx, tx, account, true)
		if err != nil {
			return nil, err
		}
		if !ok {
			cur = routes.Route{Account: account, State: routes.Active}
		}
		next := cur
		if err := fn(&next, ok); err != nil {
			return nil, err
		}
		next.Account = account
		next.Backend = strings.TrimSpace(next.Backend)
		if next.Backend == "" {
			return nil, fmt.Errorf("%w: no backend for %s", routes.ErrInvalid, account)
		}
		if !next.State.Valid() {
			return nil, fmt.Errorf("%w: state %q (want active or frozen)", routes.ErrInvalid, next.State)
		}
		// An account active on the target of its pending mark has been
		// cut over: the mark goes in the same change.
		cleared, err := clearMark(ctx, tx, account, next)
		if err != nil {
			return nil, err
		}
		if ok && next.Backend == cur.Backend && next.State == cur.State {
			out = cur
			return cleared, nil
		}
		next.Generation = cur.Generation + 1
		next.Updated = now.UTC()
		if _, err := tx.Exec(ctx, `INSERT INTO mailmig_routes (account, backend, state, generation, updated, seq)
			VALUES ($1, $2, $3, $4, $5, (SELECT seq FROM mailmig_route_meta))
			ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, state = excluded.state,
				generation = excluded.generation, updated = excluded.updated, seq = excluded.seq`,
			next.Account, next.Backend, string(next.State), next.Generation, next.Updated); err != nil {
			return nil, err
		}
		if ok && cur.State == routes.Frozen && next.State != routes.Frozen {
			if err := forgetAcks(ctx, tx, account); err != nil {
				return nil, err
			}
		}
		out = next
		return append([]change{{"route", account}}, cleared...), nil
	})
	return out, err
}

// Set implements routes.DB.
func (s *Store) Set(ctx context.Context, account, backend string) (routes.Route, error) {
	return s.Update(ctx, account, func(r *routes.Route, _ bool) error { r.Backend = backend; return nil })
}

// Freeze implements routes.DB.
func (s *Store) Freeze(ctx context.Context, account string) (routes.Route, error) {
	return s.Update(ctx, account, func(r *routes.Route, ok bool) error {
		if !ok {
			return routes.ErrNotFound
		}
		r.State = routes.Frozen
		return nil
	})
}

// Unfreeze implements routes.DB.
func (s *Store) Unfreeze(ctx context.Context, account string) (routes.Route, error) {
	return s.Update(ctx, account, func(r *routes.Route, ok bool) error {
		if !ok {
			return routes.ErrNotFound
		}
		r.State = routes.Active
		return nil
	})
}

// Delete implements routes.DB.
func (s *Store) Delete(ctx context.Context, account string) error {
	account = routes.Normalize(account)
	_, err := s.write(ctx, "delete route "+account, func(tx pgx.Tx, _ time.Time) ([]change, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM mailmig_routes WHERE account = $1`, account)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, routes.ErrNotFound
		}
		if err := forgetAcks(ctx, tx, account); err != nil {
			return nil, err
		}
		cs := []change{{"route", account}}
		rows, err := tx.Query(ctx, `DELETE FROM mailmig_route_aliases WHERE account = $1 RETURNING identifier`, account)
		if err != nil {
			return nil, err
		}
		var id string
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error { cs = append(cs, change{"alias", id}); return nil })
		// A deleted account may have been its domain's last.
		if d := routes.Domain(account); d != "" {
			cs = append(cs, change{"domain-", d})
		}
		return cs, err
	})
	return err
}

// AddAlias implements routes.DB.
func (s *Store) AddAlias(ctx context.Context, identifier, account string) error {
	id, acct := routes.Normalize(identifier), routes.Normalize(account)
	if id == "" || acct == "" || id == acct {
		return fmt.Errorf("add alias: %w: need two different identifiers", routes.ErrInvalid)
	}
	_, err := s.write(ctx, "add alias "+id, func(tx pgx.Tx, _ time.Time) ([]change, error) {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM mailmig_routes WHERE account = $1`, id).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: %s is an account, not an alias", routes.ErrInvalid, id)
		}
		_, err := tx.Exec(ctx, `INSERT INTO mailmig_route_aliases (identifier, account) VALUES ($1, $2)
			ON CONFLICT (identifier) DO UPDATE SET account = excluded.account`, id, acct)
		return []change{{"alias", id}}, err
	})
	return err
}

// RemoveAlias implements routes.DB.
func (s *Store) RemoveAlias(ctx context.Context, identifier string) error {
	id := routes.Normalize(identifier)
	_, err := s.write(ctx, "remove alias "+id, func(tx pgx.Tx, _ time.Time) ([]change, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM mailmig_route_aliases WHERE identifier = $1`, id)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 0 {
			return nil, routes.ErrNotFound
		}
		cs := []change{{"alias", id}}
		if d := routes.Domain(id); d != "" {
			cs = append(cs, change{"domain-", d})
		}
		return cs, nil
	})
	return err
}

// SetDefault implements routes.DB.
func (s *Store) SetDefault(ctx context.Context, backend string) error {
	backend = strings.TrimSpace(backend)
	_, err := s.write(ctx, "set default backend", func(tx pgx.Tx, _ time.Time) ([]change, error) {
		tag, err := tx.Exec(ctx, `UPDATE mailmig_route_meta SET default_backend = $1 WHERE default_backend <> $1`, backend)
		if err != nil || tag.RowsAffected() == 0 {
			return nil, err
		}
		return []change{{"default", ""}}, nil
	})
	return err
}

// AddDomains implements routes.DB.
func (s *Store) AddDomains(ctx context.Context, domains ...string) error {
	_, err := s.write(ctx, "add domains", func(tx pgx.Tx, _ time.Time) ([]change, error) {
		var cs []change
		for _, d := range domains {
			d = routes.Normalize(d)
			if d == "" || strings.ContainsAny(d, "@ \t") {
				return nil, fmt.Errorf("%w: domain %q", routes.ErrInvalid, d)
			}
			tag, err := tx.Exec(ctx, `INSERT INTO mailmig_route_domains (domain) VALUES ($1) ON CONFLICT DO NOTHING`, d)
			if err != nil {
				return nil, err
			}
			if tag.RowsAffected() > 0 {
				cs = append(cs, change{"domain", d})
			}
		}
		return cs, nil
	})
	return err
}

// RemoveDomain implements routes.DB.
func (s *Store) RemoveDomain(ctx context.Context, domain string) error {
	d := routes.Normalize(domain)
	_, err := s.write(ctx, "remove domain", func(tx pgx.Tx, _ time.Time) ([]change, error) {
		tag, err := tx.Exec(ctx, `DELETE FROM mailmig_route_domains WHERE domain = $1`, d)
		if err != nil || tag.RowsAffected() == 0 {
			return nil, err
		}
		return []change{{"domain-", d}}, nil
	})
	return err
}

// ImportMapping implements routes.DB.
func (s *Store) ImportMapping(ctx context.Context, ms []routes.Mapping) (int, error) {
	return routes.ImportMapping(ctx, s, ms)
}

// ExportMapping implements routes.DB.
func (s *Store) ExportMapping(ctx context.Context) ([]routes.Mapping, error) {
	return routes.ExportMapping(ctx, s)
}

// RouteSeq returns the change number of an account's latest route change,
// or the table's current number when the account has no route.
func (s *Store) RouteSeq(ctx context.Context, account string) (int64, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT seq FROM mailmig_routes WHERE account = $1), (SELECT seq FROM mailmig_route_meta))`,
		routes.Normalize(account)).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("read the change number of %s: %w", routes.Normalize(account), err)
	}
	return seq, nil
}

// pgEpoch is PostgreSQL's timestamp origin, 2000-01-01 UTC.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// buildRoutes adds routes rows to b. A million rows are the proxy's
// start-up time, so the binary columns are decoded by hand rather than
// through Scan (about three times faster here); rows in text format (a
// connection pooler in statement mode) go through Scan.
func buildRoutes(rows pgx.Rows, b *routes.Builder) error {
	defer rows.Close()
	fds := rows.FieldDescriptions()
	bin := len(fds) == 5 && fds[3].Format == pgx.BinaryFormatCode && fds[4].Format == pgx.BinaryFormatCode &&
		fds[3].DataTypeOID == 20 && fds[4].DataTypeOID == 1184
	n := names{}
	frozen := []byte(routes.Frozen)
	for rows.Next() {
		if !bin {
			var r routes.Route
			var backend, state []byte
			if err := rows.Scan(&r.Account, &backend, &state, &r.Generation, &r.Updated); err != nil {
				return err
			}
			b.Add(r.Account, n.get(backend), bytes.Equal(state, frozen), r.Generation, r.Updated)
			continue
		}
		raw := rows.RawValues()
		if len(raw[3]) != 8 || len(raw[4]) != 8 {
			return fmt.Errorf("route row of %q: unexpected column sizes", raw[0])
		}
		gen := int64(binary.BigEndian.Uint64(raw[3]))
		us := int64(binary.BigEndian.Uint64(raw[4]))
		b.Add(string(raw[0]), n.get(raw[1]), bytes.Equal(raw[2], frozen), gen, pgEpoch.Add(time.Duration(us)*time.Microsecond))
	}
	return rows.Err()
}
