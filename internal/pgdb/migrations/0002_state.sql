-- The migration's state (engine/state/pgstate): the journal's records,
-- the snapshot of their fold and who holds the apply lock.

-- One row per journal record: line is the record's exact JSON line
-- (without newline), whose SHA-256 the next record carries, so the
-- chain is the same as in journal.jsonl and "mailmig journal verify"
-- checks it the same way. Records are only inserted: seq is the primary
-- key, so two writers can never both append record N.
CREATE TABLE mailmig_journal (
	seq  bigint PRIMARY KEY CHECK (seq > 0),
	line text NOT NULL,
	at   timestamptz NOT NULL DEFAULT now()
);

-- The cached fold of records 1..serial (a cache: trusted only while the
-- record it names still has the hash it keeps).
CREATE TABLE mailmig_state_snapshot (
	id     integer PRIMARY KEY CHECK (id = 1),
	serial bigint NOT NULL,
	data   text NOT NULL,
	at     timestamptz NOT NULL DEFAULT now()
);

-- Who holds the apply lock. The lock itself is a session advisory lock,
-- which ends with its connection; this row describes the holder (and its
-- backend pid, to tell a live holder from a dead one).
CREATE TABLE mailmig_state_lock (
	id          integer PRIMARY KEY CHECK (id = 1),
	lock_id     text NOT NULL,
	info        text NOT NULL,
	backend_pid integer NOT NULL
);
