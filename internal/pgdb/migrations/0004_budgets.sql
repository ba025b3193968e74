-- Budgets shared by every apply process of the fleet (engine/state/pgstate
-- budget.go), and the archives' observations recorded for machines that do
-- not hold them (observations.go).

-- One row per connection slot of a backend (slot 1..limits.connections).
-- A process claims a free slot (FOR UPDATE SKIP LOCKED) for the time a
-- change runs and renews its lease while it holds it; a slot whose lease
-- ran out (its process died) is free again.
CREATE TABLE mailmig_budget_slots (
	backend     text NOT NULL,
	slot        integer NOT NULL CHECK (slot > 0),
	holder      text,
	lease_until timestamptz,
	acquired    timestamptz,
	PRIMARY KEY (backend, slot)
);

-- One token bucket per backend and rate (kind 'messages' or 'bytes'),
-- refilled on the database clock: tokens grow by rate per second since
-- updated, up to capacity. granted is what the last take got.
CREATE TABLE mailmig_budget_rates (
	backend  text NOT NULL,
	kind     text NOT NULL,
	rate     double precision NOT NULL CHECK (rate > 0),
	capacity double precision NOT NULL CHECK (capacity > 0),
	tokens   double precision NOT NULL,
	granted  double precision NOT NULL DEFAULT 0,
	updated  timestamptz NOT NULL,
	PRIMARY KEY (backend, kind)
);

-- What an account's archive said after the last pass of the worker that
-- holds it (engine.RecordedObservation as JSON), for plan on machines
-- without the archive.
CREATE TABLE mailmig_observations (
	account text PRIMARY KEY,
	worker  text NOT NULL,
	host    text NOT NULL,
	data    jsonb NOT NULL,
	updated timestamptz NOT NULL DEFAULT now()
);
