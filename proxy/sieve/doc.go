// Package sieve is the proxy's ManageSieve front (RFC 5804): it sends its
// own capability block as the greeting, answers CAPABILITY, NOOP, LOGOUT
// and STARTTLS, takes AUTHENTICATE (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER;
// initial response and SASL responses as quoted strings or literals), logs
// in at the account's backend and bridges the two connections.
//
// After login the client talks to the backend directly, so CAPABILITY then
// shows the backend's real SIEVE extensions. Before login the SIEVE list is
// Options.Sieve (default: Dovecot Pigeonhole's common set).
//
// Replies: a wrong password or an unknown account gets the backend's NO (or
// the same generic NO); a frozen, unknown or unreachable backend gets
// NO (TRYLATER). When the account's route changes or freezes, the client
// gets BYE (TRYLATER) and the connection closes.
package sieve
