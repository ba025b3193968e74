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
// It also holds what the adapters share: [MailSource] (a convergent mail
// source), the option groups [Server], [Login] and [Scope] that each
// kind's typed Options embed (imap.Options, pop3.Options …), [Progress]
// (per run, passed to Sync) and [Throttle], and the cheap change probes'
// common result ([ProbeResult], computed by [CompareMailboxes]). The
// adapters live in vandelay/sources/{imap,pop3,maildir,takeout}; the
// registry of source kinds (constructor, probe and the settings each kind
// reads) is the map in package vandelay/sources, a separate package
// because the adapters import this one. Every source runs the conformance
// suite in vandelay/vandelaytest.
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
