-- Apply workers (engine/state/pgstate, workers.go): several
-- "mailmig apply -worker NAME" processes share one state.

-- The apply lock may now have several holders: one exclusive holder
-- (apply, routes set, admin edits, state migrate), or any number of apply
-- workers holding it in shared mode. One row per holder, keyed by its
-- lock id; backend_pid tells a live holder from one whose session ended.
ALTER TABLE mailmig_state_lock DROP COLUMN id;
ALTER TABLE mailmig_state_lock ADD PRIMARY KEY (lock_id);
ALTER TABLE mailmig_state_lock ADD COLUMN shared boolean NOT NULL DEFAULT false;

-- One row per worker that ever registered. A worker is live while its
-- heartbeat is younger than its lease on the database's clock (now()) and
-- it has not stopped (a clean exit sets stopped). instance tells two
-- processes started with the same name apart.
CREATE TABLE mailmig_workers (
	id        text PRIMARY KEY,
	instance  text NOT NULL,
	host      text NOT NULL,
	pid       integer NOT NULL,
	started   timestamptz NOT NULL,
	heartbeat timestamptz NOT NULL,
	lease     interval NOT NULL,
	stopped   timestamptz
);

-- One row per account a worker asked for. worker holds the claim until
-- lease_until (renewed with the worker's heartbeat), NULL once released;
-- archive_worker is the worker whose machine keeps the account's archive
-- (the next import or catch-up of the account runs there while it lives).
CREATE TABLE mailmig_claims (
	account        text PRIMARY KEY,
	worker         text,
	lease_until    timestamptz,
	claimed_at     timestamptz,
	archive_worker text,
	released_at    timestamptz,
	outcome        text NOT NULL DEFAULT ''
);
CREATE INDEX mailmig_claims_worker ON mailmig_claims (worker) WHERE worker IS NOT NULL;
