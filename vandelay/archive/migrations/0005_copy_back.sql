-- 0004: mail that arrived on a target after the cut-over, read back so that
-- a rollback copies it to the source (issue 14). See SCHEMA.md.

CREATE TABLE copy_back (
	id          INTEGER PRIMARY KEY,
	target      TEXT NOT NULL,
	remote_id   TEXT NOT NULL,
	mailbox     TEXT NOT NULL,
	sep         TEXT NOT NULL,
	blob        TEXT NOT NULL REFERENCES blobs(hash),
	size        INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	keywords    TEXT NOT NULL DEFAULT '',
	found_at    INTEGER NOT NULL,
	copied_at   INTEGER,
	source_key  TEXT NOT NULL DEFAULT '',
	UNIQUE (target, remote_id, mailbox)
) STRICT;
CREATE INDEX copy_back_pending ON copy_back(copied_at);
