package routes

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// schema creates the tables. meta holds the change counter ("version") and
// the default backend ("default").
const schema = `
CREATE TABLE IF NOT EXISTS routes (
	account    TEXT PRIMARY KEY,
	backend    TEXT NOT NULL,
	state      TEXT NOT NULL CHECK (state IN ('active', 'frozen')),
	generation INTEGER NOT NULL,
	updated    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
	identifier TEXT PRIMARY KEY,
	account    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_account ON aliases (account);
CREATE TABLE IF NOT EXISTS domains (
	domain TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', '0');
`

// BusyTimeout is how long a write waits for another writer's transaction.
const BusyTimeout = 10 * time.Second

// Store is the SQLite route table. It is safe for concurrent use by several
// goroutines and, through SQLite's locking, by several processes.
type Store struct {
	db   *sql.DB
	path string
	now  func() time.Time
}

// Open opens (creating when missing) the route table at path, in WAL mode.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open route table: %w: empty path", ErrInvalid)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open route table %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(BusyTimeout/time.Millisecond))+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open route table %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open route table %s: %w", path, err)
	}
	if err := migrateAcks(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open route table %s: %w", path, err)
	}
	return &Store{db: db, path: path, now: time.Now}, nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Where implements DB: the file.
func (s *Store) Where() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Version returns the change counter. It grows with every write and is
// cheap to poll.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v string
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'version'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read route table version: %w", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read route table version: %w", err)
	}
	return n, nil
}

// Snapshot reads the whole table in one read transaction.
func (s *Store) Snapshot(ctx context.Context) (*Table, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("read route table: %w", err)
	}
	defer conn.Close()
	// A deferred read transaction gives one consistent view in WAL mode.
	if _, err := conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		return nil, fmt.Errorf("read route table: %w", err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK") //nolint:errcheck // read-only
	var version int64
	var def string
	rows, err := conn.QueryContext(ctx, `SELECT key, value FROM meta`)
	if err != nil {
		return nil, fmt.Errorf("read route table: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read route table: %w", err)
		}
		switch k {
		case "version":
			version, _ = strconv.ParseInt(v, 10, 64)
		case "default":
			def = v
		}
	}
	rows.Close()
	// Rows go straight into the table (no slice of a million Routes
	// first); the count sizes its map.
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM routes`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	b := NewBuilder(n)
	rows, err = conn.QueryContext(ctx, `SELECT account, backend, state, generation, updated FROM routes`)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	for rows.Next() {
		var acct, backend, state string
		var gen, updated int64
		if err := rows.Scan(&acct, &backend, &state, &gen, &updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read routes: %w", err)
		}
		b.Add(Normalize(acct), backend, State(state) == Frozen, gen, time.Unix(0, updated))
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("read routes: %w", err)
	}
	rows.Close()
	aliases := map[string]string{}
	rows, err = conn.QueryContext(ctx, `SELECT identifier, account FROM aliases`)
	if err != nil {
		return nil, fmt.Errorf("read route aliases: %w", err)
	}
	for rows.Next() {
		var id, acct string
		if err := rows.Scan(&id, &acct); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read route aliases: %w", err)
		}
		aliases[id] = acct
	}
	rows.Close()
	var domains []string
	rows, err = conn.QueryContext(ctx, `SELECT domain FROM domains`)
	if err != nil {
		return nil, fmt.Errorf("read route domains: %w", err)
	}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read route domains: %w", err)
		}
		domains = append(domains, d)
	}
	rows.Close()
	return b.Table(version, def, aliases, domains), nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryRoutes(ctx context.Context, q querier, query string, args ...any) ([]Route, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	defer rows.Close()
	var out []Route
	for rows.Next() {
		var r Route
		var state string
		var updated int64
		if err := rows.Scan(&r.Account, &r.Backend, &state, &r.Generation, &updated); err != nil {
			return nil, fmt.Errorf("read routes: %w", err)
		}
		r.State = State(state)
		r.Updated = time.Unix(0, updated).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	return out, nil
}

// Get returns the stored route of an account key (aliases are not
// followed; use Resolve for that).
func (s *Store) Get(ctx context.Context, account string) (Route, error) {
	rs, err := queryRoutes(ctx, s.db, `SELECT account, backend, state, generation, updated FROM routes WHERE account = ?`, Normalize(account))
	if err != nil {
		return Route{}, err
	}
	if len(rs) == 0 {
		return Route{}, fmt.Errorf("route %s: %w", Normalize(account), ErrNotFound)
	}
	return rs[0], nil
}

// Resolve finds the route of an identifier like Table.Resolve does, reading
// the current table.
func (s *Store) Resolve(ctx context.Context, identifier string) (Route, error) {
	t, err := s.Snapshot(ctx)
	if err != nil {
		return Route{}, err
	}
	r, ok := t.Resolve(identifier)
	if !ok {
		return Route{}, fmt.Errorf("route %s: %w", Normalize(identifier), ErrNotFound)
	}
	return r, nil
}

// List returns every stored route, sorted by account.
func (s *Store) List(ctx context.Context) ([]Route, error) {
	return queryRoutes(ctx, s.db, `SELECT account, backend, state, generation, updated FROM routes ORDER BY account`)
}

// tx runs fn in one IMMEDIATE write transaction and bumps the change
// counter when fn reports a change.
func (s *Store) tx(ctx context.Context, what string, fn func(tx *sql.Tx) (changed bool, err error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	changed, err := fn(tx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if changed {
		if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'`); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Update changes one account's route in a write transaction: fn gets the
// current route (ok false and a zero Route with Account set when the account
// has none) and edits it in place. When backend or state changed, the
// generation grows by one. Update returns the stored route.
func (s *Store) Update(ctx context.Context, account string, fn func(r *Route, ok bool) error) (Route, error) {
	account = Normalize(account)
	if account == "" {
		return Route{}, fmt.Errorf("update route: %w: empty account", ErrInvalid)
	}
	var out Route
	err := s.tx(ctx, "update route "+account, func(tx *sql.Tx) (bool, error) {
		rs, err := queryRoutes(ctx, tx, `SELECT account, backend, state, generation, updated FROM routes WHERE account = ?`, account)
		if err != nil {
			return false, err
		}
		var cur Route
		ok := len(rs) == 1
		if ok {
			cur = rs[0]
		} else {
			cur = Route{Account: account, State: Active}
		}
		next := cur
		if err := fn(&next, ok); err != nil {
			return false, err
		}
		next.Account = account
		next.Backend = strings.TrimSpace(next.Backend)
		if next.Backend == "" {
			return false, fmt.Errorf("%w: no backend for %s", ErrInvalid, account)
		}
		if !next.State.Valid() {
			return false, fmt.Errorf("%w: state %q (want active or frozen)", ErrInvalid, next.State)
		}
		if ok && next.Backend == cur.Backend && next.State == cur.State {
			out = cur
			return false, nil
		}
		next.Generation = cur.Generation + 1
		next.Updated = s.now().UTC()
		if _, err := tx.ExecContext(ctx, `INSERT INTO routes (account, backend, state, generation, updated) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET backend = excluded.backend, state = excluded.state, generation = excluded.generation, updated = excluded.updated`,
			next.Account, next.Backend, string(next.State), next.Generation, next.Updated.UnixNano()); err != nil {
			return false, err
		}
		out = next
		return true, nil
	})
	return out, err
}

// Set points an account at a backend, creating the route (active) when it
// is missing. The state is kept; use Freeze and Unfreeze for it.
func (s *Store) Set(ctx context.Context, account, backend string) (Route, error) {
	return s.Update(ctx, account, func(r *Route, _ bool) error {
		r.Backend = backend
		return nil
	})
}

// Freeze sets an existing account's route to Frozen.
func (s *Store) Freeze(ctx context.Context, account string) (Route, error) {
	return s.Update(ctx, account, func(r *Route, ok bool) error {
		if !ok {
			return ErrNotFound
		}
		r.State = Frozen
		return nil
	})
}

// Unfreeze sets an existing account's route to Active.
func (s *Store) Unfreeze(ctx context.Context, account string) (Route, error) {
	return s.Update(ctx, account, func(r *Route, ok bool) error {
		if !ok {
			return ErrNotFound
		}
		r.State = Active
		return nil
	})
}

// Delete removes an account's route and its aliases.
func (s *Store) Delete(ctx context.Context, account string) error {
	account = Normalize(account)
	return s.tx(ctx, "delete route "+account, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM routes WHERE account = ?`, account)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return false, ErrNotFound
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM aliases WHERE account = ?`, account)
		return true, err
	})
}

// AddAlias makes identifier a login alias of account. An identifier that is
// itself an account key cannot be an alias.
func (s *Store) AddAlias(ctx context.Context, identifier, account string) error {
	id, acct := Normalize(identifier), Normalize(account)
	if id == "" || acct == "" || id == acct {
		return fmt.Errorf("add alias: %w: need two different identifiers", ErrInvalid)
	}
	return s.tx(ctx, "add alias "+id, func(tx *sql.Tx) (bool, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM routes WHERE account = ?`, id).Scan(&n); err != nil {
			return false, err
		}
		if n > 0 {
			return false, fmt.Errorf("%w: %s is an account, not an alias", ErrInvalid, id)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO aliases (identifier, account) VALUES (?, ?)
			ON CONFLICT (identifier) DO UPDATE SET account = excluded.account`, id, acct)
		return true, err
	})
}

// RemoveAlias deletes a login alias.
func (s *Store) RemoveAlias(ctx context.Context, identifier string) error {
	id := Normalize(identifier)
	return s.tx(ctx, "remove alias "+id, func(tx *sql.Tx) (bool, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM aliases WHERE identifier = ?`, id)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		if n == 0 {
			return false, ErrNotFound
		}
		return true, nil
	})
}

// Aliases returns the aliases of one account, sorted.
func (s *Store) Aliases(ctx context.Context, account string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT identifier FROM aliases WHERE account = ? ORDER BY identifier`, Normalize(account))
	if err != nil {
		return nil, fmt.Errorf("read aliases: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read aliases: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SetDefault sets the default backend for unknown identifiers; "" removes
// it.
func (s *Store) SetDefault(ctx context.Context, backend string) error {
	backend = strings.TrimSpace(backend)
	return s.tx(ctx, "set default backend", func(tx *sql.Tx) (bool, error) {
		if backend == "" {
			_, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'default'`)
			return true, err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('default', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, backend)
		return true, err
	})
}

// AddDomains lists domains as known for SMTP relay control.
func (s *Store) AddDomains(ctx context.Context, domains ...string) error {
	return s.tx(ctx, "add domains", func(tx *sql.Tx) (bool, error) {
		for _, d := range domains {
			d = Normalize(d)
			if d == "" || strings.ContainsAny(d, "@ \t") {
				return false, fmt.Errorf("%w: domain %q", ErrInvalid, d)
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO domains (domain) VALUES (?)`, d); err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// RemoveDomain removes an explicitly listed domain.
func (s *Store) RemoveDomain(ctx context.Context, domain string) error {
	return s.tx(ctx, "remove domain", func(tx *sql.Tx) (bool, error) {
		_, err := tx.ExecContext(ctx, `DELETE FROM domains WHERE domain = ?`, Normalize(domain))
		return true, err
	})
}

// ImportMapping stores Stalwart mapping entries: each identifier becomes an
// account routed (active) to its destination backend. Entries whose
// identifier is already an alias update the alias's account instead.
func (s *Store) ImportMapping(ctx context.Context, ms []Mapping) (int, error) {
	return ImportMapping(ctx, s, ms)
}

// ImportMapping is DB.ImportMapping for any DB. Each entry points its
// account (or the account of its alias) at its destination, keeping the
// route's state, as Set does. The table is read once; a store that is a
// Loader (both are) takes the routes in batches of LoadBatch, one
// transaction each, instead of one transaction per entry — a provider's
// mapping file has a million lines.
func ImportMapping(ctx context.Context, s DB, ms []Mapping) (int, error) {
	t, err := s.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	rs := make([]Route, 0, len(ms))
	for _, m := range ms {
		acct := Normalize(m.Identifier)
		if a, ok := t.alias(acct); ok {
			acct = a
		}
		r := Route{Account: acct, Backend: m.Destination, State: Active}
		if cur, ok := t.route(acct); ok {
			r.State = cur.State
		}
		rs = append(rs, r)
	}
	l, ok := s.(Loader)
	if !ok {
		for i, r := range rs {
			if _, err := s.Set(ctx, r.Account, r.Backend); err != nil {
				return i, err
			}
		}
		return len(rs), nil
	}
	n := 0
	for len(rs) > 0 {
		b := rs[:min(LoadBatch, len(rs))]
		if err := l.LoadRoutes(ctx, b); err != nil {
			return n, err
		}
		n += len(b)
		rs = rs[len(b):]
	}
	return n, nil
}

// LoadBatch is how many routes ImportMapping writes per transaction.
const LoadBatch = 5000

// ExportMapping returns the table as Stalwart mapping entries: one line per
// account and one per alias, each naming the account's backend.
func (s *Store) ExportMapping(ctx context.Context) ([]Mapping, error) {
	return ExportMapping(ctx, s)
}

// ExportMapping is DB.ExportMapping for any DB.
func ExportMapping(ctx context.Context, s DB) ([]Mapping, error) {
	t, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []Mapping
	for _, r := range t.Routes() {
		out = append(out, Mapping{Identifier: r.Account, Destination: r.Backend})
	}
	n := len(out)
	for id, acct := range t.Aliases() {
		if r, ok := t.route(acct); ok {
			out = append(out, Mapping{Identifier: id, Destination: r.Backend})
		}
	}
	slices.SortFunc(out[n:], func(a, b Mapping) int { return strings.Compare(a.Identifier, b.Identifier) })
	return out, nil
}

func sortRoutes(rs []Route) {
	slices.SortFunc(rs, func(a, b Route) int { return strings.Compare(a.Account, b.Account) })
}

func sortChanges(cs []Change) {
	slices.SortFunc(cs, func(a, b Change) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return strings.Compare(a.Alias, b.Alias)
	})
}
