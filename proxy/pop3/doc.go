// Package pop3 is the proxy's POP3 front (RFC 1939): it answers the
// AUTHORIZATION state itself — CAPA (RFC 2449), STLS (RFC 2595), USER and
// PASS, AUTH with PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER and initial
// responses (RFC 5034), QUIT — then logs in at the account's backend and
// bridges the two connections.
//
// Replies follow RFC 3206 response codes: a wrong password or unknown
// account is "-ERR [AUTH]" (the same for both), an unavailable, frozen or
// unreachable backend "-ERR [SYS/TEMP]", too many failed logins from one
// address "-ERR [LOGIN-DELAY]". The backend's own "+OK" greeting after
// login reaches the client unchanged. When the account's route changes or
// freezes, the session is closed (POP3 has no unsolicited goodbye); clients
// reconnect and follow the route.
//
// For an account with a POP3 UIDL map for its current backend (written by
// the cut-over; Options.UIDLs), the session is not spliced: a relay reads
// the TRANSACTION state command by command and answers UIDL through the
// map, so messages keep the UIDLs the source gave them and new ones get
// "~"-prefixed UIDLs that cannot collide (uidl.go). Everything else passes
// unchanged.
//
// The client address reaches the backend by HAProxy PROXY v2 or by XCLIENT
// (Dovecot accepts XCLIENT ADDR= from login_trusted_networks).
//
// Implementation note: migadu/go-pop3 was considered as the front; its
// server wants to own the whole session, and the AUTHORIZATION state is
// small, so the proxy parses it itself with the shared wire reader.
package pop3
