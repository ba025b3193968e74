package archive

import (
	"context"
	"database/sql"
)

// ptx is a write transaction that prepares each distinct statement once:
// an import run issues the same few statements thousands of times per
// batch, and parsing them each time costs more than executing them.
type ptx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
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
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (p *ptx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := p.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext returns a row; a prepare error surfaces from Scan.
func (p *ptx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
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

func (p *ptx) Commit() error {
	p.close()
	return p.tx.Commit()
}

func (p *ptx) Rollback() error {
	p.close()
	return p.tx.Rollback()
}
