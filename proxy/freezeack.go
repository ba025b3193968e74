package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/mailmig/mailmig/proxy/routes"
)

// AckStore is where a proxy registers itself and acknowledges freezes
// (*routes.Store; a fleet store implements the same four calls). Its
// methods must be safe for concurrent use.
type AckStore interface {
	// RegisterProxy records the proxy as live; Heartbeat renews it;
	// UnregisterProxy removes it at a clean stop.
	RegisterProxy(ctx context.Context, id, addr string) error
	Heartbeat(ctx context.Context, id string) error
	UnregisterProxy(ctx context.Context, id string) error
	// AckFreeze records that the proxy has no session and no delivery of
	// the account left since the route was frozen at generation.
	AckFreeze(ctx context.Context, proxy, account string, generation int64) error
}

var _ AckStore = (*routes.Store)(nil)

// FreezeAcker acknowledges freezes on behalf of one proxy: for every route
// it sees frozen (at start, and on every change) it waits until the
// router says the account is quiet — every session of it ended, no
// SMTP/LMTP delivery of it in flight (TableRouter.WaitQuiet) — and then
// writes the acknowledgement. The cut-over starts its final sync once
// every live proxy acknowledged (routes.Store.AwaitFreeze), instead of
// after a fixed delay. It also keeps the proxy's registration alive.
type FreezeAcker struct {
	router *TableRouter
	w      *routes.Watcher
	st     AckStore
	id     string
	addr   string
	log    *slog.Logger

	mu      sync.Mutex
	waiting map[string]int64 // account → generation being waited for
	ctx     context.Context
	wg      sync.WaitGroup
}

// NewProxyID returns an ID for this process: host, pid and a random part
// (a restarted proxy is a new one).
func NewProxyID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// NewFreezeAcker returns an acker for router (which reads w); addr
// describes the proxy for operators. log may be nil.
func NewFreezeAcker(router *TableRouter, w *routes.Watcher, st AckStore, id, addr string, log *slog.Logger) *FreezeAcker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &FreezeAcker{router: router, w: w, st: st, id: id, addr: addr, log: log, waiting: map[string]int64{}}
}

// ID returns the proxy's ID.
func (a *FreezeAcker) ID() string { return a.id }

// Start registers the proxy and starts following freezes until ctx ends;
// the returned stop waits for that and unregisters the proxy (a clean
// stop: the engine stops waiting for it at once rather than after its
// lease).
func (a *FreezeAcker) Start(ctx context.Context) (stop func(), err error) {
	if err := a.st.RegisterProxy(ctx, a.id, a.addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
	unsub := a.w.Subscribe(func(c routes.Change) {
		if !c.Default && c.Alias == "" && c.New.State == routes.Frozen {
			a.follow(c.New)
		}
	})
	// Freezes that were on before this proxy started need its
	// acknowledgement too.
	for _, r := range a.w.Table().Routes() {
		if r.State == routes.Frozen {
			a.follow(r)
		}
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(routes.HeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := a.st.Heartbeat(ctx, a.id); err != nil && ctx.Err() == nil {
					a.log.Warn("proxy heartbeat", "err", err)
				}
			}
		}
	}()
	return func() {
		unsub()
		cancel()
		a.wg.Wait()
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		if err := a.st.UnregisterProxy(uctx, a.id); err != nil {
			a.log.Warn("unregister proxy", "err", err)
		}
	}, nil
}

// follow starts waiting for a frozen route to become quiet, once per
// generation.
func (a *FreezeAcker) follow(r routes.Route) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ctx == nil || a.ctx.Err() != nil {
		return
	}
	if g, ok := a.waiting[r.Account]; ok && g >= r.Generation {
		return
	}
	a.waiting[r.Account] = r.Generation
	a.wg.Add(1)
	go a.ack(a.ctx, r.Account, r.Generation)
}

// ack waits for the account to be quiet and writes the acknowledgement,
// retrying a failed write.
func (a *FreezeAcker) ack(ctx context.Context, account string, gen int64) {
	defer a.wg.Done()
	defer func() {
		a.mu.Lock()
		if a.waiting[account] == gen {
			delete(a.waiting, account)
		}
		a.mu.Unlock()
	}()
	start := time.Now()
	if err := a.router.WaitQuiet(ctx, account, gen); err != nil {
		if !errors.Is(err, ErrSuperseded) && ctx.Err() == nil {
			a.log.Warn("freeze acknowledgement", "user", account, "err", err)
		}
		return
	}
	// A store out of reach (a fleet's database during an outage) is
	// retried with a growing pause, and no longer once the route has left
	// this generation: the next one is acknowledged on its own.
	pause := 100 * time.Millisecond
	for {
		err := a.st.AckFreeze(ctx, a.id, account, gen)
		if err == nil {
			a.log.Info("freeze acknowledged", "user", account, "generation", gen, "quiet_after", time.Since(start))
			return
		}
		if r, ok := a.w.Table().Account(account); !ok || r.State != routes.Frozen || r.Generation != gen {
			return
		}
		a.log.Warn("freeze acknowledgement", "user", account, "err", err, "retry_in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}
