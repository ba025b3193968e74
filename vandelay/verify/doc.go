// Package verify compares an archive with a JMAP target after an export:
// per-mailbox counts, the set of content hashes (SHA-256 of the blobs the
// target serves, downloaded; or, with Options.Sample, sizes for every
// message and hashes for a sample), keywords, receivedAt, mailbox
// membership, hierarchy, roles and subscriptions.
//
// Messages are paired by content hash, not through the export mapping, so a
// verify does not trust the exporter's own bookkeeping. With Sample the
// mapping is used to pair messages whose blob is not downloaded.
//
// Target keywords are compared case-insensitively (Cyrus lower-cases them)
// and the keywords in Options.IgnoreKeywords (default: $hasattachment,
// which Cyrus may add on import) are ignored on both sides. A receivedAt
// at or before 1970-01-02 in the archive is not compared: servers replace
// it with the import time.
package verify
