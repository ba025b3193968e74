// Package vandelay moves one account's data: sources import it into an
// archive (package archive), and the exporter reconciles the archive onto
// a JMAP target.
//
// This package holds the small interfaces shared by the adapters:
// [MailSource] (a convergent mail source), its [Config], [Progress] and
// [Throttle], and the cheap change probes' common result ([ProbeResult],
// computed by [CompareMailboxes] from what imap.Probe, pop3.Probe and
// maildir.Probe see at the source). The adapters live in vandelay/sources/{imap,pop3,maildir,takeout};
// the registry of source kinds is the map in package vandelay/sources
// (a separate package because the adapters import this one). Every source
// runs the conformance suite in vandelay/vandelaytest.
//
// # Import semantics (all sources)
//
//   - One archive message per distinct content; a message in several
//     folders or labels is one message with several mailboxes.
//   - A re-run captures what changed: new, deleted (tombstoned), re-flagged
//     and moved messages (a move is a membership change), and created,
//     renamed and deleted mailboxes.
//   - \Deleted messages are skipped unless Config.IncludeDeleted.
//   - The source is only read, never changed.
package vandelay
