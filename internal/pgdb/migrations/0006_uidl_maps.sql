-- POP3 UIDL maps of a fleet (proxy/routes/pgroutes, issue 18): the same
-- two tables as the SQLite route table's pop3_uidl_maps and pop3_uidls.
-- A cut-over writes an account's map before its flip (target UIDL →
-- the UIDL the source gave the same message, for the backend named);
-- every proxy's POP3 front reads it at login. A map is replaced whole,
-- so writing it again is harmless.
CREATE TABLE mailmig_pop3_uidl_maps (
	account text PRIMARY KEY,
	backend text NOT NULL,
	written timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE mailmig_pop3_uidls (
	account text NOT NULL REFERENCES mailmig_pop3_uidl_maps (account) ON DELETE CASCADE,
	target  text NOT NULL,
	source  text NOT NULL,
	PRIMARY KEY (account, target)
);
