-- 0006: what a JMAP source adds (issue 13): the Mailbox sortOrder (RFC 8621
-- 2), and one /changes cursor per JMAP data type beside mail (SieveScript,
-- Identity, FileNode), so that a no-change import asks /changes only.
-- See SCHEMA.md "Data kinds".
ALTER TABLE mailboxes ADD COLUMN sort_order INTEGER;  -- NULL: the source has no sort order (IMAP, Maildir …)

CREATE TABLE jmap_cursors (
	type       TEXT PRIMARY KEY,       -- the JMAP type name: SieveScript, Identity, FileNode
	source     TEXT NOT NULL,          -- session URL and account id the state belongs to
	state      TEXT NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;
