// Package jmap exports a vandelay archive onto a JMAP server (RFC 8620,
// RFC 8621) and keeps the target converged with the archive on re-runs.
//
// # What one run does
//
//  1. Mailboxes, parents before children: an archive mailbox already mapped
//     to a target mailbox keeps it (renamed or moved when the archive
//     changed its name or parent, subscription updated); an unmapped one is
//     matched by role, then by name under its matched parent, and created
//     when nothing matches (with its role when no target mailbox has that
//     role yet). Role mailboxes of the target are never renamed.
//  2. Messages changed in the archive since the last complete run (the
//     archive's ModSeq is the cursor): new ones are imported with
//     Email/import, many per request, with mailboxIds, keywords and
//     receivedAt. Small messages travel inside that same request when the
//     server offers RFC 9404 Blob/upload (or Cyrus's draft Blob/set),
//     referenced as "#creationId"; the others are uploaded over HTTP,
//     streamed from the archive, maxConcurrentUpload at a time; mapped ones whose keywords or
//     membership changed get one Email/set patch (a move is a patch, never
//     a re-upload); tombstoned ones are destroyed when the export created
//     them, and only forgotten when they were already on the target.
//     New messages are filed in the source's order in every mailbox (see
//     below), so the target's IMAP UIDs follow the source's.
//  3. Tombstoned mailboxes the export created are destroyed, children
//     first, after their messages moved away.
//  4. With Options.Prune, target emails and non-role mailboxes that the
//     archive does not hold are destroyed.
//
// # Invariants
//
//   - One archive message is one target Email. Before importing, messages
//     the target already holds are matched: Cyrus answers alreadyExists with
//     the existing id for the same bytes; for other servers, a Message-ID
//     index of the target (built when the target holds emails the mapping
//     does not know) plus a SHA-256 comparison of the downloaded blob finds
//     them.
//   - A SIGKILL at any moment loses nothing and duplicates nothing: the
//     archive ids of a batch are recorded ("inflight") before its
//     Email/import is sent and the mappings are written in one transaction
//     after it; on the next run the in-flight messages are matched on the
//     target like pre-existing ones, and still count as created by the
//     export (so a later tombstone destroys them).
//   - Every limit comes from the session (see package vandelay/jmap).
//   - Order: the target numbers emails (IMAP UIDs) in the order it files
//     them, and users see that order (Thunderbird sorts by it; mbsync's
//     recovery after a UIDVALIDITY change needs it unchanged). New
//     messages are sorted by first mailbox (lowest archive mailbox id),
//     then by source position there (IMAP UID; for POP3, Maildir and
//     Takeout the internal date, then the archive id); the batches of one
//     mailbox are imported strictly one after the other (the next batch's
//     uploads overlap the current import), Options.Workers mailboxes in
//     parallel, small ones sharing batches; inside a request the
//     Email/import members are
//     in that order (an ordered JSON object, with creation ids that sort
//     alike). A message in several mailboxes is one Email, filed once: it
//     keeps its place in its first mailbox; in the others it lands where
//     that first mailbox's import stood. order.go has the details.
//   - A message larger than maxSizeUpload, or refused with tooLarge,
//     overQuota or invalidEmail, is skipped and named in Result.Skipped; the
//     run goes on and Result.Partial reports it.
//
// # State kept in the archive
//
// Per target (named "jmap SESSION-URL ACCOUNT-ID"): the mapping archive id
// → target id for mailboxes and emails with the archive ModSeq last
// exported and whether the export created the object; the target's
// Mailbox and Email state strings and the archive ModSeq of the last
// complete run.
package jmap
