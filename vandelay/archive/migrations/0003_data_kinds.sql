-- 0003: the non-mail data kinds of issue 12 (Sieve scripts, calendars,
-- address books, files, identities, vacation). See SCHEMA.md "Data kinds".
-- Original bytes (iCalendar, vCard, Sieve, files) live in the existing
-- blob store under their SHA-256; these tables hold what export and
-- verify need beside the bytes. Deletions are tombstones (deleted_at), so
-- that an export can tell "deleted at the source" from "never seen".

-- A collection is one container of items at a source: a calendar, an
-- address book, a file tree root, or an account's Sieve script set.
CREATE TABLE collections (
	id              INTEGER PRIMARY KEY,
	kind            TEXT NOT NULL CHECK (kind IN ('calendar', 'addressbook', 'files', 'sieve')),
	source_kind     TEXT NOT NULL,             -- managesieve, caldav, carddav, webdav, takeout
	source_endpoint TEXT NOT NULL,             -- host:port, a URL or a path
	account         TEXT NOT NULL,
	href            TEXT NOT NULL DEFAULT '',  -- the collection's URL path at the source ('' for sieve)
	display_name    TEXT NOT NULL DEFAULT '',
	color           TEXT NOT NULL DEFAULT '',
	description     TEXT NOT NULL DEFAULT '',
	default_flags   TEXT NOT NULL DEFAULT '',  -- JSON: e.g. {"isDefault":true,"isSubscribed":true}
	components      TEXT NOT NULL DEFAULT '',  -- calendars: "VEVENT,VTODO" (supported-calendar-component-set)
	modseq          INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	deleted_at      INTEGER
) STRICT;
CREATE UNIQUE INDEX collections_live ON collections(kind, source_kind, source_endpoint, account, href) WHERE deleted_at IS NULL;

-- The sync cursor of one collection: a DAV sync-token, else the CTag
-- (the per-item ETags are in items.etag). Sieve keeps no token: its
-- cursor is each script's name plus content hash (sieve_scripts).
CREATE TABLE collection_cursors (
	collection_id INTEGER PRIMARY KEY REFERENCES collections(id),
	sync_token    TEXT NOT NULL DEFAULT '',
	ctag          TEXT NOT NULL DEFAULT '',
	updated_at    INTEGER NOT NULL
) STRICT;

-- Calendar objects and vCards.
CREATE TABLE items (
	id            INTEGER PRIMARY KEY,
	collection_id INTEGER NOT NULL REFERENCES collections(id),
	uid           TEXT NOT NULL DEFAULT '',   -- iCalendar/vCard UID ('' when the item has none or is unparsable)
	href          TEXT NOT NULL,              -- the item's URL path at the source (or the Takeout member name)
	etag          TEXT NOT NULL DEFAULT '',
	media_type    TEXT NOT NULL DEFAULT '',   -- text/calendar, text/vcard
	hash          TEXT NOT NULL REFERENCES blobs(hash),
	size          INTEGER NOT NULL,
	parse_error   TEXT NOT NULL DEFAULT '',   -- kept as bytes, reported, exported over DAV as it is
	modseq        INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	deleted_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX items_live_href ON items(collection_id, href) WHERE deleted_at IS NULL;
CREATE INDEX items_modseq ON items(modseq);

-- Sieve scripts (RFC 5804), one row per script name of a 'sieve' collection.
CREATE TABLE sieve_scripts (
	id            INTEGER PRIMARY KEY,
	collection_id INTEGER NOT NULL REFERENCES collections(id),
	name          TEXT NOT NULL,
	hash          TEXT NOT NULL REFERENCES blobs(hash),
	size          INTEGER NOT NULL,
	active        INTEGER NOT NULL DEFAULT 0,
	modseq        INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	deleted_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX sieve_scripts_live_name ON sieve_scripts(collection_id, name) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts(collection_id) WHERE active = 1 AND deleted_at IS NULL;

-- Files and folders of a 'files' collection; folders have is_dir = 1 and no hash.
CREATE TABLE files (
	id            INTEGER PRIMARY KEY,
	collection_id INTEGER NOT NULL REFERENCES collections(id),
	path          TEXT NOT NULL,              -- exact, as the source names it (no Unicode normalisation)
	is_dir        INTEGER NOT NULL DEFAULT 0,
	media_type    TEXT NOT NULL DEFAULT '',
	size          INTEGER NOT NULL DEFAULT 0,
	mtime         INTEGER,
	etag          TEXT NOT NULL DEFAULT '',
	hash          TEXT REFERENCES blobs(hash),
	modseq        INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	deleted_at    INTEGER
) STRICT;
CREATE UNIQUE INDEX files_live_path ON files(collection_id, path) WHERE deleted_at IS NULL;

-- Sending identities (JMAP Identity, RFC 8621 6).
CREATE TABLE identities (
	id             INTEGER PRIMARY KEY,
	source_ref     TEXT NOT NULL DEFAULT '',
	name           TEXT NOT NULL DEFAULT '',
	email          TEXT NOT NULL,
	reply_to       TEXT NOT NULL DEFAULT '',  -- JSON list of {name,email}
	bcc            TEXT NOT NULL DEFAULT '',
	text_signature TEXT NOT NULL DEFAULT '',
	html_signature TEXT NOT NULL DEFAULT '',
	modseq         INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER
) STRICT;

-- The vacation response (JMAP VacationResponse, RFC 8621 8): one row.
CREATE TABLE vacation (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	enabled    INTEGER NOT NULL DEFAULT 0,
	from_date  INTEGER,
	to_date    INTEGER,
	subject    TEXT NOT NULL DEFAULT '',
	text_body  TEXT NOT NULL DEFAULT '',
	html_body  TEXT NOT NULL DEFAULT '',
	source_ref TEXT NOT NULL DEFAULT '',      -- e.g. "sieve:<script name>" when read from a vacation action
	modseq     INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- One row per data import run (mail runs stay in runs).
CREATE TABLE data_runs (
	id          INTEGER PRIMARY KEY,
	kind        TEXT NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	status      TEXT NOT NULL DEFAULT 'running',
	counts      TEXT NOT NULL DEFAULT '{}'
) STRICT;
