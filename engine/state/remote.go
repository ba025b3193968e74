package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// RecordStore is the storage of a remote state (engine/state/pgstate keeps
// it in PostgreSQL): the journal's lines by seq, one snapshot and the apply
// lock. It stores bytes; the Journal and Remote do the chaining, folding
// and checking, with the same code as for the state directory.
type RecordStore interface {
	// Lines calls fn with every record after seq after, in seq order,
	// until fn returns an error (which Lines returns).
	Lines(ctx context.Context, after uint64, fn func(seq uint64, line []byte) error) error
	// Line returns the line of record seq, nil when there is none.
	Line(ctx context.Context, seq uint64) ([]byte, error)
	// Append stores line as record seq. When seq is already stored it
	// returns an error wrapping ErrConflict, unless the stored line is
	// line (a retried append whose first try had committed).
	Append(ctx context.Context, seq uint64, line []byte) error
	// Snapshot returns the stored snapshot, nil when there is none.
	Snapshot(ctx context.Context) ([]byte, error)
	// PutSnapshot replaces the snapshot, which covers records 1..serial.
	PutSnapshot(ctx context.Context, serial uint64, data []byte) error
	// Lock takes the apply lock described by info; taken names a lock
	// whose holder is gone and that was taken over.
	Lock(ctx context.Context, info LockInfo) (l Unlocker, taken *LockInfo, err error)
	// LockShared takes the apply lock in shared mode (info.Shared is
	// set): together with other shared holders, never with an exclusive
	// one. taken names a dead holder that was cleaned up.
	LockShared(ctx context.Context, info LockInfo) (l Unlocker, taken *LockInfo, err error)
	// ReadLock returns the current lock (with LiveSession set), nil when
	// unlocked; with shared holders, the first of ReadLocks.
	ReadLock(ctx context.Context) (*LockInfo, error)
	// ReadLocks returns every holder (with LiveSession set), the
	// exclusive one first, then shared ones by creation.
	ReadLocks(ctx context.Context) ([]LockInfo, error)
	// ForceUnlock removes the lock (or the shared holder) with this id,
	// ending its holder's session.
	ForceUnlock(ctx context.Context, id string) (*LockInfo, error)
	// Where names the store for messages, never with a password.
	Where() string
	// Close releases the store's connections.
	Close() error
}

// ErrConflict means another process appended a record with the same seq:
// this journal is no longer at the head of the chain and must be opened
// again.
var ErrConflict = errors.New("another process wrote the journal")

// RemoteTimeout bounds one call of a RecordStore made by a Journal method
// that has no context (Append, WriteSnapshot).
const RemoteTimeout = 30 * time.Second

// Remote is a Backend over a RecordStore.
type Remote struct {
	Store RecordStore
}

var _ Backend = Remote{}

// OpenJournal opens the journal kept in the store and folds it, starting
// from the stored snapshot when it still matches the record it names. The
// journal uses the store and does not close it.
func (r Remote) OpenJournal(ctx context.Context, opts *Options) (*Journal, error) {
	j := &Journal{dir: r.Store.Where(), state: &State{}, remote: r.Store}
	if opts != nil {
		j.opts = *opts
	}
	if j.opts.Now == nil {
		j.opts.Now = time.Now
	}
	if j.opts.Logger == nil {
		j.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := j.loadRemote(ctx); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *Journal) loadRemote(ctx context.Context) error {
	rs := j.remote
	if b, err := rs.Snapshot(ctx); err != nil {
		return fmt.Errorf("read the journal snapshot from %s: %w", rs.Where(), err)
	} else if b != nil {
		snap, err := decodeSnapshot(b)
		if err == nil && snap.State.Serial > 0 {
			var line []byte
			if line, err = rs.Line(ctx, snap.State.Serial); err == nil && line != nil && hashLine(line) == snap.Head {
				j.state = snap.State
				if j.state.Accounts == nil {
					j.state.Accounts = map[string]*Account{}
				}
				j.seq, j.head, j.snapSerial = snap.State.Serial, snap.Head, snap.State.Serial
			} else if err == nil {
				err = errors.New("the record it names is missing or different")
			}
		}
		if err != nil {
			j.opts.Logger.Warn("journal snapshot does not match the journal; folding it again", "err", err)
		}
	}
	if err := j.foldRemote(ctx); err != nil {
		return fmt.Errorf("read the journal from %s: %w", rs.Where(), err)
	}
	return nil
}

// foldRemote folds the stored records after j.seq, checking that each
// follows the last folded one (seq and the hash it carries); called with
// j.mu held (or before the journal is shared).
func (j *Journal) foldRemote(ctx context.Context) error {
	return j.remote.Lines(ctx, j.seq, func(seq uint64, line []byte) error {
		rec, err := parseRecord(line)
		switch {
		case err != nil:
			return fmt.Errorf("journal record %d is unreadable (run \"mailmig journal verify\"): %w", seq, err)
		case seq != j.seq+1 || rec.Seq != seq:
			return fmt.Errorf("journal record after seq %d has seq %d (run \"mailmig journal verify\")", j.seq, rec.Seq)
		case rec.Prev != j.head:
			return fmt.Errorf("journal record %d does not carry the hash of record %d: the journal was modified (run \"mailmig journal verify\")", rec.Seq, j.seq)
		}
		j.state.Apply(&rec)
		j.seq, j.head = seq, hashLine(line)
		return nil
	})
}

// refreshRemote is Refresh for an append that lost a race; with j.mu held.
func (j *Journal) refreshRemote() error {
	ctx, cancel := context.WithTimeout(context.Background(), RemoteTimeout)
	defer cancel()
	if err := j.foldRemote(ctx); err != nil {
		return fmt.Errorf("read the records other workers appended to %s: %w", j.remote.Where(), err)
	}
	return nil
}

// appendRemote stores one encoded record (without newline) and folds it.
func (j *Journal) appendRemote(r Record, line []byte, head string) (Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RemoteTimeout)
	defer cancel()
	if err := j.remote.Append(ctx, r.Seq, line); err != nil {
		return r, fmt.Errorf("write journal record %d to %s: %w", r.Seq, j.remote.Where(), err)
	}
	j.seq, j.head = r.Seq, head
	j.state.Apply(&r)
	return r, nil
}

// writeSnapshotRemote stores the fold; called with j.mu held.
func (j *Journal) writeSnapshotRemote() error {
	if j.seq == 0 || j.seq == j.snapSerial {
		return nil
	}
	b, err := json.Marshal(&snapshot{Version: snapshotVersion, Head: j.head, State: j.state})
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), RemoteTimeout)
	defer cancel()
	if err := j.remote.PutSnapshot(ctx, j.seq, b); err != nil {
		return fmt.Errorf("write the snapshot to %s: %w", j.remote.Where(), err)
	}
	j.snapSerial = j.seq
	return nil
}

// CloseWith makes Close close c as well (after the journal), for a
// journal that is the only user of its Backend.
func (j *Journal) CloseWith(c io.Closer) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closers = append(j.closers, c)
}

// ReadRecords reads every record from the store.
func (r Remote) ReadRecords(ctx context.Context, fn func(*Record) bool) error {
	errStop := errors.New("stop")
	err := r.Store.Lines(ctx, 0, func(seq uint64, line []byte) error {
		rec, err := parseRecord(line)
		if err != nil {
			return fmt.Errorf("journal record %d: %w", seq, err)
		}
		if !fn(&rec) {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return fmt.Errorf("read the journal from %s: %w", r.Store.Where(), err)
	}
	return nil
}

// Verify checks the chain of the stored records, and its end against the
// stored snapshot, with the same rules as Verify.
func (r Remote) Verify(ctx context.Context) (*VerifyResult, error) {
	res := &VerifyResult{}
	c := chainCheck{res: res}
	errBroken := errors.New("broken")
	err := r.Store.Lines(ctx, 0, func(seq uint64, line []byte) error {
		if !c.add(line) {
			return errBroken
		}
		return nil
	})
	if errors.Is(err, errBroken) {
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the journal from %s: %w", r.Store.Where(), err)
	}
	b, err := r.Store.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the journal snapshot from %s: %w", r.Store.Where(), err)
	}
	if snap, derr := decodeSnapshot(b); b != nil && derr == nil {
		c.finish(snap.State.Serial, snap.Head, true)
	} else {
		c.finish(0, "", false)
	}
	return res, nil
}

// Lock takes the store's apply lock.
func (r Remote) Lock(ctx context.Context, owner, operation string) (Unlocker, *LockInfo, error) {
	host, _ := os.Hostname()
	info := LockInfo{ID: NewLineage(), Owner: owner, Operation: operation, Created: time.Now().UTC(), Host: host, PID: os.Getpid()}
	return r.Store.Lock(ctx, info)
}

// LockShared takes the store's apply lock in shared mode for the apply
// worker named worker.
func (r Remote) LockShared(ctx context.Context, owner, worker string) (Unlocker, *LockInfo, error) {
	host, _ := os.Hostname()
	info := LockInfo{ID: NewLineage(), Owner: owner, Operation: "apply -worker " + worker, Created: time.Now().UTC(),
		Host: host, PID: os.Getpid(), Shared: true, Worker: worker}
	return r.Store.LockShared(ctx, info)
}

// ReadLock reads the store's lock.
func (r Remote) ReadLock(ctx context.Context) (*LockInfo, error) { return r.Store.ReadLock(ctx) }

// ReadLocks reads every holder of the store's lock.
func (r Remote) ReadLocks(ctx context.Context) ([]LockInfo, error) { return r.Store.ReadLocks(ctx) }

// ForceUnlock removes the store's lock.
func (r Remote) ForceUnlock(ctx context.Context, id string) (*LockInfo, error) {
	return r.Store.ForceUnlock(ctx, id)
}

// Where names the store.
func (r Remote) Where() string { return r.Store.Where() }

// Close closes the store.
func (r Remote) Close() error { return r.Store.Close() }
