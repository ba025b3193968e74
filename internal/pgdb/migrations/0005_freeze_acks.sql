-- Freeze acknowledgements of a fleet (proxy/routes/pgroutes, acks.go): the
-- PostgreSQL side of issue 15's freeze_acks. A proxy acknowledges a frozen
-- route's generation once the account has no session and no SMTP/LMTP
-- delivery in flight on it; a cut-over waits for that from every live
-- proxy that acknowledges freezes (acks_freezes), and for the applied
-- change number from the others (proxies of a release without acks).
ALTER TABLE mailmig_proxies ADD COLUMN acks_freezes boolean NOT NULL DEFAULT false;

-- One row per frozen account and proxy: the highest generation the proxy
-- made quiet. Written only while the route is frozen at that generation;
-- the route write that unfreezes (or deletes) the account removes its
-- rows, so the table holds the accounts in a cut-over, not every account
-- ever frozen.
CREATE TABLE mailmig_freeze_acks (
	account    text NOT NULL,
	proxy      text NOT NULL,
	generation bigint NOT NULL,
	acked      timestamptz NOT NULL,
	PRIMARY KEY (account, proxy)
);
