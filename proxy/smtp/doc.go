// Package smtp is the proxy's mail-transfer side: the port-25 MX front and
// the LMTP front, which route every recipient by the route table, and the
// submission front, which routes by the authenticated user.
//
// # Lifecycle
//
// NewServer(opts) builds one Server per listener kind (Mode); Serve(ln)
// accepts on a listener (TLS listeners for implicit TLS are fine, STARTTLS
// is offered when Options.TLSConfig is set); Shutdown(ctx) stops accepting,
// ends idle sessions with 421 and lets transactions in progress finish;
// RouteChanged, subscribed to the routes.Watcher, ends the submission
// sessions of an account that was flipped or frozen.
//
// The front is go-smtp's server; backends are reached with go-smtp's client
// after a short prelude on the raw connection that go-smtp cannot do:
// greeting, EHLO/LHLO, STARTTLS when configured, and XCLIENT (Postfix
// extension) when the backend offers it, so the backend logs and checks the
// real client address. After XCLIENT the backend greets anew and the
// go-smtp client takes that greeting as its own.
//
// # Invariants
//
//   - Nothing is accepted that a backend did not accept. RCPT is forwarded
//     to the recipient's backend before the client gets an answer, and the
//     answer is the backend's; the DATA answer is the backend's too.
//   - No open relay: a recipient outside every known domain of the route
//     table gets 550 5.7.1 before any backend is asked.
//   - A frozen account's recipients get 451 4.2.0 so that senders retry
//     after the cut-over. A route that changes between RCPT and the end of
//     DATA makes that backend's transaction fail temporarily (RSET, no
//     data sent), so a message never lands on a backend that is no longer
//     the account's.
//   - From DATA until the backend answered the final dot, the delivery
//     counts as in flight for each recipient's account
//     (proxy.DeliveryTracker, begun before the last route check): the
//     proxy acknowledges a freeze only when none is left, so a slow
//     sender's message lands before the cut-over's final sync starts.
//   - Port 25 (ModeSMTP): the first backend that accepts a recipient owns
//     the transaction; recipients of other backends get 452 4.5.3 and the
//     sender sends them in another transaction (RFC 5321 3.3). With an
//     LMTP backend, per-recipient results are folded into one reply: all
//     delivered → the backend's 250; all failed alike → the first failure;
//     anything mixed → 451 4.3.0 (the sender retries; some recipients may
//     get the message twice, none loses it).
//   - LMTP (ModeLMTP) fans one transaction out to every backend involved,
//     streaming the message once to all of them, and returns one reply per
//     accepted recipient in RCPT order (RFC 2033 4.2), each the backend's
//     own reply or a 4xx when that backend could not be asked.
//   - Submission answers AUTH (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER) only
//     after the backend accepted the client's own credentials
//     (passthrough), and for LoginMaster backends then also the master
//     login for the user; bearer tokens always go to the backend as the
//     client sent them, with the same mechanism (only the backend can
//     check them). Every failure before a backend verified the
//     credentials — unknown user, wrong password, refused token, no
//     submission endpoint, backend down — gets the same 535 after the
//     failure delay (authReplies, proxy.FailClass); 454 only for a frozen
//     account after its hold, a rate-limited address, or a backend
//     problem after the credentials were verified. Credentials go to a
//     backend without TLS only when Backend.AllowPlaintext is set.
//   - Before AUTH (submission) or the first accepted recipient (SMTP,
//     LMTP) every read is bounded by Options.PreAuthTimeout from the
//     connection's start (endConn), so a client trickling bytes is cut off
//     with 421.
//   - A backend that cannot be reached gives 451 4.4.1 (delivery); a
//     backend lost mid-transaction gives 451 4.4.2.
//   - Delivery sessions to backends are pooled (16 idle per backend
//     address, 30 s): after a client session ends, the backend session is
//     RSET and kept; the next client's session reuses it after sending
//     XCLIENT with the new client's attributes (the backend greets anew and
//     the proxy says hello again). A pooled session that went stale is
//     replaced once, transparently. Submission sessions are never pooled:
//     they are authenticated as one user.
//   - go-smtp recovers panics per command; they are logged and counted
//     (Server.Panics, and proxy.Panics, which the tests' TestMain checks).
package smtp
