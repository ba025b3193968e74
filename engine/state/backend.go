package state

import (
	"context"
	"errors"
)

// Backend is where a migration's state lives: the journal, its snapshot
// and the apply lock. Dir (the state directory) is the default; a Remote
// over a RecordStore (engine/state/pgstate: PostgreSQL) keeps the same
// records, with the same hash chain, outside the machine. Commands use a
// Backend and never care which one it is.
type Backend interface {
	// OpenJournal opens the journal and folds it (see Open).
	OpenJournal(ctx context.Context, opts *Options) (*Journal, error)
	// ReadRecords calls fn for every complete record, in order, until fn
	// returns false.
	ReadRecords(ctx context.Context, fn func(*Record) bool) error
	// Verify checks the hash chain (see Verify).
	Verify(ctx context.Context) (*VerifyResult, error)
	// Lock takes the apply lock for operation; taken reports a stale lock
	// that was taken over.
	Lock(ctx context.Context, owner, operation string) (l Unlocker, taken *LockInfo, err error)
	// LockShared takes the apply lock in shared mode for the apply
	// worker named worker (operation "apply -worker NAME"): any number of
	// workers hold it together, never together with an exclusive holder
	// (Lock). taken reports a dead holder whose lock was cleaned up. Only
	// a Remote offers it: a state directory has no shared lock
	// (ErrSharedNeedsRemote).
	LockShared(ctx context.Context, owner, worker string) (l Unlocker, taken *LockInfo, err error)
	// ReadLock returns the current lock, or nil when unlocked. When
	// workers share it, it returns one of them (ReadLocks lists all).
	ReadLock(ctx context.Context) (*LockInfo, error)
	// ReadLocks returns every holder of the lock (live or dead), the
	// exclusive one first; none when unlocked.
	ReadLocks(ctx context.Context) ([]LockInfo, error)
	// ForceUnlock removes the lock whose id is id.
	ForceUnlock(ctx context.Context, id string) (*LockInfo, error)
	// Where names the state for messages, never with a password.
	Where() string
	// Close releases what the Backend holds (a journal opened from it
	// stays usable until its own Close).
	Close() error
}

// Unlocker is a held apply lock.
type Unlocker interface {
	Unlock() error
}

// Dir is the state directory as a Backend: journal.jsonl, snapshot.json
// and lock.json in it.
type Dir string

var _ Backend = Dir("")

// OpenJournal is Open on the directory.
func (d Dir) OpenJournal(_ context.Context, opts *Options) (*Journal, error) {
	return Open(string(d), opts)
}

// ReadRecords is ReadRecords on the directory.
func (d Dir) ReadRecords(_ context.Context, fn func(*Record) bool) error {
	return ReadRecords(string(d), fn)
}

// Verify is Verify on the directory.
func (d Dir) Verify(context.Context) (*VerifyResult, error) { return Verify(string(d)) }

// Lock is Acquire on the directory.
func (d Dir) Lock(_ context.Context, owner, operation string) (Unlocker, *LockInfo, error) {
	l, taken, err := Acquire(string(d), owner, operation)
	if err != nil {
		return nil, taken, err
	}
	return l, taken, nil
}

// ErrSharedNeedsRemote is returned by a state directory asked for what
// only a shared state offers: a shared lock or a shared journal (apply
// workers on several machines need the state in PostgreSQL).
var ErrSharedNeedsRemote = errors.New("apply workers need the state in PostgreSQL (state { postgres }): a state directory has one writer at a time")

// LockShared refuses: a state directory has no shared lock.
func (d Dir) LockShared(context.Context, string, string) (Unlocker, *LockInfo, error) {
	return nil, nil, ErrSharedNeedsRemote
}

// ReadLock is ReadLock on the directory.
func (d Dir) ReadLock(context.Context) (*LockInfo, error) { return ReadLock(string(d)) }

// ReadLocks is ReadLock on the directory, as a list.
func (d Dir) ReadLocks(context.Context) ([]LockInfo, error) {
	info, err := ReadLock(string(d))
	if info == nil || err != nil {
		return nil, err
	}
	return []LockInfo{*info}, nil
}

// ForceUnlock is ForceUnlock on the directory.
func (d Dir) ForceUnlock(_ context.Context, id string) (*LockInfo, error) {
	return ForceUnlock(string(d), id)
}

// Where returns the directory.
func (d Dir) Where() string { return string(d) }

// Close does nothing: a directory holds nothing open.
func (d Dir) Close() error { return nil }
