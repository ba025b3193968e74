package main

import (
	"context"
	"errors"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/engine/state/pgstate"
)

// errWorkerReplaced: another process registered under this worker's name.
var errWorkerReplaced = pgstate.ErrWorkerReplaced

// pgWorkers adapts pgstate.Workers to the worker loop.
type pgWorkers struct {
	st *pgstate.Store
	w  *pgstate.Workers
}

// openPGWorkers returns the registry of worker name in the state database
// that b (opened by openState) reaches.
func openPGWorkers(_ context.Context, b state.Backend, name string, lease time.Duration) (workerRegistry, error) {
	r, ok := b.(state.Remote)
	if !ok {
		return nil, errors.New("apply workers need the state in PostgreSQL")
	}
	ref, ok := r.Store.(*pgRef)
	if !ok {
		return nil, errors.New("apply workers need the state in PostgreSQL")
	}
	return &pgWorkers{st: ref.Store, w: ref.Store.Workers(name, lease)}, nil
}

func (p *pgWorkers) Register(ctx context.Context) error { return p.w.Register(ctx) }

func (p *pgWorkers) Heartbeat(ctx context.Context) ([]string, error) { return p.w.Heartbeat(ctx) }

func (p *pgWorkers) Claim(ctx context.Context, accounts []string, max int) (claimed, held []workerClaim, err error) {
	c, h, err := p.w.Claim(ctx, accounts, max)
	return convClaims(c), convClaims(h), err
}

func convClaims(cs []pgstate.Claim) []workerClaim {
	out := make([]workerClaim, len(cs))
	for i, c := range cs {
		out[i] = workerClaim{Account: c.Account, Worker: c.Worker, ArchiveWorker: c.ArchiveWorker, Takeover: c.Takeover, PrevWorker: c.PrevWorker}
	}
	return out
}

func (p *pgWorkers) Release(ctx context.Context, account, outcome string) error {
	return p.w.Release(ctx, account, outcome)
}

func (p *pgWorkers) SetArchive(ctx context.Context, account string) error {
	return p.w.SetArchive(ctx, account)
}

func (p *pgWorkers) Deregister(ctx context.Context) error { return p.w.Deregister(ctx) }

func (p *pgWorkers) Stopped(ctx context.Context) (map[string]bool, error) {
	ws, err := p.st.ListWorkers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, w := range ws {
		if w.Stopped {
			out[w.ID] = true
		}
	}
	return out, nil
}
