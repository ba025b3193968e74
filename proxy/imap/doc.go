// Package imap is the proxy's IMAP front (RFC 9051, RFC 3501): it answers
// the not-authenticated state itself, takes the client's login, logs in at
// the account's backend and then bridges the two connections byte for
// byte.
//
// # Not-authenticated state
//
// Commands: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), STARTTLS, LOGIN and
// AUTHENTICATE with PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER (RFC 7628), with
// SASL-IR (RFC 4959) and continuations; literals, including LITERAL+ and
// LITERAL- (RFC 7888). Everything else is a BAD. When the listener has TLS
// but the connection is not encrypted yet, CAPABILITY shows LOGINDISABLED
// and no AUTH= mechanisms, and logins get NO [PRIVACYREQUIRED].
//
// # Login
//
// The identifier (the PLAIN authzid when set, else the login name) is
// looked up with Router.Await, which holds logins of frozen accounts. The
// backend is dialled (HAProxy PROXY v2 or ID x-originating-ip carry the
// client address), and the proxy logs in there:
//   - passthrough: LOGIN and PLAIN are sent as AUTHENTICATE PLAIN with the
//     client's own credentials, tokens (XOAUTH2, OAUTHBEARER) unchanged;
//   - master: the client's password is first checked by a passthrough
//     login on a separate connection to the same backend; the session then
//     logs in with the backend's master credentials ("user*master" or PLAIN
//     authzid). Token logins are always passthrough.
//
// A backend NO is the client's NO, with the backend's response code and
// text; an unknown account gets the same answer as a wrong password. An
// unreachable or frozen backend gets NO [UNAVAILABLE]. On success the
// client's tagged OK carries the backend's CAPABILITY response code, so
// clients see the backend's real capabilities.
//
// # Bridged state
//
// After login the proxy copies bytes in both directions (splice on Linux
// when neither side uses TLS) and does not parse anything. The session is
// registered with Router.Track: when the account's route changes or
// freezes, or the server drains, the backend connection is closed and the
// client gets "* BYE" before its connection is closed. A BYE can land in
// the middle of a response that was being streamed at that moment; clients
// treat the connection as lost in that case, which is what it is.
//
// # Implementation notes
//
//   - Never write to the client from two goroutines: before login every
//     write happens under session.wmu; after login only the bridge writes,
//     and the BYE is written after the backend-to-client copy stopped.
//   - Panics are recovered at the connection boundary by proxy.Server.
package imap
