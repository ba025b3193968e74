// Package executor is the engine's real executor: it moves one account's
// data with the vandelay library — an import into the account's archive
// (DIR/ACCOUNT.db), the JMAP export onto the target and verify (the
// source against the archive by a dry-run import, verify.Source; the
// archive against the target, verify.Target) — and answers the engine's
// observation questions: the cheap change probe of -refresh (the source
// kind's probe from the registry in vandelay/sources) and the archives'
// overviews for plan.
//
// It lives apart from package engine so that the engine stays pure (Diff
// and Apply touch no files and no network) and apart from cmd so that the
// CLI only turns arguments into calls and results into views. Tests of
// the CLI replace it with a fake.
//
// # Implementation notes
//
//   - An Executor is safe for concurrent use on different accounts; the
//     engine never runs two changes of one account at once.
//   - Each change uses one connection to its source: Apply runs at most
//     limits.connections changes per backend, so a backend never sees more.
//   - Imports and exports wait up to [ArchiveWait] for an archive that a
//     plan in another process reads (a shared lock held for milliseconds);
//     plan itself never waits: a running import shows as "in use".
//   - After an import or export the archive's overview is cached next to
//     it (ACCOUNT.db.json), stamped with the database's size and
//     modification time, so that plan reads one small file per account;
//     a stamp that no longer matches makes plan read the archive.
//   - Cyrus creates a user's mailboxes at the first IMAP login; before the
//     first export with the user's password the executor logs in over the
//     target's cleartext IMAP endpoint once (vandelay.WarmUpIMAP).
package executor
