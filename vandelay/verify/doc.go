// Package verify compares an archive with a JMAP target after an export:
// per-mailbox counts, the set of content hashes (SHA-256 of the blobs the
// target serves, downloaded; or, with Options.Sample, sizes for every
// message and hashes for a sample), keywords, receivedAt, mailbox
// membership, hierarchy, roles and subscriptions.
//
// Messages are paired by content hash, not through the export mapping, so a
// verify does not trust the exporter's own bookkeeping. With Sample the
// mapping is used to pair messages whose blob is not downloaded. An
// archive message left unpaired and a leftover target email with its
// Message-ID are one message whose bytes differ: a single KindContent
// mismatch rather than a missing and an extra one.
//
// Mismatches are data (a [Kind], the archive mailbox, the archive message
// id and hash, the target email id and Message-ID, the two values), so
// that views render them and tests assert them; a mailbox missing on the
// target is reported once, without a count against nothing.
//
// The tests in tamper_test.go change an exported account on the real Cyrus
// through its own IMAP server (a message deleted, a keyword changed, a
// message moved, an extra message, a mailbox removed, one byte altered)
// and assert exactly the mismatches each change makes.
//
// Target keywords are compared case-insensitively (Cyrus lower-cases them)
// and the keywords in Options.IgnoreKeywords (default: $hasattachment,
// which Cyrus may add on import) are ignored on both sides. A receivedAt
// at or before 1970-01-02 in the archive is not compared: servers replace
// it with the import time.
package verify
