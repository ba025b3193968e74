package routes

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPollInterval is how often a Watcher polls the change counter.
const DefaultPollInterval = 250 * time.Millisecond

// Source is what a Watcher reads: a Store, or anything else that can give a
// change counter and a snapshot (tests use a fake).
type Source interface {
	// Version returns a counter that changes whenever the table changes.
	Version(ctx context.Context) (int64, error)
	// Snapshot returns the whole table.
	Snapshot(ctx context.Context) (*Table, error)
}

var _ Source = (*Store)(nil)

// WatchOptions configure a Watcher. A nil *WatchOptions means defaults.
type WatchOptions struct {
	// Interval between polls of the change counter. Default: 250ms.
	Interval time.Duration
	// Logger receives poll errors. Default: discard.
	Logger *slog.Logger
}

// Watcher keeps an up-to-date Table in memory and tells subscribers about
// changed routes. Its methods are safe for concurrent use.
type Watcher struct {
	src      Source
	interval time.Duration
	log      *slog.Logger

	table atomic.Pointer[Table]

	mu     sync.Mutex
	subs   map[int]func(Change)
	nextID int
	reload sync.Mutex // one reload at a time
}

// NewWatcher loads the table once and returns a Watcher; call Run to keep
// it current.
func NewWatcher(ctx context.Context, src Source, opts *WatchOptions) (*Watcher, error) {
	w := &Watcher{src: src, interval: DefaultPollInterval, log: slog.New(slog.DiscardHandler), subs: map[int]func(Change){}}
	if opts != nil {
		if opts.Interval > 0 {
			w.interval = opts.Interval
		}
		if opts.Logger != nil {
			w.log = opts.Logger
		}
	}
	t, err := src.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	w.table.Store(t)
	return w, nil
}

// NewFollower returns a Watcher over the table t that has no Source: the
// caller follows the store itself (PostgreSQL's notifications) and hands
// every new table to Install. Run and Refresh do nothing on it.
func NewFollower(t *Table, opts *WatchOptions) *Watcher {
	w := &Watcher{interval: DefaultPollInterval, log: slog.New(slog.DiscardHandler), subs: map[int]func(Change){}}
	if opts != nil && opts.Logger != nil {
		w.log = opts.Logger
	}
	w.table.Store(t)
	return w
}

// Install makes t the current table and tells subscribers about changes,
// which the caller computed (Table.Apply, or Diff against Table()). Calls
// must not overlap.
func (w *Watcher) Install(t *Table, changes []Change) {
	w.reload.Lock()
	defer w.reload.Unlock()
	w.table.Store(t)
	w.notify(changes)
}

// Table returns the current snapshot. It never returns nil.
func (w *Watcher) Table() *Table { return w.table.Load() }

// Subscribe registers fn for every changed route. fn runs on the Watcher's
// goroutine and must not block. The returned function unsubscribes.
func (w *Watcher) Subscribe(fn func(Change)) (cancel func()) {
	w.mu.Lock()
	id := w.nextID
	w.nextID++
	w.subs[id] = fn
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
	}
}

// Refresh polls once: when the change counter moved, it reloads the table
// and notifies subscribers.
func (w *Watcher) Refresh(ctx context.Context) error {
	if w.src == nil {
		return nil
	}
	w.reload.Lock()
	defer w.reload.Unlock()
	v, err := w.src.Version(ctx)
	if err != nil {
		return err
	}
	old := w.table.Load()
	if v == old.Version {
		return nil
	}
	t, err := w.src.Snapshot(ctx)
	if err != nil {
		return err
	}
	w.table.Store(t)
	w.notify(Diff(old, t))
	return nil
}

// notify logs the changes and calls every subscriber for each.
func (w *Watcher) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	w.mu.Lock()
	fns := make([]func(Change), 0, len(w.subs))
	for _, fn := range w.subs {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, c := range changes {
		switch {
		case c.Default:
			w.log.Info("default backend changed", "backend", c.New.Backend)
		case c.Alias != "":
			w.log.Info("alias changed", "alias", c.Alias, "user", c.New.Account, "backend", c.New.Backend)
		default:
			w.log.Info("route changed", "user", c.Account, "backend", c.New.Backend, "state", string(c.New.State), "generation", c.New.Generation)
		}
		for _, fn := range fns {
			fn(c)
		}
	}
}

// Run polls until ctx ends and then returns ctx.Err(). Poll errors are
// logged and retried at the next tick; the last good table stays in use.
func (w *Watcher) Run(ctx context.Context) error {
	if w.src == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := w.Refresh(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("route table poll", "err", err)
			}
		}
	}
}

// DB is a route table that can be read and edited: the SQLite Store, or
// the PostgreSQL store of a fleet of proxies (package pgroutes). Its
// methods are safe for concurrent use.
type DB interface {
	Source
	// Where names the table for messages (a file, or a database without
	// its password).
	Where() string
	Get(ctx context.Context, account string) (Route, error)
	List(ctx context.Context) ([]Route, error)
	Update(ctx context.Context, account string, fn func(r *Route, ok bool) error) (Route, error)
	Set(ctx context.Context, account, backend string) (Route, error)
	Freeze(ctx context.Context, account string) (Route, error)
	Unfreeze(ctx context.Context, account string) (Route, error)
	Delete(ctx context.Context, account string) error
	AddAlias(ctx context.Context, identifier, account string) error
	RemoveAlias(ctx context.Context, identifier string) error
	SetDefault(ctx context.Context, backend string) error
	AddDomains(ctx context.Context, domains ...string) error
	RemoveDomain(ctx context.Context, domain string) error
	ImportMapping(ctx context.Context, ms []Mapping) (int, error)
	ExportMapping(ctx context.Context) ([]Mapping, error)
	Close() error
}

var _ DB = (*Store)(nil)
