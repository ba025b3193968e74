// Package proxy is mailmig's protocol proxy: one host answers IMAP, POP3,
// ManageSieve, submission, SMTP, LMTP and HTTP and sends every session to
// the backend that holds its account, following the route table
// (package routes) as accounts are frozen and cut over.
//
// # Parts
//
//   - Router (router.go) turns an identifier (a login, an address) into a
//     Decision: the route entry and the Backend with its per-protocol
//     Endpoints and login mode. TableRouter implements it over a
//     routes.Watcher. Every protocol package uses the same Router.
//   - Track registers an open session under its account and login
//     identifier. When the account's route changes (flip) or freezes, or
//     the identifier moves (its alias re-pointed or removed, a new default
//     backend), the router calls the session's end function, and the protocol tells the client to go
//     away cleanly (IMAP "* BYE", POP3 close, ManageSieve BYE, HTTP closes
//     idle keep-alives). Clients reconnect and follow the new route.
//   - Await holds a login for a frozen account up to the hold time
//     (default 30 s) and then returns whatever the route names, or
//     ErrFrozen (a temporary failure for the client).
//   - Server (server.go) owns the listeners: TLS termination (implicit or
//     STARTTLS, certificates reloaded on demand, e.g. on SIGHUP), limits
//     on connections per listener and per client IP, a failed-auth rate
//     limit per client IP, pre-auth and idle timeouts (BridgeIdle: traffic
//     either way counts), metrics, HTTP listeners (ListenerConfig.HTTP)
//     under the same limits, and the two-phase
//     shutdown: Shutdown stops accepting and asks every session to end;
//     when its context expires, the remaining connections are closed.
//
// # Invariants
//
//   - The proxy never routes or reveals anything before a backend
//     accepted the client's credentials: every failure before that
//     (unknown account, wrong password, a backend without the protocol or
//     unreachable) is FailUser, answered with the protocol's one
//     authentication failure after the FailureDelay, and the backend's
//     own text is only logged (authfail.go). A frozen account is held
//     only after its backend accepted the credentials.
//   - Credentials and tokens are never logged.
//   - The accept loops never read from a connection: a PROXY header
//     (ListenerConfig.AcceptProxyProtocol) is read on the connection's own
//     goroutine, and only from ListenerConfig.ProxyTrusted (the load
//     balancers); a connection waiting for it holds a listener slot and is
//     counted by the per-IP limit under the header's address once read.
//   - Panics are recovered only at connection boundaries, logged with a
//     stack and counted (Panics); tests fail when the counter is not zero.
package proxy
