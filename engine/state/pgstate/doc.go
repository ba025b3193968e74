// Package pgstate keeps a migration's state in PostgreSQL: the journal's
// records, the snapshot of their fold and the apply lock, for a team
// whose applies run on machines that do not keep files (CI runners) or
// on more than one machine. It is the state.RecordStore of a
// state.Remote; the journal's chaining, folding and verification are the
// state package's, the same as for the state directory.
//
// # Journal
//
// Each record is a row of mailmig_journal: its seq and its exact JSON
// line, whose SHA-256 the next record carries. Rows are only inserted,
// and seq is the primary key, so two writers cannot both append record N:
// the second gets state.ErrConflict (a retried insert of the same line is
// not a conflict). "mailmig journal verify" reads the rows in order and
// checks the chain with the same rules as for journal.jsonl.
//
// # Lock
//
// The apply lock is a session advisory lock (pg_try_advisory_lock) on a
// connection of its own, held until Unlock. A process that dies, or whose
// connection the server loses, loses the lock with its session: there is
// no stale lock to take over by hand. mailmig_state_lock describes the
// holder (owner, operation, host, pid) and its backend pid, so ReadLock
// can tell a live holder from a dead one from any machine. While this
// Store holds the lock, journal records are inserted through the lock's
// own session: a run whose session ended (and with it the lock) cannot
// append another record, and fails instead of writing beside the next
// holder.
//
// Apply workers hold the same lock in shared mode
// (pg_try_advisory_lock_shared, LockShared): together, never with an
// exclusive holder. mailmig_state_lock has one row per holder. Their
// journal is shared (state.Options.Shared): appenders take turns
// (AppendTurn, a session advisory lock granted in order), fold what the
// others appended and append at the head.
//
// # Workers
//
// Workers (workers.go) registers an apply worker in mailmig_workers and
// claims accounts in mailmig_claims with FOR UPDATE SKIP LOCKED, so no
// account is worked on by two workers; leases are measured on the
// database's clock, and an account's archive keeps it on the worker that
// has it while that worker lives (archive affinity).
package pgstate
