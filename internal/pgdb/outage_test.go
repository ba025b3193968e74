package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestUnreachable: what counts as an outage to wait through, and what
// does not (the server refused the statement or the login).
func TestUnreachable(t *testing.T) {
	pg := func(sev, code string) error { return &pgconn.PgError{Severity: sev, Code: code, Message: "m"} }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"session ended by the server", pg("FATAL", "57P01"), true},
		{"server starting up", pg("FATAL", "57P03"), true},
		{"connection exception", pg("FATAL", "08006"), true},
		{"database not accepting connections", fmt.Errorf("connect: %w", pg("FATAL", "55000")), true},
		{"too many connections", pg("FATAL", "53300"), true},
		{"lock not available (a statement error of class 55)", pg("ERROR", "55P03"), false},
		{"wrong password", pg("FATAL", "28P01"), false},
		{"no such database", pg("FATAL", "3D000"), false},
		{"unique violation", pg("ERROR", "23505"), false},
		{"conn closed", fmt.Errorf("exec: %w", pgconn.ErrConnClosed), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"connection refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"cancelled", context.Canceled, false},
		{"deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), false},
		{"a plain error", errors.New("no backend for x"), false},
	} {
		if got := Unreachable(tc.err); got != tc.want {
			t.Errorf("%s: Unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestRetry: an outage is retried until it ends, or until the wait runs
// out; other errors and a zero wait are returned at once.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	down := fmt.Errorf("exec: %w", pgconn.ErrConnClosed)
	calls, told := 0, 0
	err := Retry(ctx, time.Minute, func(context.Context) error {
		calls++
		if calls < 3 {
			return down
		}
		return nil
	}, func(error) { told++ })
	if err != nil || calls != 3 || told != 1 {
		t.Fatalf("retry through a short outage: %v after %d calls, told %d times", err, calls, told)
	}
	calls = 0
	refused := errors.New("refused")
	if err := Retry(ctx, time.Minute, func(context.Context) error { calls++; return refused }, nil); err != refused || calls != 1 {
		t.Fatalf("a statement error: %v after %d calls", err, calls)
	}
	calls = 0
	if err := Retry(ctx, 0, func(context.Context) error { calls++; return down }, nil); err != down || calls != 1 {
		t.Fatalf("no wait: %v after %d calls", err, calls)
	}
	err = Retry(ctx, 300*time.Millisecond, func(context.Context) error { return down }, nil)
	if !errors.Is(err, ErrOutageTooLong) || !errors.Is(err, pgconn.ErrConnClosed) {
		t.Fatalf("an outage longer than the wait: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Retry(cctx, time.Minute, func(context.Context) error { return down }, nil); err == nil {
		t.Fatal("retry under a cancelled context succeeded")
	}
}
