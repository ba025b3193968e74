// Package imap is vandelay's IMAP target: it writes messages from an
// archive onto an IMAP server with APPEND (flags and internal date kept),
// creating and subscribing the folders it needs. Today it copies back
// what a rollback must return to the source — the archive's pending
// Returns (archive.Return), read from a JMAP target after the cut-over
// by targets/jmap.ReadBack — and the same writer is the base of an
// IMAP → IMAP migration through the archive.
//
// # Invariants
//
//   - Convergent, like the JMAP export: before each APPEND the mailbox is
//     searched for the message (its Message-ID, else its size) and the
//     candidates' bytes are compared by SHA-256; a message already there
//     is recorded, not appended. A SIGKILL between an APPEND and its
//     record (archive.Archive.MarkReturned) therefore duplicates nothing,
//     and a re-run after a complete one sends nothing at all.
//   - It never deletes, moves or re-flags anything on the server: a
//     rollback must not hide mail from the user.
//   - One connection, one mailbox selected (read-only: EXAMINE) at a
//     time; messages are grouped by mailbox, in the order they were read.
package imap
