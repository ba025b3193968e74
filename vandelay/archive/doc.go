// Package archive is mailmig's per-account mail archive: one SQLite file
// (modernc.org/sqlite, WAL) holding an account's complete mail, the sync
// cursors of its source and the export mapping of each target, and beside
// it a pack file (path + [PackSuffix]) holding the blob bytes. SCHEMA.md
// in this directory documents every table and the pack file.
//
// # Lifecycle
//
// [Open] takes an advisory flock on the file — exclusive for read-write,
// shared with Options.ReadOnly — so a second process gets [ErrInUse] at
// once instead of blocking, then applies the embedded numbered migrations
// (migrations/NNNN_name.sql, PRAGMA user_version). To change the schema add
// the next numbered file; never edit an applied one. [Archive.Close]
// releases the lock.
//
// # Model
//
//   - [Source]: where the mail comes from (kind, endpoint, account, login).
//     [Archive.BeginRun] refuses a different source ([ErrSourceChanged])
//     unless RunOptions.AllowSourceChange is set.
//   - Blobs: raw message bytes stored once by lowercase hex SHA-256
//     ([Hash]), exactly as the source served them, appended to the pack
//     file (before schema 10: in 1 MiB chunk rows, still read from there);
//     [Archive.Blob] streams them.
//   - [Mailbox]: path, separator, parent, role, subscription, selectable.
//     Placeholder parents (IMAP \NonExistent) exist with Selectable false.
//     Ids are stable across renames at the source.
//   - [Message]: one per distinct content among live messages: the same
//     bytes in several folders or Gmail labels are one Message with several
//     MailboxIDs. Keywords are JMAP keywords ($seen …), the union over the
//     source's copies.
//   - Locations: the source's copies of a message (mailbox + key: IMAP UID,
//     POP3 UIDL, Maildir unique name, Takeout content hash) with their own
//     keywords and MODSEQ; membership is derived from them.
//   - Cursors: per mailbox (UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, extra).
//   - Tombstones: a Mailbox or Message with Deleted set. They are never
//     revived: content that reappears after its message was tombstoned
//     becomes a new Message with a new id.
//
// # Change tracking for exporters
//
// Every committed change stamps the changed mailbox or message row with a
// new archive-wide ModSeq ([Archive.ModSeq]). An exporter remembers the
// ModSeq it exported up to (e.g. in [ExportTarget.SetState]) and asks only
// for what changed since: [Archive.Mailboxes] and [Archive.Messages] with
// ChangedSince (and IncludeDeleted to see tombstones). Membership and
// keyword changes, moves and renames all bump the row's ModSeq. A live
// message may transiently have no MailboxIDs (a move interrupted by a
// crash); exporters skip it until a later run settles it.
//
// # Export mapping
//
// [Archive.ExportTarget] names one destination; its [ExportTarget.PutMappings]
// records archive id → target id (per kind: [KindMailbox], [KindEmail]),
// whether the export created the target object, and the ModSeq exported;
// [ExportTarget.SetState] keeps state strings (JMAP "Email" state, …).
//
// # Copy-back
//
// [Archive.AddReturns] records mail that arrived on a target after the
// cut-over (read back by targets/jmap.ReadBack) as pending [Return]s with
// their bytes; the IMAP target writes them to the source and
// [Archive.MarkReturned] marks each. They are not messages: the source's
// next import makes them ones.
//
// # Overview
//
// [Archive.Overview] reads, in one read transaction and on read-only
// archives too, what a planner needs: the totals, the source with its last
// run times, every live mailbox with its cursor and message count, and per
// export target how many messages are exported, never exported, changed
// since their export or tombstoned but still mapped ([ExportStatus]).
//
// # Import runs and crash safety
//
// An import is a [Run]: [Run.SyncMailboxes], then per mailbox
// [Run.Locations] (what the archive has), [Run.Add] / [Run.AddKnown] /
// [Run.SetKeywords] / [Run.Remove] (what changed), [Run.SetCursor] (after
// the mailbox is done), and [Run.Finish]. Writes are batched into
// transactions (200 messages or 32 MiB); a SIGKILL loses at most the
// uncommitted batch, and because locations — not cursors — decide what is
// fetched, the next run resumes without re-fetching what was committed. A
// message that lost its last copy is tombstoned only by a complete
// Finish, so a move (copy gone here, appears there later in the run, or in
// the next run after a crash) stays one message. In a dry run everything
// happens in one transaction that Finish rolls back.
//
// A body reaches [Run.Add] either as bytes (NewMessage.Body, which the run
// does not keep) or, for a large message, as a reader of Size bytes with
// its hash (NewMessage.Content), copied into the pack under a savepoint (by
// the kernel when it is a file), so that no message is held whole. Every
// transaction that recorded blobs syncs the pack before it commits. While
// a run writes, a background checkpointer copies the WAL into the
// database file every 256 MiB committed (PRAGMA wal_checkpoint(PASSIVE)
// on a connection of its own); it never blocks the writer, and it leaves
// [Archive.Close] only the last batch to checkpoint. Connections keep a
// small page cache (2 MiB): see Open for why.
//
// Invariants: at most one live message per blob hash; at most one live
// mailbox per path; a location points to a live message and a live
// mailbox.
package archive
