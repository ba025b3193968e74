-- Pending marks (proxy/routes/pgroutes): an account that an apply has
-- started to migrate and that has a cut-over ahead. The mark is a route
-- change of its own (seq, logged as kind 'pending'), so every proxy holds
-- it in its table and records in mailmig_proxies.applied that it has seen
-- it. A proxy that lost the database for longer than its lease refuses the
-- accounts it knows as pending, and a barrier may leave such a proxy out
-- only if it had applied the account's mark (applied >= seq): a proxy that
-- never saw the mark may still be routing the account to its source.
-- The mark goes when the account is active on target (the unfreeze that
-- ends its cut-over, in the same change) or leaves the plan.
CREATE TABLE mailmig_route_pending (
	account text PRIMARY KEY,
	target  text NOT NULL,
	seq     bigint NOT NULL,
	marked  timestamptz NOT NULL DEFAULT now()
);
