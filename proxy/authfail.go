package proxy

import (
	"context"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// FailClass is the class of a failed login. Every front maps each class to
// exactly one reply (its reply table), so the client's answer never
// depends on why the login failed within a class (STYLE.md's error
// classes, after mox imapserver/error.go).
//
// What decides the class is whether the user's credentials were verified
// somewhere: before that, anything that goes wrong is FailUser, so an
// attacker cannot tell an unknown account from a real one, nor learn
// which backend holds it or whether that backend is down. Only after a
// backend accepted the client's own credentials (the verification login
// of a master backend) may the client learn of an upstream problem.
type FailClass int

// Failure classes.
const (
	// FailUser: the login failed before the credentials were verified —
	// unknown account, wrong password or refused token, a route to a
	// backend that is not configured or has no endpoint for the protocol,
	// a backend that could not be reached or answered with an error (also
	// a temporary one). Answered with the protocol's one authentication
	// failure, after the failure delay, and counted by the failed-login
	// limit. Logged at Debug (the client's mistake) or Warn (an upstream
	// problem the operator should see).
	FailUser FailClass = iota + 1
	// FailTemporary: an upstream problem after the credentials were
	// verified (the master login that follows a master backend's
	// verification could not be made), or a refusal that is the same for
	// every account (the client's address is over the failed-login
	// limit). Answered with the protocol's temporary failure.
	FailTemporary
	// FailInternal: the backend refused the proxy's own master
	// credentials after it accepted the user's: a configuration error.
	// Answered with a generic text, logged at Error.
	FailInternal
)

// DefaultAuthFailureDelay is the default of Options.AuthFailureDelay: as
// Dovecot's auth_failure_delay.
const DefaultAuthFailureDelay = 2 * time.Second

// Bounds of the learned part of FailureDelay.
const (
	// maxLearnedDelay caps how long a backend's refusal may make every
	// failure wait: a backend that hangs is a backend error, not a slow
	// refusal.
	maxLearnedDelay = 10 * time.Second
	// learnWindow is how long a slow refusal is remembered.
	learnWindow = 10 * time.Minute
)

// FailureDelay makes every failed login take the same time, so that the
// time of the answer tells nothing either (Dovecot's auth_failure_delay,
// applied to unknown accounts too).
//
// A failure is answered no earlier than start+max(Min, learned), start
// being when the client's credentials were complete. learned is the
// longest time a backend took to refuse credentials in the last 10
// minutes (at most 10 s): Cyrus pauses 3 s before it refuses a password
// (failedloginpause), so a fixed delay alone would still answer an unknown
// account faster than a wrong password at Cyrus. A failure that already
// took longer (a slow backend) is answered at once. Its methods are safe
// for concurrent use; a nil *FailureDelay waits for nothing.
type FailureDelay struct {
	// Min is the least time a failure takes.
	Min time.Duration

	mu        sync.Mutex
	cur, prev time.Duration // longest refusal in this and the last window
	window    time.Time     // start of the current window
}

// NewFailureDelay returns a FailureDelay of at least min.
func NewFailureDelay(min time.Duration) *FailureDelay {
	return &FailureDelay{Min: min, window: time.Now()}
}

// rotate moves to a new window when the current one is over; d.mu held.
func (d *FailureDelay) rotate(now time.Time) {
	switch {
	case now.Sub(d.window) >= 2*learnWindow:
		d.cur, d.prev, d.window = 0, 0, now
	case now.Sub(d.window) >= learnWindow:
		d.prev, d.cur, d.window = d.cur, 0, d.window.Add(learnWindow)
	}
}

// Observe records that a backend took took to refuse credentials.
func (d *FailureDelay) Observe(took time.Duration) {
	if d == nil {
		return
	}
	took = min(took, maxLearnedDelay)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(time.Now())
	d.cur = max(d.cur, took)
}

// Delay returns how long a failure takes at least now.
func (d *FailureDelay) Delay() time.Duration {
	if d == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rotate(time.Now())
	return max(d.Min, d.cur, d.prev)
}

// Wait returns when the failure of a login whose credentials were
// complete at start may be answered, or when ctx ends.
func (d *FailureDelay) Wait(ctx context.Context, start time.Time) {
	wait := time.Until(start.Add(d.Delay()))
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// MaxLoggedUser is how much of a client-supplied user name is logged.
const MaxLoggedUser = 256

// LogUser returns a client-supplied user name fit for a log record: at
// most MaxLoggedUser bytes (cut at a rune boundary, with "…" and the
// full length appended), so a client cannot fill the log with a 60 KB
// name. Every "user" attribute of a name the client chose goes through it.
func LogUser(name string) string {
	if len(name) <= MaxLoggedUser {
		return name
	}
	cut := MaxLoggedUser
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…(" + strconv.Itoa(len(name)) + " bytes)"
}
