package pgstate

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mailmig/mailmig/engine/state"
)

// ErrNotEmpty means the database already holds a journal: a copy would
// mix two migrations' histories.
var ErrNotEmpty = errors.New("the database already holds a journal")

// Import copies lines into an empty journal table in one transaction
// (COPY), so a copy that fails leaves the table empty. It returns the
// number of records copied.
func (s *Store) Import(ctx context.Context, lines state.Lines) (uint64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after Commit
	// Nobody appends while the copy checks and fills the table.
	if _, err := tx.Exec(ctx, `LOCK TABLE mailmig_journal, mailmig_state_snapshot IN EXCLUSIVE MODE`); err != nil {
		return 0, err
	}
	var used bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mailmig_journal) OR EXISTS (SELECT 1 FROM mailmig_state_snapshot)`).Scan(&used); err != nil {
		return 0, err
	}
	if used {
		return 0, ErrNotEmpty
	}
	// COPY pulls rows; the lines are pushed: a goroutine feeds a channel.
	type row struct {
		seq  uint64
		line []byte
	}
	rows := make(chan row, 256)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(rows)
		readErr = lines(func(seq uint64, line []byte) error {
			select {
			case rows <- row{seq, append([]byte(nil), line...)}:
				return nil
			case <-stop:
				return errors.New("copy stopped")
			}
		})
	}()
	var n uint64
	src := pgx.CopyFromFunc(func() ([]any, error) {
		r, ok := <-rows
		if !ok {
			return nil, nil // the end
		}
		if r.seq != n+1 {
			return nil, fmt.Errorf("journal record %d follows record %d", r.seq, n)
		}
		n = r.seq
		return []any{int64(r.seq), string(r.line)}, nil
	})
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"mailmig_journal"}, []string{"seq", "line"}, src)
	close(stop)
	for range rows { // let the reader finish
	}
	if err != nil {
		return 0, fmt.Errorf("copy the journal: %w", err)
	}
	if readErr != nil {
		return 0, readErr
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// AllLines returns every record's line, for a copy out of the database.
func (s *Store) AllLines(ctx context.Context) state.Lines {
	return func(fn func(seq uint64, line []byte) error) error {
		return s.Lines(ctx, 0, fn)
	}
}
