// Command fleetbench measures the PostgreSQL route table of a fleet (see
// docs/fleet.md for the recipe and the figures):
//
//	fleetbench -dsn URL flip  -proxies 3 -flips 300
//	fleetbench -dsn URL load  -routes 1000000
//	fleetbench load-sqlite -routes 1000000 FILE
//
// flip starts -proxies follower processes (this binary, "follow"), then
// changes one route at a time and reports, from the database's own clock,
// how long after each write the last proxy acknowledged it (p50, p99, max).
// load fills the table with -routes accounts (COPY) and reports how long a
// follower takes to load it, its heap and RSS, and the cost of one lookup.
// load-sqlite does the same with today's SQLite route table (a proxy's
// start-up: routes.Open and one Snapshot), for comparison.
// The database should be empty: load and flip create the schema.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
)

func main() {
	dsn := flag.String("dsn", os.Getenv("MAILMIG_PG_DSN"), "database URL")
	proxies := flag.Int("proxies", 3, "flip: follower processes")
	flips := flag.Int("flips", 300, "flip: route changes")
	n := flag.Int("routes", 1_000_000, "load: accounts")
	id := flag.String("id", "", "follow: proxy id")
	flag.Parse()
	ctx := context.Background()
	var err error
	switch flag.Arg(0) {
	case "flip":
		err = flip(ctx, *dsn, *proxies, *flips)
	case "load":
		err = load(ctx, *dsn, *n)
	case "load-sqlite":
		err = loadSQLite(ctx, flag.Arg(1), *n)
	case "follow":
		err = follow(ctx, *dsn, *id)
	default:
		err = fmt.Errorf("usage: fleetbench -dsn URL flip|load")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetbench:", err)
		os.Exit(1)
	}
}

func follow(ctx context.Context, dsn, id string) error {
	st, err := pgroutes.Open(ctx, dsn, nil)
	if err != nil {
		return err
	}
	f, err := pgroutes.Follow(ctx, st, &pgroutes.FollowOptions{ID: id, Lease: 10 * time.Second})
	if err != nil {
		return err
	}
	fmt.Println("following")
	return f.Run(ctx) // until killed
}

func flip(ctx context.Context, dsn string, proxies, flips int) error {
	st, err := pgroutes.Open(ctx, dsn, &pgroutes.Options{Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Set(ctx, "bench@example.test", "a"); err != nil {
		return err
	}
	for i := range proxies {
		cmd := exec.Command(os.Args[0], "-dsn", dsn, "-id", "bench"+strconv.Itoa(i), "follow")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		defer cmd.Process.Kill()
	}
	b := &pgroutes.Barrier{Store: st, Timeout: 30 * time.Second, Poll: 2 * time.Millisecond}
	for range 500 {
		ps, _, err := st.Proxies(ctx)
		if err != nil {
			return err
		}
		live := 0
		for _, p := range ps {
			if p.Live {
				live++
			}
		}
		if live == proxies {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var lat []time.Duration
	for i := range flips {
		if _, err := st.Set(ctx, "bench@example.test", []string{"a", "b"}[i%2]); err != nil {
			return err
		}
		if err := b.AwaitRoute(ctx, "bench@example.test"); err != nil {
			return err
		}
		seq, err := st.RouteSeq(ctx, "bench@example.test")
		if err != nil {
			return err
		}
		d, err := st.Acks(ctx, seq)
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("flip seen by %d proxies over %d flips: p50 %v  p99 %v  max %v\n", proxies, flips,
		pct(0.50).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond))
	return nil
}

func load(ctx context.Context, dsn string, n int) error {
	st, err := pgroutes.Open(ctx, dsn, &pgroutes.Options{Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	var have int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM mailmig_routes`).Scan(&have); err != nil {
		return err
	}
	if have < n {
		start := time.Now()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		now := time.Now()
		_, err = conn.CopyFrom(ctx, pgx.Identifier{"mailmig_routes"}, []string{"account", "backend", "state", "generation", "updated", "seq"},
			pgx.CopyFromSlice(n-have, func(i int) ([]any, error) {
				i += have
				return []any{fmt.Sprintf("user%07d@example%d.test", i, i%50), []string{"legacy", "stalwart"}[i%2], "active", int64(1), now, int64(0)}, nil
			}))
		conn.Close(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("filled %d routes in %v\n", n-have, time.Since(start).Round(time.Millisecond))
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	rss0 := rss()
	start := time.Now()
	f, err := pgroutes.Follow(ctx, st, &pgroutes.FollowOptions{ID: "load"})
	if err != nil {
		return err
	}
	took := time.Since(start)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	t := f.Watcher().Table()
	fmt.Printf("follower loaded %d routes in %v; heap in use %d MB (+%d MB), RSS %d MB (%d MB before)\n", t.Len(), took.Round(time.Millisecond),
		m1.HeapInuse>>20, int64(m1.HeapInuse-m0.HeapInuse)>>20, rss()>>20, rss0>>20)
	ids := make([]string, 1000)
	for i := range ids {
		j := i * (n / len(ids))
		ids[i] = fmt.Sprintf("User%07d@Example%d.test", j, j%50)
	}
	const rounds = 1000
	start = time.Now()
	hit := 0
	for r := range rounds {
		if _, ok := t.Resolve(ids[r%len(ids)]); ok {
			hit++
		}
	}
	for range rounds - 1 {
		for _, id := range ids {
			if _, ok := t.Resolve(id); ok {
				hit++
			}
		}
	}
	lookups := rounds + (rounds-1)*len(ids)
	fmt.Printf("lookup (Table.Resolve, the same in-memory table the SQLite watcher builds): %v per login (%d of %d found)\n",
		(time.Since(start) / time.Duration(lookups)).Round(time.Nanosecond), hit, lookups)
	// One change against the big table: the overlay keeps it cheap.
	start = time.Now()
	if _, err := st.Set(ctx, ids[0], "stalwart2"); err != nil {
		return err
	}
	f.Kick()
	fmt.Printf("one flip written (follower applies it when Run runs; see flip): %v\n", time.Since(start).Round(time.Millisecond))
	_, changes := t.Apply(t.Version+1, routes.Delta{Routes: map[string]*routes.Route{routes.Normalize(ids[0]): {Backend: "x", State: routes.Frozen}}})
	start = time.Now()
	for i := range 1000 {
		t, _ = t.Apply(t.Version+1, routes.Delta{Routes: map[string]*routes.Route{routes.Normalize(ids[i%len(ids)]): {Backend: "x", State: routes.Frozen, Generation: int64(i)}}})
	}
	fmt.Printf("Table.Apply of one change on %d routes: %v (amortised over 1000, flattening included); %d change\n",
		n, (time.Since(start) / 1000).Round(time.Microsecond), len(changes))
	return nil
}

// rss returns the resident set size from /proc/self/status.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadSQLite(ctx context.Context, path string, n int) error {
	if path == "" {
		return fmt.Errorf("load-sqlite needs a file")
	}
	st, err := routes.Open(ctx, path)
	if err != nil {
		return err
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM routes`).Scan(&have); err != nil {
		return err
	}
	if have < n {
		start := time.Now()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		for i := have; i < n; i++ {
			if _, err := tx.ExecContext(ctx, `INSERT INTO routes VALUES (?, ?, 'active', 1, ?)`,
				fmt.Sprintf("user%07d@example%d.test", i, i%50), []string{"legacy", "stalwart"}[i%2], now); err != nil {
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		fmt.Printf("filled %d SQLite routes in %v\n", n-have, time.Since(start).Round(time.Millisecond))
	}
	db.Close()
	runtime.GC()
	rss0 := rss()
	start := time.Now()
	st, err = routes.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	w, err := routes.NewWatcher(ctx, st, nil)
	if err != nil {
		return err
	}
	took := time.Since(start)
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Printf("SQLite watcher loaded %d routes in %v; heap in use %d MB, RSS %d MB (%d MB before)\n",
		w.Table().Len(), took.Round(time.Millisecond), m.HeapInuse>>20, rss()>>20, rss0>>20)
	return nil
}
