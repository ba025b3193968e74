package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// LockInfo describes who holds the state lock.
type LockInfo struct {
	// ID identifies the lock for ForceUnlock.
	ID string `json:"id"`
	// Owner is user@host.
	Owner string `json:"owner"`
	// Operation is the command holding it, e.g. "apply".
	Operation string    `json:"operation"`
	Created   time.Time `json:"created"`
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	// LiveSession, set for a lock kept in PostgreSQL, says whether the
	// database session holding it still exists: a lock there is a
	// session's advisory lock, which ends with its connection, so the
	// database knows the holder's liveness on any host.
	LiveSession *bool `json:"live_session,omitempty"`
	// Shared says the lock is held in shared mode by an apply worker
	// (Backend.LockShared): any number of workers hold it together, never
	// together with an exclusive holder. Worker names the worker.
	Shared bool   `json:"shared,omitempty"`
	Worker string `json:"worker,omitempty"`
}

// ErrLocked is matched by errors.Is on a *LockError.
var ErrLocked = errors.New("state is locked")

// LockError reports the holder of a lock that could not be taken.
type LockError struct {
	Info LockInfo
	// Holders are every live holder when the lock is held in shared mode
	// by apply workers (Info is the first of them); nil otherwise.
	Holders []LockInfo
}

// Error describes the holder(s) and how to release the lock.
func (e *LockError) Error() string {
	if e.Info.Shared {
		hs := e.Holders
		if len(hs) == 0 {
			hs = []LockInfo{e.Info}
		}
		names := make([]string, len(hs))
		whos := make([]string, len(hs))
		for i, h := range hs {
			names[i] = h.Worker
			if names[i] == "" {
				names[i] = h.Operation
			}
			whos[i] = fmt.Sprintf("%s (%s, pid %d on %s, since %s, lock id %s)", names[i], h.Owner, h.PID, h.Host, h.Created.UTC().Format(time.RFC3339), h.ID)
		}
		verb := "apply workers %s hold the state: %s"
		if len(hs) == 1 {
			verb = "apply worker %s holds the state: %s"
		}
		return fmt.Sprintf(verb+"; wait for them to finish or stop them (a worker that is gone lost its lock with its database session; \"mailmig state lock\" lists every holder, \"mailmig state force-unlock ID\" ends one)",
			strings.Join(names, ", "), strings.Join(whos, "; "))
	}
	return fmt.Sprintf("state is locked by %s (%s since %s, lock id %s); if that run is gone, run \"mailmig state force-unlock %s\"",
		e.Info.Owner, e.Info.Operation, e.Info.Created.UTC().Format(time.RFC3339), e.Info.ID, e.Info.ID)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockError) Is(target error) bool { return target == ErrLocked }

// Lock is a held state lock.
type Lock struct {
	path string
	Info LockInfo
}

// Acquire takes the lock in dir for operation. A lock left by a process
// that no longer runs on this host is taken over; taken reports the
// previous holder in that case.
func Acquire(dir, owner, operation string) (l *Lock, taken *LockInfo, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("create state directory: %w", err)
	}
	host, _ := os.Hostname()
	info := LockInfo{ID: NewLineage(), Owner: owner, Operation: operation, Created: time.Now().UTC(), Host: host, PID: os.Getpid()}
	b, _ := json.MarshalIndent(info, "", "  ")
	path := filepath.Join(dir, LockFile)
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			_, werr := f.Write(append(b, '\n'))
			serr := f.Sync()
			cerr := f.Close()
			if err := errors.Join(werr, serr, cerr); err != nil {
				os.Remove(path)
				return nil, nil, fmt.Errorf("write lock: %w", err)
			}
			return &Lock{path: path, Info: info}, taken, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, nil, fmt.Errorf("create lock: %w", err)
		}
		cur, rerr := ReadLock(dir)
		if rerr != nil || cur == nil {
			// Unreadable lock (a crash while writing it) or vanished: retry
			// once after removing an unreadable one.
			if rerr != nil {
				return nil, nil, fmt.Errorf("read lock %s: %w (remove it if no apply is running)", path, rerr)
			}
			continue
		}
		if cur.Host == host && cur.PID > 0 && !processAlive(cur.PID) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, nil, fmt.Errorf("remove stale lock: %w", err)
			}
			c := *cur
			taken = &c
			continue
		}
		return nil, nil, &LockError{Info: *cur}
	}
	return nil, nil, fmt.Errorf("create lock %s: lost a race with another process", path)
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	cur, err := ReadLock(filepath.Dir(l.path))
	if err != nil {
		return err
	}
	if cur == nil || cur.ID != l.Info.ID {
		return fmt.Errorf("unlock: the lock is no longer ours (force-unlocked?)")
	}
	if err := os.Remove(l.path); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// ReadLock returns the current lock in dir, or nil when unlocked.
func ReadLock(dir string) (*LockInfo, error) {
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("decode lock: %w", err)
	}
	return &info, nil
}

// ErrNotLocked is returned by ForceUnlock when there is no lock.
var ErrNotLocked = errors.New("state is not locked")

// ForceUnlock removes the lock in dir if its id is id.
func ForceUnlock(dir, id string) (*LockInfo, error) {
	cur, err := ReadLock(dir)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, ErrNotLocked
	}
	if cur.ID != id {
		return cur, fmt.Errorf("lock id %q does not match the current lock %s held by %s", id, cur.ID, cur.Owner)
	}
	if err := os.Remove(filepath.Join(dir, LockFile)); err != nil {
		return cur, fmt.Errorf("remove lock: %w", err)
	}
	return cur, nil
}

// processAlive reports whether pid runs (signal 0 succeeds or is refused
// for permission, which also means it exists).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Liveness says whether the process holding a lock still runs.
type Liveness string

// Liveness values.
const (
	// LockAlive: the holder runs on this host (its pid answers).
	LockAlive Liveness = "alive"
	// LockDead: the holder ran on this host and is gone (a crash or a
	// kill); the next apply takes the lock over.
	LockDead Liveness = "dead"
	// LockElsewhere: the holder runs on another host; whether it is
	// alive cannot be checked from here.
	LockElsewhere Liveness = "elsewhere"
)

// Liveness checks the lock's holder: its host, then its pid.
func (i *LockInfo) Liveness() Liveness {
	if i.LiveSession != nil {
		if *i.LiveSession {
			return LockAlive
		}
		return LockDead
	}
	host, _ := os.Hostname()
	if i.Host != host {
		return LockElsewhere
	}
	if i.PID > 0 && processAlive(i.PID) {
		return LockAlive
	}
	return LockDead
}
