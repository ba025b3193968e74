// Package vandelay moves one account's data: sources import it into an
// archive (package archive), and the exporter reconciles the archive onto
// a JMAP target.
//
// This package is the library the CLI, the engine's executor
// (engine/executor) and the tests call:
//
//   - [Import] runs one import of a [MailSource] into an archive: begin the
//     run, sync, finish it (complete only when the sync was). It is the only
//     place that sequence is written.
//   - [OpenTarget] logs in to a JMAP account (optionally throttled by a
//     [RateLimiter]; [WarmUpIMAP] for Cyrus) and [Export] reconciles the
//     archive onto it. Package verify compares a source (verify.Source, a
//     dry-run Import) and a target (verify.Target) with the archive.
//
// [ImportSieve] and [ExportSieve] are the same pair for Sieve scripts
// (see "Non-mail data kinds" below).
//
// It also holds what the adapters share: [MailSource] (a convergent mail
// source), the option groups [Server], [Login] and [Scope] that each
// kind's typed Options embed (imap.Options, pop3.Options …), [Progress]
// (per run, passed to Sync) and [Throttle], and the cheap change probes'
// common result ([ProbeResult], computed by [CompareMailboxes]). The
// adapters live in vandelay/sources/{imap,pop3,jmap,maildir,takeout} and
// vandelay/sources/exchange/{graph,ews} (Microsoft Exchange, the one
// source tested against recorded exchanges, package recorded); the
// registry of source kinds (constructor, probe and the settings each kind
// reads) is the map in package vandelay/sources, a separate package
// because the adapters import this one. Every source runs the conformance
// suite in vandelay/vandelaytest.
//
// # Non-mail data kinds (issue 12)
//
// Mail needs the source's own change tracking, so a [MailSource] drives
// the diff itself. The other kinds are collections of items whose bytes
// are kept exactly (Sieve scripts, iCalendar, vCard, files), so each kind
// gets a small items-oriented interface beside MailSource instead: the
// source hands over items (with the cursor data its protocol has: a DAV
// sync-token or ETags; for ManageSieve nothing, so the whole set), the
// archive diffs by identity and SHA-256 in one transaction and keeps
// tombstones, and the export reconciles the archive onto a target of the
// same small shape. One kind, one source interface, one target interface,
// one Import/Export pair here; protocol code lives in the adapters and
// nothing in cmd/. Today:
//
//   - Sieve: [SieveSource] (vandelay/sources/managesieve), [ImportSieve]
//     into archive.SyncSieve; [SieveTarget] (vandelay/targets/managesieve,
//     the fallback where the target's JMAP lacks urn:ietf:params:jmap:sieve)
//     and [ExportSieve], convergent like mail: only what the export created
//     is deleted, a script the target refuses is reported with the
//     target's text and the others go, a user's own same-named script is a
//     conflict left alone.
//   - Contacts and calendars: [DAVSource] (vandelay/sources/dav, CardDAV
//     and CalDAV on vandelay/internal/davclient), [ImportDAV] into
//     archive.SyncDAVCollection (one transaction per collection, cursor =
//     sync-token, CTag and per-item ETags); [DAVTarget]
//     (vandelay/targets/dav, the target's own DAV endpoints) and
//     [ExportDAV], convergent (If-None-Match/If-Match, only what the export
//     created is deleted, conflicts keep the target's version);
//     [VerifyDAV] compares after [VCardRules], which undo only what Cyrus
//     rewrites on store.
//   - Files: [FileSource] (vandelay/sources/webdav, a Takeout's Drive),
//     [ImportFiles] (a PROPFIND Depth 1 walk, bytes streamed into the blob
//     store by archive.PutBlobStream, incremental by ETag); [FileTarget]
//     (vandelay/targets/webdav) and [ExportFiles], convergent the same way;
//     [VerifyFiles] by path, size and SHA-256.
//   - Vacation: [VacationFromSieve] reads it from the active script into
//     archive.SetVacation; [ExportVacationJMAP] sets a JMAP target's
//     VacationResponse. Identities: [ExportIdentitiesJMAP] and
//     [VerifyIdentitiesJMAP] (RFC 8621 6), filled by a JMAP source.
//   - Over JMAP (the standard capabilities): vandelay/targets/jmapdata
//     implements [SieveTarget] with RFC 9661 SieveScript and [FileTarget]
//     with FileNode, so [ExportSieve] and [ExportFiles] run unchanged over
//     either transport; [ImportJMAPData] reads Sieve scripts, identities,
//     the vacation response and files from a JMAP source, one /changes
//     cursor per type (a no-change run is one request).
//   - A Takeout's calendars and contacts are [DAVSource]s and its Drive a
//     [FileSource] (vandelay/sources/takeout), so the same Import/Export
//     pairs carry them.
//
// The registry of these source kinds is sources.Data, beside sources.Mail,
// built from the same sources.Spec so that flags and plan backends describe
// every kind one way.
//
// # Copy-back (rollback, issue 14)
//
// [ReadBack] reads what arrived on a JMAP target after the cut-over into
// the archive (pending archive.Return rows: emails the export did not put
// there) and lists the keyword changes of exported ones; the IMAP target
// (vandelay/targets/imap: CopyBack, Reflag) writes them onto the source
// over APPEND and UID STORE. Both are convergent: a killed run repeated
// reads and appends only what is missing, matched by Message-ID/size and
// SHA-256 as the JMAP export matches. Its connection comes from the IMAP
// source's dialer (sources/imap.Dial), which imports this package, so the
// engine's executor joins the two halves.
//
// # Import semantics (all sources)
//
//   - One archive message per distinct content; a message in several
//     folders or labels is one message with several mailboxes.
//   - A re-run captures what changed: new, deleted (tombstoned), re-flagged
//     and moved messages (a move is a membership change), and created,
//     renamed and deleted mailboxes.
//   - \Deleted messages are skipped unless Scope.IncludeDeleted.
//   - The source is only read, never changed.
package vandelay
