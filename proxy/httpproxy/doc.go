// Package httpproxy is the proxy's HTTP side: a reverse proxy for JMAP,
// CalDAV, CardDAV and WebDAV that sends every request to the backend of
// the account it authenticates as.
//
// # Routing
//
// Each request is routed on its own, by its Authorization header:
//
//   - Basic: the user name.
//   - Bearer, Stalwart "sw1." token: the account is the base64url text of
//     the token's last dot segment.
//   - Bearer, JWT: the first of the claims email, preferred_username, upn,
//     sub (configurable) that holds a usable value, preferring values with
//     "@". The signature is not checked: the proxy only routes, the backend
//     authenticates the request and rejects forged tokens.
//   - Bearer, anything else: RFC 7662 introspection at the configured
//     endpoints, cached by the token's SHA-256 until its exp (at most
//     Options.IntrospectionCache; unknown tokens for 30 s).
//
// A request without credentials goes to Options.AnonymousBackend when set
// (CORS preflight, discovery). A request with credentials that no backend
// accepted gets one 401 (body "authentication required", Basic and
// Bearer challenges), whatever the cause: no usable credentials, no route
// and no default backend, a backend without an HTTP endpoint or one that
// cannot be reached, or the backend's own 401, which the proxy replaces
// (its realm and body would name the backend). It comes after
// Options.FailureDelay, so nothing is revealed about which accounts exist.
// A frozen account gets 503 with Retry-After; an unreachable backend 502
// for a request without credentials. With Options.AuthLimiter (the
// proxy.Server), every such 401 counts as a failed login of the client IP,
// and an IP over the limit gets 429 with Retry-After without reaching a
// backend.
//
// # Rewriting
//
// Backends know their own origin, not the proxy's. The proxy therefore
// rewrites, toward the public origin (Options.PublicURL, or the request's
// Host): Location and Content-Location headers that point at the backend
// (DAV and /.well-known redirects; redirects to other hosts, such as an
// identity provider, stay), and the URL properties of a JMAP session
// object (apiUrl, downloadUrl, uploadUrl, eventSourceUrl and the url of
// the urn:ietf:params:jmap:websocket capability), made absolute. Only a
// successful GET answered with application/json whose body is an object
// with apiUrl and capabilities is treated as a session. DAV bodies are not
// rewritten: their hrefs are paths, which stay valid when the backend's
// HTTP endpoint is at the root of its host.
//
// # Streaming and connections
//
// Responses are flushed as they arrive (FlushInterval -1), so EventSource
// streams and long polls are not buffered; WebSocket and other upgrades are
// tunnelled by httputil.ReverseProxy. When an account's route changes, the
// router calls back and the proxy closes that account's idle keep-alive
// connections and upgraded tunnels at once, busy ones after their
// response (Connection: close), and ends EventSource streams
// (text/event-stream) cleanly; clients reconnect and follow the new route.
// That needs the server hooks that Serve or ConfigureServer install;
// proxy.Server installs them on its HTTP listeners (ListenerConfig.HTTP),
// which is how `mailmig proxy` runs the proxy.
//
// A request body that sends nothing for Options.BodyIdleTimeout is cut
// (408): an upload may take as long as it needs while it moves, but a
// client cannot hold a backend connection open by stalling. CONNECT and
// TRACE are refused (405) before routing.
//
// Panics in request handling are recovered, logged and counted (Panics
// and proxy.Panics).
package httpproxy
