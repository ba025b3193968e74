// Package jmap imports one account's mail from a JMAP server (RFC 8620,
// RFC 8621) into an archive run, convergently: an older Stalwart, Cyrus,
// or any JMAP server as the source of a migration.
//
// # Client
//
// The source uses the export's client (vandelay/jmap through
// vandelay.OpenTarget): the same session discovery, limits from the
// session's core capability, retries of 429/503 and serverUnavailable,
// timeouts, and account choice. Logins: HTTP Basic with the user's
// password, a bearer token (Login.Auth "bearer"), or an admin's Basic
// credential acting for another account (Login.MasterUser, the account
// picked by AccountID, AccountName or User among the accounts the session
// lists). An account without urn:ietf:params:jmap:mail is refused
// (vandelay.ErrUsage).
//
// # Archive mapping
//
// A Mailbox becomes an archive mailbox whose path is its parent chain
// joined with "/" (another separator when a name holds "/"), the
// top-level inbox being "INBOX"; its role (when the archive knows it),
// subscription and its Mailbox id as SourceRef ("jmap:ID"), so a rename or
// move at the source keeps the archive mailbox. An Email is one copy per
// mailbox in its mailboxIds, each keyed by the Email id; its bytes are the
// blob the server serves for blobId (the raw message, hashed while it is
// read), its keywords and receivedAt kept as they are. Threads are not
// copied. sortOrder is read but the archive has no place for it yet.
//
// # Position and algorithm
//
// JMAP states are per account, the archive's cursors per mailbox: every
// JMAP mailbox's cursor carries the same position (the Mailbox and Email
// states after the last complete sync, and a fingerprint of the scope),
// written in one transaction; a run trusts it only when all agree.
//
//   - Incremental (a position is stored): one request with
//     Mailbox/changes, Email/changes (maxChanges = maxObjectsInGet) and two
//     Email/get calls whose ids are back-references to the created and
//     updated ids. A run with no change is that one request and writes no
//     cursor. Mailboxes are listed again (Mailbox/get, then
//     archive.Run.SyncMailboxes) only when Mailbox/changes reports more
//     than counter updates. Destroyed Emails lose their copies; created and
//     updated ones are compared with their copies (archive.Run.CopiesByKey):
//     copies in mailboxes the Email left are removed, keywords updated,
//     copies in new mailboxes reuse the archive's bytes (AddKnown). Only an
//     Email whose id the archive does not know is downloaded. The position
//     is saved after each page of changes, with the page's copies.
//   - Full (no position, another scope, or Email/changes answers
//     cannotCalculateChanges — Cyrus answers a state it no longer knows
//     with invalidArguments, treated alike): the Email state is read
//     first, then Mailbox/get, Email/query (position paging by
//     maxObjectsInGet, checking that the queryState stays the same) and
//     Email/get in chunks of maxObjectsInGet, as many per request as
//     maxCallsInRequest allows. The same comparison as above runs per
//     Email against the archive's copies by id, so known blobs are never
//     downloaded again; copies whose id the server no longer lists are
//     removed when the listing was stable.
//
// Downloads run Options.Connections at a time (capped by the session's
// maxConcurrentRequests and the throttle). A blob the server does not
// serve (404) fails that Email only: the others are imported, no position
// is saved, and Sync returns a vandelay.PartialError (the CLI's "partial"
// exit). A method error (serverFail …) or an unreadable response is
// vandelay.ErrConnect; the archive keeps what was committed and the next
// run resumes from the last saved position — replaying changes is
// harmless, because every step compares before it writes.
//
// # Probe
//
// [Probe] sends Mailbox/changes and Email/changes from the stored
// position (and, only when mailboxes were created or renamed, a
// Mailbox/get of their names): no Email is read.
package jmap
