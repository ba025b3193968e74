package archive

import (
	"context"
	"database/sql"
	"fmt"
)

// ptx is a write transaction that prepares each distinct statement once:
// an import run issues the same few statements thousands of times per
// batch, and parsing them each time costs more than executing them.
//
// Its statements run without ctx's cancellation (context.WithoutCancel):
// each is short, callers check ctx between them, and the transaction
// itself must outlive a first SIGINT (see Run). With a cancellable ctx
// the SQLite driver starts a goroutine per statement to watch it, and
// database/sql one per result set: about 30,000 goroutines for a
// 3,000-message import, visible in its trace as scheduling latency.
type ptx struct {
	a     *Archive
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// packed is set when the transaction recorded blobs in the pack:
	// Commit syncs the pack first.
	packed bool
}

// beginPtx starts a write transaction (not cancelled with ctx: see ptx).
func (a *Archive) beginPtx(ctx context.Context) (*ptx, error) {
	stx, err := a.db.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		return nil, fmt.Errorf("begin archive transaction: %w", err)
	}
	return &ptx{a: a, tx: stx, stmts: map[string]*sql.Stmt{}}, nil
}

func (p *ptx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := p.stmts[q]; ok {
		return s, nil
	}
	s, err := p.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	p.stmts[q] = s
	return s, nil
}

func (p *ptx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	ctx = context.WithoutCancel(ctx)
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (p *ptx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	ctx = context.WithoutCancel(ctx)
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext returns a row; a prepare error surfaces from Scan.
func (p *ptx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	ctx = context.WithoutCancel(ctx)
	s, err := p.stmt(ctx, q)
	if err != nil {
		return p.tx.QueryRowContext(ctx, q, args...) // reports the same error
	}
	return s.QueryRowContext(ctx, args...)
}

func (p *ptx) close() {
	for _, s := range p.stmts {
		s.Close()
	}
	p.stmts = nil
}

// Commit syncs the pack when the transaction recorded blobs in it, then
// commits: a committed row never points at bytes a crash could lose.
func (p *ptx) Commit() error {
	p.close()
	if p.packed {
		if err := p.a.pack.sync(); err != nil {
			p.tx.Rollback()
			return err
		}
	}
	return p.tx.Commit()
}

func (p *ptx) Rollback() error {
	p.close()
	return p.tx.Rollback()
}
