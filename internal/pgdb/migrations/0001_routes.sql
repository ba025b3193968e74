-- The route table of a fleet of proxies (proxy/routes/pgroutes).
-- Every write takes the row lock of mailmig_route_meta while it bumps seq,
-- so changes commit in seq order and a follower that read up to seq N has
-- seen every change numbered N or less.
CREATE TABLE mailmig_route_meta (
	id              integer PRIMARY KEY CHECK (id = 1),
	seq             bigint NOT NULL,
	default_backend text NOT NULL DEFAULT ''
);
INSERT INTO mailmig_route_meta (id, seq) VALUES (1, 0);

CREATE TABLE mailmig_routes (
	account    text PRIMARY KEY,
	backend    text NOT NULL,
	state      text NOT NULL CHECK (state IN ('active', 'frozen')),
	generation bigint NOT NULL,
	updated    timestamptz NOT NULL,
	seq        bigint NOT NULL
);

CREATE TABLE mailmig_route_aliases (
	identifier text PRIMARY KEY,
	account    text NOT NULL
);
CREATE INDEX mailmig_route_aliases_account ON mailmig_route_aliases (account);

CREATE TABLE mailmig_route_domains (
	domain text PRIMARY KEY
);

-- One row per changed key per change: kind is 'route', 'alias', 'domain'
-- or 'default'. Followers read the rows above the last seq they applied.
CREATE TABLE mailmig_route_changes (
	seq  bigint NOT NULL,
	kind text NOT NULL,
	key  text NOT NULL,
	at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (seq, kind, key)
);

-- The proxies that follow the table, their heartbeat and the last change
-- they applied: the barrier of a cut-over waits on this.
CREATE TABLE mailmig_proxies (
	id         text PRIMARY KEY,
	address    text NOT NULL,
	started    timestamptz NOT NULL,
	heartbeat  timestamptz NOT NULL,
	lease_ms   bigint NOT NULL,
	applied    bigint NOT NULL,
	applied_at timestamptz NOT NULL
);
