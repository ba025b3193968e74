package pgroutes_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/pgdb"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

// newStore returns a store on a fresh database of the peers' PostgreSQL.
func newStore(t *testing.T) (*pgroutes.Store, string) {
	t.Helper()
	dsn := peers.Get(t).Postgres.NewDatabase(t)
	st, err := pgroutes.Open(context.Background(), dsn, &pgroutes.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, dsn
}

// waitFor polls cond for up to 20 s (bounded: no test waits forever).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// follow starts a follower with a short lease and stops it at cleanup.
func follow(t *testing.T, st *pgroutes.Store, id string, lease time.Duration) (*pgroutes.Follower, context.CancelFunc) {
	t.Helper()
	f, err := pgroutes.Follow(context.Background(), st, &pgroutes.FollowOptions{ID: id, Address: id + ":143", Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f, cancel
}

// TestStoreMatchesSQLite makes the same edits on both stores and compares
// the tables they read back.
func TestStoreMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	pg, _ := newStore(t)
	lite, err := routes.Open(ctx, t.TempDir()+"/routes.db")
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	for _, db := range []routes.DB{pg, lite} {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", db.Where(), err)
			}
		}
		_, err := db.Set(ctx, "Alice@Example.test", "old")
		must(err)
		_, err = db.Set(ctx, "bob@example.test", "old")
		must(err)
		_, err = db.Freeze(ctx, "alice@example.test")
		must(err)
		_, err = db.Set(ctx, "alice@example.test", "new")
		must(err)
		must(db.AddAlias(ctx, "alice", "alice@example.test"))
		must(db.AddAlias(ctx, "bobby", "bob@example.test"))
		must(db.RemoveAlias(ctx, "bobby"))
		must(db.SetDefault(ctx, "old"))
		must(db.AddDomains(ctx, "example.net", "example.org"))
		must(db.RemoveDomain(ctx, "example.org"))
		_, err = db.Set(ctx, "carol@example.com", "new")
		must(err)
		must(db.Delete(ctx, "carol@example.com"))
		if err := db.Delete(ctx, "nobody@example.test"); !errors.Is(err, routes.ErrNotFound) {
			t.Errorf("%s: delete of a missing route: %v", db.Where(), err)
		}
		if _, err := db.Freeze(ctx, "nobody@example.test"); !errors.Is(err, routes.ErrNotFound) {
			t.Errorf("%s: freeze of a missing route: %v", db.Where(), err)
		}
	}
	a, err := pg.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lite.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Routes  []routes.Route
		Aliases map[string]string
		Default string
		Domains []string
	}
	strip := func(t *routes.Table) view {
		rs := t.Routes()
		for i := range rs {
			rs[i].Updated = time.Time{}
		}
		return view{rs, t.Aliases(), t.Default, t.Domains()}
	}
	if d := cmp.Diff(strip(b), strip(a)); d != "" {
		t.Errorf("PostgreSQL table differs from SQLite's (-sqlite +postgres):\n%s", d)
	}
	ma, _ := pg.ExportMapping(ctx)
	mb, _ := lite.ExportMapping(ctx)
	if d := cmp.Diff(mb, ma); d != "" {
		t.Errorf("export differs (-sqlite +postgres):\n%s", d)
	}
}

// TestFleetSeesFlip: three followers on one database see a freeze and a
// flip, the barrier returns once all three acknowledged it, and each
// follower's subscribers hear of the change exactly once.
func TestFleetSeesFlip(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	if _, err := st.Set(ctx, "alice@example.test", "source"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	heard := map[string][]string{}
	var fs []*pgroutes.Follower
	for _, id := range []string{"p1", "p2", "p3"} {
		f, _ := follow(t, st, id, 3*time.Second)
		f.Watcher().Subscribe(func(c routes.Change) {
			mu.Lock()
			heard[id] = append(heard[id], c.New.Backend+"/"+string(c.New.State))
			mu.Unlock()
		})
		fs = append(fs, f)
	}
	b := &pgroutes.Barrier{Store: st, Timeout: 10 * time.Second}
	for _, step := range []struct {
		backend string
		state   routes.State
	}{{"source", routes.Frozen}, {"target", routes.Frozen}, {"target", routes.Active}} {
		r, err := st.Update(ctx, "alice@example.test", func(r *routes.Route, _ bool) error {
			r.Backend, r.State = step.backend, step.state
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.AwaitRoute(ctx, "alice@example.test"); err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			got, _ := f.Watcher().Table().Account("alice@example.test")
			if got.Backend != r.Backend || got.State != r.State || got.Generation != r.Generation {
				t.Errorf("%s after the barrier: %+v, want %+v", f.ID(), got, r)
			}
		}
	}
	want := []string{"source/frozen", "target/frozen", "target/active"}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"p1", "p2", "p3"} {
		if d := cmp.Diff(want, heard[id]); d != "" {
			t.Errorf("%s heard (-want +got):\n%s", id, d)
		}
	}
	ps, seq, err := st.Proxies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("proxies = %+v", ps)
	}
	for _, p := range ps {
		if !p.Live || p.Applied != seq || p.Lag != 0 {
			t.Errorf("proxy %+v, table at %d", p, seq)
		}
	}
}

// TestMissedNotification: a change whose notification never came (written
// here without NOTIFY) is caught at the next heartbeat.
func TestMissedNotification(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	f, _ := follow(t, st, "p1", 1500*time.Millisecond)
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE mailmig_route_meta SET seq = seq + 1`,
		`INSERT INTO mailmig_routes VALUES ('quiet@example.test', 'b', 'active', 1, now(), (SELECT seq FROM mailmig_route_meta))`,
		`INSERT INTO mailmig_route_changes (seq, kind, key) VALUES ((SELECT seq FROM mailmig_route_meta), 'route', 'quiet@example.test')`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the heartbeat to catch the change", func() bool {
		_, ok := f.Watcher().Table().Account("quiet@example.test")
		return ok
	})
}

// TestBarrierExcludesDeadProxy: a proxy that registered and then died (it
// never heartbeats again, as after SIGKILL) holds the barrier until its
// lease runs out, then is ignored; a short timeout names it.
func TestBarrierExcludesDeadProxy(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	if _, err := st.Set(ctx, "alice@example.test", "source"); err != nil {
		t.Fatal(err)
	}
	// The apply marked the account pending before either proxy died:
	// only a proxy that saw the mark may be left out after its lease.
	if _, err := st.MarkPending(ctx, "alice@example.test", "target"); err != nil {
		t.Fatal(err)
	}
	alive, _ := follow(t, st, "alive", 3*time.Second)
	// Registered, never run: a proxy killed right after its last ack. Its
	// heartbeat is set by hand, so that the test does not race its lease
	// (TestFleetFlip in cmd/mailmig lets a real lease run out).
	if _, err := pgroutes.Follow(ctx, st, &pgroutes.FollowOptions{ID: "dead", Lease: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	heartbeat := func(at string) {
		t.Helper()
		if _, err := st.Pool().Exec(ctx, `UPDATE mailmig_proxies SET heartbeat = `+at+` WHERE id = 'dead'`); err != nil {
			t.Fatal(err)
		}
	}
	heartbeat("now() + interval '1 hour'")
	r, err := st.Freeze(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	seq, err := st.RouteSeq(ctx, r.Account)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the live proxy to apply the freeze", func() bool { return alive.Applied() >= seq })
	short := &pgroutes.Barrier{Store: st, Timeout: 200 * time.Millisecond}
	err = short.AwaitRoute(ctx, "alice@example.test")
	if !errors.Is(err, pgroutes.ErrBarrier) || !strings.Contains(err.Error(), "dead") || strings.Contains(err.Error(), "alive") {
		t.Fatalf("short barrier: %v, want ErrBarrier naming only the dead proxy", err)
	}
	heartbeat("now() - interval '1 minute'") // its lease ran out
	long := &pgroutes.Barrier{Store: st, Timeout: 15 * time.Second}
	if err := long.AwaitRoute(ctx, "alice@example.test"); err != nil {
		t.Fatalf("barrier after the dead proxy's lease: %v", err)
	}
	ps, _, err := st.Proxies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == "dead" && (p.Live || p.Lag == 0) {
			t.Errorf("dead proxy shown as %+v", p)
		}
	}
}

// TestOpenErrors: each bad database is a clear error that says what to do.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	set := peers.Get(t)
	good := set.Postgres.NewDatabase(t)
	newer := set.Postgres.NewDatabase(t)
	st, err := pgroutes.Open(ctx, newer, &pgroutes.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `UPDATE mailmig_schema SET version = 999`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for name, tc := range map[string]struct {
		dsn, password string
		create        bool
		want          []string
		is            error
	}{
		"unreachable":    {dsn: "postgres://mailmig@127.0.0.1:1/mailmig?sslmode=disable&connect_timeout=2", want: []string{"cannot reach PostgreSQL", "check the host and port"}},
		"wrong password": {dsn: good, password: "wrong", want: []string{"refused the login", "password_ref"}},
		"no database":    {dsn: strings.Replace(good, "/t_", "/nosuch_", 1), want: []string{"no such database"}},
		"no schema":      {dsn: good, want: []string{"no mailmig schema", "routes set"}, is: pgdb.ErrNoSchema},
		"newer schema":   {dsn: newer, create: true, want: []string{"version 999", "upgrade mailmig"}, is: pgdb.ErrNewerSchema},
		"bad dsn":        {dsn: "postgres://mailmig:secret@[::1", want: []string{"does not parse"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := pgroutes.Open(ctx, tc.dsn, &pgroutes.Options{Password: tc.password, Create: tc.create})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "mailmigpw") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestChangesPrunedReload: a follower whose number fell out of the change
// log reloads the whole table.
func TestChangesPrunedReload(t *testing.T) {
	ctx := context.Background()
	st, _ := newStore(t)
	if _, err := st.Set(ctx, "a@example.test", "one"); err != nil {
		t.Fatal(err)
	}
	t0, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Set(ctx, "b@example.test", "two"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `DELETE FROM mailmig_route_changes`); err != nil {
		t.Fatal(err)
	}
	_, upto, full, err := st.Changes(ctx, t0.Version)
	if err != nil || !full || upto != t0.Version+1 {
		t.Fatalf("Changes after pruning: upto %d full %v err %v", upto, full, err)
	}
}

// TestImportMappingBatches: a Stalwart mapping file of more than two
// batches imports the same table into both stores, as one Set per line
// would: an alias line routes its account, a frozen account stays frozen
// at its new backend, of two lines for one account the later wins, and
// PostgreSQL spends one change number per batch.
func TestImportMappingBatches(t *testing.T) {
	ctx := context.Background()
	pg, _ := newStore(t)
	lite, err := routes.Open(ctx, t.TempDir()+"/routes.db")
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	var ms []routes.Mapping
	for i := range 2*routes.LoadBatch + 7 {
		ms = append(ms, routes.Mapping{Identifier: fmt.Sprintf("User%05d@Example.test", i), Destination: "new"})
	}
	ms = append(ms, routes.Mapping{Identifier: "frozen@example.test", Destination: "new"},
		routes.Mapping{Identifier: "al", Destination: "new"},
		routes.Mapping{Identifier: "user00003@example.test", Destination: "later"})
	tables := map[string]*routes.Table{}
	for _, db := range []routes.DB{pg, lite} {
		if _, err := db.Set(ctx, "frozen@example.test", "old"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Freeze(ctx, "frozen@example.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Set(ctx, "aliased@example.test", "old"); err != nil {
			t.Fatal(err)
		}
		if err := db.AddAlias(ctx, "al", "aliased@example.test"); err != nil {
			t.Fatal(err)
		}
		v0, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n, err := db.ImportMapping(ctx, ms)
		if err != nil || n != len(ms) {
			t.Fatalf("%s: ImportMapping = %d, %v; want %d", db.Where(), n, err, len(ms))
		}
		tb, err := db.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tables[db.Where()] = tb
		if db == routes.DB(pg) {
			v1, err := db.Version(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v1-v0 > 3 {
				t.Errorf("PostgreSQL spent %d change numbers on %d lines, want one per batch", v1-v0, len(ms))
			}
		}
		for acct, want := range map[string]routes.Route{
			"frozen@example.test":    {Backend: "new", State: routes.Frozen},
			"aliased@example.test":   {Backend: "new", State: routes.Active},
			"user00003@example.test": {Backend: "later", State: routes.Active},
			"user10006@example.test": {Backend: "new", State: routes.Active},
		} {
			r, ok := tb.Account(acct)
			if !ok || r.Backend != want.Backend || r.State != want.State {
				t.Errorf("%s: %s = %+v (%v), want %s %s", db.Where(), acct, r, ok, want.Backend, want.State)
			}
		}
		if _, ok := tb.Account("al"); ok {
			t.Errorf("%s: the alias line made a route of its own", db.Where())
		}
	}
	var rows [2][]routes.Route
	i := 0
	for _, tb := range tables {
		for _, r := range tb.Routes() {
			r.Generation, r.Updated = 0, time.Time{}
			rows[i] = append(rows[i], r)
		}
		i++
	}
	if d := cmp.Diff(rows[0], rows[1]); d != "" {
		t.Errorf("the stores differ after the import:\n%s", d)
	}
}
