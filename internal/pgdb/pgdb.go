package pgdb

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Errors of Open.
var (
	// ErrNoSchema means the database has no mailmig tables yet.
	ErrNoSchema = errors.New("the database has no mailmig schema")
	// ErrNewerSchema means a newer mailmig upgraded the schema.
	ErrNewerSchema = errors.New("the database schema is newer than this mailmig")
)

// migrateLock is the advisory lock key that serialises schema migrations
// ("mmschema" as eight bytes).
const migrateLock = 0x6d6d736368656d61

// ConnectTimeout bounds the first connection. Default of Options.
const ConnectTimeout = 10 * time.Second

// Options configure Open. A nil *Options means defaults.
type Options struct {
	// Password, when not empty, replaces the DSN's password (the plan's
	// password_ref).
	Password string
	// Create creates or upgrades the schema; without it a missing schema
	// is ErrNoSchema.
	Create bool
	// MaxConns bounds the pool. Default: 4.
	MaxConns int32
}

// Migration is one numbered schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in order.
func Migrations() []Migration {
	ents, _ := fs.ReadDir(migrationFiles, "migrations")
	var out []Migration
	for _, e := range ents {
		num, name, ok := strings.Cut(strings.TrimSuffix(e.Name(), ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic("pgdb: bad migration file name " + e.Name())
		}
		b, _ := migrationFiles.ReadFile("migrations/" + e.Name())
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out
}

// Latest returns the schema version this binary creates.
func Latest() int {
	ms := Migrations()
	return ms[len(ms)-1].Version
}

// ParseConfig parses a DSN and applies the password, with errors that
// never repeat the DSN (it may carry a password).
func ParseConfig(dsn string, opts *Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("the PostgreSQL connection string does not parse; check the postgres attribute of the plan")
	}
	if opts != nil && opts.Password != "" {
		cfg.ConnConfig.Password = opts.Password
	}
	cfg.MaxConns = 4
	if opts != nil && opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = ConnectTimeout
	}
	return cfg, nil
}

// Where names the database of cfg for messages: user@host:port/db.
func Where(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s/%s", cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
}

// Open connects, checks the schema version and, with Create, creates or
// upgrades it.
func Open(ctx context.Context, dsn string, opts *Options) (*pgxpool.Pool, error) {
	cfg, err := ParseConfig(dsn, opts)
	if err != nil {
		return nil, err
	}
	where := Where(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, Explain(where, err)
	}
	create := opts != nil && opts.Create
	if err := migrate(ctx, pool, create); err != nil {
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL %s: %w", where, err)
	}
	return pool, nil
}

// Explain words a connection error for users: what went wrong and what to
// check.
func Explain(where string, err error) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pe.Code {
		case "28P01", "28000":
			return fmt.Errorf("PostgreSQL %s refused the login (%s); check the user in the postgres connection string and the password its password_ref names: %w", where, pe.Message, err)
		case "3D000":
			return fmt.Errorf("PostgreSQL %s has no such database; create it (createdb) or fix the database name in the connection string: %w", where, err)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connect: connection refused") || strings.Contains(err.Error(), "dial") {
		return fmt.Errorf("cannot reach PostgreSQL at %s; check the host and port in the postgres connection string and that the server runs: %w", where, err)
	}
	return fmt.Errorf("connect to PostgreSQL %s: %w", where, err)
}

// Version returns the schema version recorded in the database, 0 when it
// has none.
func Version(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('mailmig_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	if err := q.QueryRow(ctx, `SELECT version FROM mailmig_schema`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read the schema version: %w", err)
	}
	return v, nil
}

func migrate(ctx context.Context, pool *pgxpool.Pool, create bool) error {
	latest := Latest()
	v, err := Version(ctx, pool)
	if err != nil {
		return err
	}
	switch {
	case v > latest:
		return fmt.Errorf("%w: it is at version %d and this mailmig knows versions up to %d; upgrade mailmig to the release that wrote it (or newer) on every machine of the fleet", ErrNewerSchema, v, latest)
	case v == latest:
		return nil
	case !create:
		if v == 0 {
			return fmt.Errorf("%w; start a proxy or run a command that writes (\"mailmig routes set\", \"mailmig apply\") to create it", ErrNoSchema)
		}
		return fmt.Errorf("the schema is at version %d and this mailmig needs %d; run a command that writes (\"mailmig routes set\", a proxy) to upgrade it", v, latest)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	// Another process may have migrated while we waited for the lock.
	if v, err = Version(ctx, tx); err != nil {
		return err
	}
	if v > latest {
		return fmt.Errorf("%w: it is at version %d and this mailmig knows versions up to %d; upgrade mailmig", ErrNewerSchema, v, latest)
	}
	if v == 0 {
		if _, err := tx.Exec(ctx, `CREATE TABLE mailmig_schema (version integer NOT NULL); INSERT INTO mailmig_schema VALUES (0)`); err != nil {
			return fmt.Errorf("create the schema (does the user have CREATE on the database?): %w", err)
		}
	}
	for _, m := range Migrations() {
		if m.Version <= v {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("schema migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE mailmig_schema SET version = $1`, m.Version); err != nil {
			return fmt.Errorf("schema migration %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate the schema: %w", err)
	}
	return nil
}
