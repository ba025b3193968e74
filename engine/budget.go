package engine

import (
	"context"
	"fmt"
	"time"
)

// Budget shares the backends' limits (limits { connections,
// messages_per_second, bytes_per_second }) with every other apply process
// using the same state, so that together they keep to them: without a
// Budget each process keeps to them on its own (the default, right for
// one machine). cmd/mailmig uses the PostgreSQL state's
// (pgstate.Budget) when the state lives there.
type Budget interface {
	// Acquire blocks until one connection slot of every backend is held
	// for the caller (all of them at once, never some while waiting for
	// the others), or ctx ends. release gives them back. Backends the
	// Budget does not know are not limited.
	Acquire(ctx context.Context, backends []string) (release func(), err error)
	// Take takes up to want tokens of a backend's shared bucket of kind
	// RateMessages or RateBytes; with got 0, retry says when to try
	// again. A backend or kind without a rate gives want at once.
	Take(ctx context.Context, backend string, kind RateKind, want int64) (got int64, retry time.Duration, err error)
}

// RateKind names one of a backend's rates.
type RateKind string

// The rates of a backend's limits block.
const (
	RateMessages RateKind = "messages"
	RateBytes    RateKind = "bytes"
)

// ShareLimiters makes each limiter's message and byte buckets draw from
// b's shared buckets (vandelay.Throttle.Share), so that executors' waits
// and the sources' own throttles keep to the budget across processes. A
// nil b changes nothing.
func ShareLimiters(ls map[string]*Limiter, b Budget) {
	if b == nil {
		return
	}
	for name, l := range ls {
		take := func(kind RateKind) func(context.Context, int64) (int64, time.Duration, error) {
			return func(ctx context.Context, want int64) (int64, time.Duration, error) {
				return b.Take(ctx, name, kind, want)
			}
		}
		l.Throttle().Share(take(RateMessages), take(RateBytes))
	}
}

// acquireBudget takes the change's shared connection slots, on the
// change's own goroutine (never under the applier's mutex: the wait can
// be long). skip is set when the run was stopped while waiting; err when
// the Budget failed.
func (a *applier) acquireBudget(n *node) (release func(), skip string, err error) {
	if a.env.Budget == nil || len(n.backends) == 0 {
		return func() {}, "", nil
	}
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	stopWait := context.AfterFunc(a.env.Stop, cancel)
	defer stopWait()
	release, err = a.env.Budget.Acquire(ctx, n.backends)
	if err != nil {
		if a.env.Stop.Err() != nil || a.ctx.Err() != nil {
			return nil, "the run was stopped before it started", nil
		}
		return nil, "", fmt.Errorf("take a connection slot of %v shared with the other apply processes: %w", n.backends, err)
	}
	return release, "", nil
}
