package pgdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err means that the database could not be
// reached or that the session ended under the statement (the server
// stopped or restarted, the network failed, the database stopped taking
// connections): an outage, worth waiting through. A statement the server
// refused, a wrong password, a missing database and a cancelled context
// are not outages.
func Unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch {
		case len(pe.Code) == 5 && pe.Code[:2] == "08": // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutdown, crash, starting up
			return true
		case pe.Code == "55000" && pe.Severity == "FATAL": // database not accepting connections
			return true
		case pe.Code == "53300": // too many connections
			return true
		}
		return false
	}
	if errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		// Not a PgError (those are judged above): the dial failed.
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// Backoff bounds the pause between two tries of Retry.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// ErrOutageTooLong wraps the last error of a Retry that gave up: the
// database stayed out of reach for longer than the wait.
var ErrOutageTooLong = errors.New("PostgreSQL stayed out of reach for longer than the outage wait")

// Retry runs fn until it succeeds, fails with an error that is not an
// outage (Unreachable), or the database has been out of reach for longer
// than wait since fn first failed; it pauses between tries with a backoff
// (100 ms doubling up to 2 s). onOutage, when not nil, is called once
// with the first outage error (to tell the operator what is waited for).
// A wait of 0 runs fn once. Only idempotent work may be retried: a
// statement whose session ended at its commit may have committed.
func Retry(ctx context.Context, wait time.Duration, fn func(context.Context) error, onOutage func(error)) error {
	err := fn(ctx)
	if err == nil || wait <= 0 || !Unreachable(err) {
		return err
	}
	if onOutage != nil {
		onOutage(err)
	}
	deadline := time.Now().Add(wait)
	pause := firstBackoff
	for {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%s): %w", ErrOutageTooLong, wait, err)
		}
		if serr := Sleep(ctx, min(pause, time.Until(deadline)+time.Millisecond)); serr != nil {
			return err
		}
		pause = min(2*pause, maxBackoff)
		if err = fn(ctx); err == nil || !Unreachable(err) {
			return err
		}
	}
}

// NextPause returns the backoff pause after pause (0: the first).
func NextPause(pause time.Duration) time.Duration {
	if pause <= 0 {
		return firstBackoff
	}
	return min(2*pause, maxBackoff)
}

// Sleep pauses for d or until ctx ends (then it returns ctx's error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
