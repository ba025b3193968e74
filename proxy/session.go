package proxy

import (
	"context"
	"net"
	"sync"
)

// BridgeSession runs the bridged phase of a proxied session once the
// client has been told it is logged in. IMAP, POP3 and ManageSieve share
// this lifecycle, so it lives here once and the protocols differ only in
// their goodbye line:
//
//   - it registers the session with c.OnEnd and the router (Track), so a
//     route change, a freeze or the server's shutdown closes the backend
//     connection; the untrack runs after the bridge;
//   - it counts MetricSessions and keeps MetricSessionsOpen for the
//     session's lifetime (labels proto and backend);
//   - a session the router ends (route change or freeze) is counted in
//     MetricSessionsEnded when the router asks, whether or not the
//     protocol has a goodbye, so POP3 sessions count too; the server's
//     shutdown is not a route change and is not counted;
//   - drop then hands over the bytes already buffered from the client and
//     the backend (Pending) and drops the protocol's pre-auth buffers,
//     under the protocol's own write lock, so an idle bridged session
//     holds none;
//   - it copies bytes with BridgeIdle and c.IdleTimeout, and afterwards
//     counts MetricIdleTimeouts and MetricBytes (up and down).
//
// goodbye, when not nil, is what the client is told before its side is
// closed because the backend side ended: reason is why the session was
// asked to end (the route change's reason, or the server's shutdown; ""
// if none), idle whether the idle timeout hit. With a nil goodbye (POP3
// has no unsolicited response) the client is just closed. BridgeSession
// returns BridgeIdle's results.
func BridgeSession(ctx context.Context, c *Conn, d Decision, proto Protocol, backend net.Conn, drop func() (clientPending, backendPending []byte), goodbye func(reason string, idle bool)) (up, down int64, idled bool) {
	m := c.Metrics()
	p := string(proto)
	var mu sync.Mutex
	var reason string
	end := func(r string, byRoute bool) {
		mu.Lock()
		first := reason == ""
		if first {
			reason = r
		}
		mu.Unlock()
		// Counted here, before the client sees its connection end, so
		// that the metric is up to date when a client reconnects.
		if first && byRoute {
			m.Inc(MetricSessionsEnded, "proto", p)
		}
		backend.Close()
	}
	c.OnEnd(func(r string) { end(r, false) })
	untrack := c.Router().Track(d, proto, func(r string) { end(r, true) })
	defer untrack()
	labels := []string{"proto", p, "backend", d.Backend.Name}
	m.Inc(MetricSessions, labels...)
	m.Add(MetricSessionsOpen, 1, labels...)
	defer m.Add(MetricSessionsOpen, -1, labels...)
	cp, bp := drop()
	var bye func(idle bool)
	if goodbye != nil {
		bye = func(idle bool) {
			mu.Lock()
			r := reason
			mu.Unlock()
			goodbye(r, idle)
		}
	}
	up, down, idled = BridgeIdle(ctx, c.Conn, cp, backend, bp, c.IdleTimeout(), bye)
	if idled {
		m.Inc(MetricIdleTimeouts, "proto", p)
	}
	m.Add(MetricBytes, up, "proto", p, "backend", d.Backend.Name, "direction", "up")
	m.Add(MetricBytes, down, "proto", p, "backend", d.Backend.Name, "direction", "down")
	return up, down, idled
}
