-- 0001: the mail archive and the export mapping. See SCHEMA.md.

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE sources (
	id               INTEGER PRIMARY KEY,
	kind             TEXT NOT NULL,
	endpoint         TEXT NOT NULL,
	account          TEXT NOT NULL,
	login            TEXT NOT NULL,
	active           INTEGER NOT NULL DEFAULT 1,
	first_run_at     INTEGER NOT NULL,
	last_run_at      INTEGER,
	last_complete_at INTEGER
) STRICT;

CREATE TABLE runs (
	id          INTEGER PRIMARY KEY,
	source_id   INTEGER NOT NULL REFERENCES sources(id),
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	status      TEXT NOT NULL DEFAULT 'running',
	counts      TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE TABLE blobs (
	hash       TEXT PRIMARY KEY,
	size       INTEGER NOT NULL,
	chunks     INTEGER NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE blob_chunks (
	hash TEXT NOT NULL REFERENCES blobs(hash) ON DELETE CASCADE,
	n    INTEGER NOT NULL,
	data BLOB NOT NULL,
	PRIMARY KEY (hash, n)
) STRICT, WITHOUT ROWID;

CREATE TABLE mailboxes (
	id         INTEGER PRIMARY KEY,
	path       TEXT NOT NULL,
	name       TEXT NOT NULL,
	sep        TEXT NOT NULL,
	parent_id  INTEGER REFERENCES mailboxes(id),
	role       TEXT NOT NULL DEFAULT '',
	subscribed INTEGER NOT NULL DEFAULT 0,
	selectable INTEGER NOT NULL DEFAULT 1,
	source_ref TEXT NOT NULL DEFAULT '',
	modseq     INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	deleted_at INTEGER
) STRICT;
CREATE UNIQUE INDEX mailboxes_live_path ON mailboxes(path) WHERE deleted_at IS NULL;
CREATE INDEX mailboxes_modseq ON mailboxes(modseq);

CREATE TABLE messages (
	id          INTEGER PRIMARY KEY,
	blob        TEXT NOT NULL REFERENCES blobs(hash),
	size        INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	keywords    TEXT NOT NULL DEFAULT '',
	modseq      INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	deleted_at  INTEGER
) STRICT;
CREATE UNIQUE INDEX messages_live_blob ON messages(blob) WHERE deleted_at IS NULL;
CREATE INDEX messages_modseq ON messages(modseq);

CREATE TABLE locations (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
	key        TEXT NOT NULL,
	message_id INTEGER NOT NULL REFERENCES messages(id),
	keywords   TEXT NOT NULL DEFAULT '',
	modseq     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (mailbox_id, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX locations_message ON locations(message_id, mailbox_id);

CREATE TABLE cursors (
	mailbox_id INTEGER PRIMARY KEY REFERENCES mailboxes(id),
	validity   INTEGER NOT NULL DEFAULT 0,
	next       INTEGER NOT NULL DEFAULT 0,
	modseq     INTEGER NOT NULL DEFAULT 0,
	extra      TEXT NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE export_targets (
	id         INTEGER PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE export_states (
	target_id INTEGER NOT NULL REFERENCES export_targets(id),
	key       TEXT NOT NULL,
	value     TEXT NOT NULL,
	PRIMARY KEY (target_id, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE export_map (
	target_id  INTEGER NOT NULL REFERENCES export_targets(id),
	kind       TEXT NOT NULL,
	archive_id INTEGER NOT NULL,
	remote_id  TEXT NOT NULL,
	created    INTEGER NOT NULL DEFAULT 0,
	modseq     INTEGER NOT NULL DEFAULT 0,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (target_id, kind, archive_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX export_map_remote ON export_map(target_id, kind, remote_id);

INSERT INTO meta(key, value) VALUES ('modseq', '0');
