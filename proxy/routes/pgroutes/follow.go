package pgroutes

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailmig/mailmig/proxy/routes"
)

// DefaultLease is the default of FollowOptions.Lease.
const DefaultLease = 10 * time.Second

// FollowOptions configure Follow. A nil *FollowOptions means defaults.
type FollowOptions struct {
	// ID names the proxy in mailmig_proxies; it must be unique in the
	// fleet and stable across restarts of one proxy. Default: hostname
	// and process id.
	ID string
	// Address is what operators see for the proxy (its listeners).
	Address string
	// Lease is how long the proxy counts as alive after a heartbeat, and
	// how long it may lose the database before it treats accounts in
	// transition as frozen. It heartbeats three times per lease.
	// Default: DefaultLease.
	Lease time.Duration
	// Logger receives connection trouble and route changes. Default:
	// discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Follower keeps a routes.Watcher current from the database and records
// the proxy's acknowledgements. Create it with Follow and run Run.
type Follower struct {
	st    *Store
	w     *routes.Watcher
	id    string
	addr  string
	lease time.Duration
	log   *slog.Logger
	now   func() time.Time

	// inst orders the two writers of the watcher's table (catch-up and
	// the lease check), so that a strict table never lands after the
	// catch-up that ended the outage.
	inst     sync.Mutex
	mu       sync.Mutex
	contact  time.Time        // start of the last successful round trip
	truth    *routes.Table    // the last table read from the database
	pending  map[string]int64 // pending marks at truth.Version: account → change number
	degraded bool             // a stricter table is installed (lost contact)
	applied  int64            // last change number acknowledged
	acking   bool             // acknowledges freezes (FreezeAcks.RegisterProxy)
	wake     chan struct{}    // closed by Kick
}

// Follow loads the table, registers the proxy and returns a Follower whose
// Watcher serves the table; call Run to follow changes.
func Follow(ctx context.Context, st *Store, opts *FollowOptions) (*Follower, error) {
	f := &Follower{st: st, lease: DefaultLease, log: slog.New(slog.DiscardHandler), now: time.Now, wake: make(chan struct{}, 1)}
	if opts != nil {
		f.id, f.addr = opts.ID, opts.Address
		if opts.Lease > 0 {
			f.lease = opts.Lease
		}
		if opts.Logger != nil {
			f.log = opts.Logger
		}
		if opts.Now != nil {
			f.now = opts.Now
		}
	}
	if f.id == "" {
		f.id = DefaultID()
	}
	start := f.now()
	t, marks, err := st.snapshot(ctx, true)
	if err != nil {
		return nil, err
	}
	f.truth, f.pending, f.contact = t, marks, start
	f.w = routes.NewFollower(t, &routes.WatchOptions{Logger: f.log})
	if _, err := st.pool.Exec(ctx, `INSERT INTO mailmig_proxies (id, address, started, heartbeat, lease_ms, applied, applied_at)
		VALUES ($1, $2, now(), now(), $3, $4, now())
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, started = excluded.started, heartbeat = excluded.heartbeat,
			lease_ms = excluded.lease_ms, applied = excluded.applied, applied_at = excluded.applied_at, acks_freezes = false`,
		f.id, f.addr, f.lease.Milliseconds(), t.Version); err != nil {
		return nil, fmt.Errorf("register proxy %s in %s: %w", f.id, st.where, err)
	}
	// A proxy restarted under the same id starts without acknowledgements:
	// its acker acknowledges every frozen route again (acks.go).
	if _, err := st.pool.Exec(ctx, `DELETE FROM mailmig_freeze_acks WHERE proxy = $1`, f.id); err != nil {
		return nil, fmt.Errorf("register proxy %s in %s: %w", f.id, st.where, err)
	}
	f.applied = t.Version
	return f, nil
}

// SetAddress replaces the address operators see (the proxy knows its
// listeners' real addresses only after binding them).
func (f *Follower) SetAddress(ctx context.Context, addr string) error {
	f.mu.Lock()
	f.addr = addr
	f.mu.Unlock()
	if _, err := f.st.pool.Exec(ctx, `UPDATE mailmig_proxies SET address = $2 WHERE id = $1`, f.id, addr); err != nil {
		return fmt.Errorf("record the address of proxy %s: %w", f.id, err)
	}
	return nil
}

// Watcher returns the watcher the proxy's router reads.
func (f *Follower) Watcher() *routes.Watcher { return f.w }

// ID returns the proxy's id in mailmig_proxies.
func (f *Follower) ID() string { return f.id }

// Applied returns the last change number the proxy acknowledged.
func (f *Follower) Applied() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// Pending returns how many accounts the proxy knows as pending (marked
// for a cut-over ahead) in the last table it read.
func (f *Follower) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// Degraded reports whether the proxy lost the database for longer than its
// lease and treats accounts in transition as frozen.
func (f *Follower) Degraded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.degraded
}

// Kick makes Run check for changes now (tests, and a hint after a write
// in the same process).
func (f *Follower) Kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Run follows the table until ctx ends: it LISTENs on a connection of its
// own, catches up on every notification and every heartbeat (three per
// lease), and reconnects after errors. It returns ctx.Err().
func (f *Follower) Run(ctx context.Context) error {
	beat := f.lease / 3
	backoff := 100 * time.Millisecond
	// The lease is checked on a clock of its own: a connection attempt
	// to a database that does not answer may take longer than the lease.
	go func() {
		t := time.NewTicker(max(f.lease/10, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				f.checkLease()
			}
		}
	}()
	for ctx.Err() == nil {
		err := f.session(ctx, beat)
		if ctx.Err() != nil {
			break
		}
		f.log.Warn("route database connection lost", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, beat)
	}
	// Unregister politely: a clean stop need not wait out its lease.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	f.st.pool.Exec(uctx, `DELETE FROM mailmig_proxies WHERE id = $1`, f.id)        //nolint:errcheck // best effort; the lease covers it
	f.st.pool.Exec(uctx, `DELETE FROM mailmig_freeze_acks WHERE proxy = $1`, f.id) //nolint:errcheck // as above; rows of a proxy not registered are never read
	return ctx.Err()
}

// session is one LISTEN connection's life.
func (f *Follower) session(ctx context.Context, beat time.Duration) error {
	conn, err := f.st.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTEN connection is never handed back to the pool: close it.
	defer func() { conn.Conn().Close(context.Background()); conn.Release() }()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	if err := f.catchUp(ctx); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, beat)
		stopKick := make(chan struct{})
		go func() {
			select {
			case <-f.wake:
				cancel()
			case <-stopKick:
			}
		}()
		_, err := conn.Conn().WaitForNotification(wctx)
		close(stopKick)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && wctx.Err() == nil {
			return err // the connection broke
		}
		// A notification, a heartbeat or a kick: catch up (which also
		// drains every notification already queued: they are numbers we
		// read past).
		if err := f.catchUp(ctx); err != nil {
			return err
		}
		if conn.Conn().IsClosed() {
			return fmt.Errorf("listen connection closed")
		}
	}
}

// catchUp reads the changes past the last applied number, installs the new
// table and acknowledges it with a heartbeat.
func (f *Follower) catchUp(ctx context.Context) error {
	start := f.now()
	cctx, cancel := context.WithTimeout(ctx, f.lease/2)
	defer cancel()
	f.mu.Lock()
	truth := f.truth
	f.mu.Unlock()
	d, marks, upto, full, err := f.st.changes(cctx, truth.Version)
	if err != nil {
		return err
	}
	next, changes := truth, []routes.Change(nil)
	var all map[string]int64 // a full reload's marks
	switch {
	case full:
		t, m, err := f.st.snapshot(cctx, true)
		if err != nil {
			return err
		}
		next, changes, all = t, routes.Diff(truth, t), m
	case upto > truth.Version:
		next, changes = truth.Apply(upto, d)
	}
	f.inst.Lock()
	f.mu.Lock()
	shown := f.w.Table()
	wasDegraded := f.degraded
	f.truth, f.degraded, f.contact = next, false, start
	// The marks move with the table they were read with: the number
	// acknowledged below covers both.
	if all != nil {
		f.pending = all
	} else if !full {
		for a, seq := range marks {
			if seq == 0 {
				delete(f.pending, a)
			} else {
				f.pending[a] = seq
			}
		}
	}
	f.mu.Unlock()
	if wasDegraded {
		// The installed table was stricter than the truth: compare with
		// what the router saw.
		f.log.Info("route database reachable again; caught up", "version", next.Version)
		f.w.Install(next, routes.Diff(shown, next))
	} else if next != truth {
		f.w.Install(next, changes)
	}
	f.inst.Unlock()
	return f.ack(cctx, next.Version)
}

// ack records the applied number and the heartbeat. The row is recreated
// when an operator removed it.
func (f *Follower) ack(ctx context.Context, v int64) error {
	tag, err := f.st.pool.Exec(ctx, `UPDATE mailmig_proxies SET heartbeat = now(), applied = $2,
		applied_at = CASE WHEN applied = $2 THEN applied_at ELSE now() END WHERE id = $1`, f.id, v)
	if err == nil && tag.RowsAffected() == 0 {
		f.mu.Lock()
		acking := f.acking
		f.mu.Unlock()
		_, err = f.st.pool.Exec(ctx, `INSERT INTO mailmig_proxies (id, address, started, heartbeat, lease_ms, applied, applied_at, acks_freezes)
			VALUES ($1, $2, now(), now(), $3, $4, now(), $5) ON CONFLICT (id) DO NOTHING`, f.id, f.address(), f.lease.Milliseconds(), v, acking)
	}
	if err != nil {
		return fmt.Errorf("acknowledge route change %d: %w", v, err)
	}
	f.mu.Lock()
	f.applied = v
	f.mu.Unlock()
	return nil
}

func (f *Follower) address() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr
}

// checkLease installs the degraded table once the database has been out of
// reach for longer than the lease: from then on a barrier may have gone
// ahead without this proxy.
func (f *Follower) checkLease() {
	f.inst.Lock()
	defer f.inst.Unlock()
	f.mu.Lock()
	if f.degraded || f.now().Sub(f.contact) <= f.lease {
		f.mu.Unlock()
		return
	}
	f.degraded = true
	truth, lost := f.truth, f.contact
	pending := make([]string, 0, len(f.pending))
	for a := range f.pending {
		pending = append(pending, a)
	}
	f.mu.Unlock()
	strict, n := Strict(truth, lost.Add(-f.lease), pending)
	f.log.Warn("route database out of reach for longer than the lease: accounts frozen, in transition or pending refused until it is back",
		"lease", f.lease, "accounts", n, "pending", len(pending))
	f.w.Install(strict, routes.Diff(truth, strict))
}

// InTransition returns t with every account that is frozen or whose route
// changed after since marked frozen, and how many accounts that covers.
func InTransition(t *routes.Table, since time.Time) (*routes.Table, int) {
	return Strict(t, since, nil)
}

// Strict is the table of a proxy that lost the database for longer than
// its lease: t with every account frozen that is frozen, whose route
// changed after since (in transition), or that is pending (its cut-over
// may have begun since), and how many accounts that covers. A pending
// account without a route of its own, served by the default backend,
// gets a frozen route there.
func Strict(t *routes.Table, since time.Time, pending []string) (*routes.Table, int) {
	d := routes.Delta{Routes: map[string]*routes.Route{}}
	n := 0
	for _, r := range t.Routes() {
		if r.State == routes.Frozen {
			n++
			continue
		}
		if r.Updated.After(since) {
			r.State = routes.Frozen
			d.Routes[r.Account] = &r
			n++
		}
	}
	for _, a := range pending {
		if _, ok := d.Routes[a]; ok {
			continue
		}
		r, ok := t.Account(a)
		switch {
		case ok && r.State == routes.Frozen:
			continue // counted above
		case !ok && t.Default == "":
			continue // refused anyway: no route, no default
		case !ok:
			r = routes.Route{Account: a, Backend: t.Default}
		}
		r.State = routes.Frozen
		d.Routes[a] = &r
		n++
	}
	strict, _ := t.Apply(t.Version, d)
	return strict, n
}

// DefaultID is the default proxy id: host name and process id.
func DefaultID() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "proxy"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
