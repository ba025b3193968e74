// Package state keeps the migration's auditable state: an append-only,
// hash-chained journal of JSON lines, the State folded from it, a snapshot
// cache of that fold, and the lock that keeps two applies apart.
//
// # Journal
//
// The journal (journal.jsonl in the state directory) is the source of truth.
// Each line is one Record: an action started or finished, a lifecycle
// transition, a hold or release. Every record carries its sequence number
// (Seq, starting at 1), the time, the actor (user@host and a CI run id when
// one is present in the environment), the hash of the plan files it acted
// on, and Prev: the hex SHA-256 of the previous line's exact bytes. The first
// record (type "init") names the journal's Lineage, a random id that is
// fixed for the life of the migration. Serial is the number of records.
//
// Invariants:
//   - Records are only appended, never rewritten. An append is one write(2)
//     of a complete line followed by fsync, so its cost does not depend on
//     the journal's length (the last hash and sequence are kept in memory).
//   - A crash can leave at most one incomplete last line. Open with write
//     access cuts it off (it was never acknowledged, because fsync had not
//     returned); read-only opens ignore it.
//   - Secrets never enter the journal: errors pass through the Journal's
//     redactor before they are written.
//
// # State and snapshot
//
// State is the fold of every record (see State.Apply). Because folding a
// long journal costs time, snapshot.json caches the fold together with the
// serial, the byte offset and the hash of the last record it covers. The
// snapshot is written atomically (temporary file, fsync, rename) and only
// trusted when the journal line it names still has that hash; otherwise the
// whole journal is folded again. A missing or stale snapshot is never an
// error.
//
// # Lock
//
// Lock creates lock.json exclusively with an id, the owner, the operation,
// the time and the process id. A lock left by a dead process on the same
// host is taken over; anything else is an *LockError until ForceUnlock is
// called with the lock's id.
package state
