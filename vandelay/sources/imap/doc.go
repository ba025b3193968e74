// Package imap imports one account from an IMAP server into an archive
// run, convergently, with go-imap v2 as the client.
//
// # Connection and login
//
// TLS is implicit (993) by default, STARTTLS on request, and cleartext only
// with Config.AllowCleartext. The not-authenticated state (greeting,
// STARTTLS, login) runs in our own small client (preauth.go) because
// go-imap v2 cannot send COMPRESS: after login, COMPRESS=DEFLATE (RFC 4978)
// is switched on when offered (Config.NoCompress turns it off), and go-imap
// takes over the connection behind a synthetic "* PREAUTH" greeting.
// Logins: SASL PLAIN when offered (SASL-IR when offered), else the LOGIN
// command; the master-user forms "user*master" (Dovecot) and SASL PLAIN
// with authzid; XOAUTH2 (see XOAUTH2Client) and OAUTHBEARER with an access
// token. UTF8=ACCEPT is enabled when offered.
//
// # Sync algorithm
//
//  1. One LIST with LIST-EXTENDED RETURN (SUBSCRIBED CHILDREN SPECIAL-USE
//     STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)) (RFC 5258, 6154,
//     5819, 7162) — or LIST plus STATUS per mailbox when LIST-STATUS is
//     missing — gives every mailbox with its role, subscription and
//     counters. Include/Exclude/SubscribedOnly select the scope.
//     archive.Run.SyncMailboxes records creations, deletions and renames
//     (a vanished and a new mailbox with the same UIDVALIDITY are a rename).
//  2. Unchanged mailboxes are skipped without a SELECT: with CONDSTORE, a
//     LIST-STATUS result equal to the saved cursor (UIDVALIDITY, UIDNEXT,
//     HIGHESTMODSEQ, MESSAGES) means nothing was added, expunged or
//     re-flagged. A no-change re-run is one LOGIN and one LIST.
//  3. Other mailboxes are EXAMINEd (read-only; RFC 7162 CONDSTORE). A
//     changed UIDVALIDITY resets the mailbox's copies; the re-fetched
//     bodies match the archive's messages by SHA-256, so nothing is
//     duplicated. The UID set comes from UID SEARCH ALL (or the flags
//     fetch); flags from UID FETCH 1:* (FLAGS) (CHANGEDSINCE cursor) when
//     the cursor has a HIGHESTMODSEQ, else for all messages. go-imap v2 has
//     no QRESYNC, so expunges are found by the UID-set difference. Copies
//     gone at the source are removed, flag changes applied, \Deleted
//     messages skipped (unless IncludeDeleted) without fetching their body.
//  4. New UIDs are split into chunks (Config.Batch messages, at most
//     16 MiB by RFC822.SIZE) and queued; Config.Connections workers (each
//     with its own connection, opened on demand) fetch chunks with one UID
//     FETCH (UID FLAGS INTERNALDATE MODSEQ BODY.PEEK[]) each, so a big
//     mailbox is spread over the connections and the server streams the
//     responses back to back. A body is read once, hashed on the way, into
//     a buffer the worker reuses (over 4 MiB: into an unlinked spool file
//     beside the archive, which archive.Run.Add streams into the blob
//     store), so memory follows the connection count, not the largest
//     message.
//  5. When a mailbox's last chunk is archived, its cursor is saved (in the
//     same transaction). A killed run leaves committed copies in the
//     archive; the next run fetches only UIDs without a copy.
//
// # Probe
//
// [Probe] answers "what changed since the last import?" for planners
// (mailmig plan -refresh) without importing: one login and the same LIST
// (with LIST-STATUS, else STATUS per mailbox) as step 1, no SELECT and no
// FETCH, compared with the archive's cursors by
// vandelay.CompareMailboxes: UIDNEXT growth is new mail, a smaller
// MESSAGES than expected is expunges, a different HIGHESTMODSEQ alone is
// flag changes (per mailbox), a new UIDVALIDITY resets, and a vanished
// UIDVALIDITY reappearing elsewhere is a rename. The counts are estimates.
//
// # Throttling and failures
//
// Config.Throttle caps connections and applies token buckets for messages
// and bytes per second. A command that fails with [LIMIT], [UNAVAILABLE],
// [INUSE], a BYE or a dropped connection is retried on a new connection
// after a capped exponential backoff; a worker that cannot open an extra
// connection hands its task back and stops, so the sync continues with
// fewer connections. A mailbox that still fails is reported in a
// vandelay.PartialError; the others complete. Authentication failures
// are vandelay.ErrAuth.
package imap
