package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// LevelTrace is the slog level of protocol traces (one record per
// pre-auth command, with the command name only: arguments may hold
// credentials and are never logged).
const LevelTrace = slog.LevelDebug - 4

// Metric names the proxy exports. Labels are given as key, value pairs.
const (
	// MetricConnections counts accepted client connections (proto).
	MetricConnections = "mailmig_proxy_connections_total"
	// MetricConnectionsOpen is the number of open client connections (proto).
	MetricConnectionsOpen = "mailmig_proxy_connections_open"
	// MetricConnectionsRefused counts connections refused by a limit
	// (proto, reason).
	MetricConnectionsRefused = "mailmig_proxy_connections_refused_total"
	// MetricSessions counts sessions bridged to a backend (proto, backend).
	MetricSessions = "mailmig_proxy_sessions_total"
	// MetricSessionsOpen is the number of bridged sessions (proto, backend).
	MetricSessionsOpen = "mailmig_proxy_sessions_open"
	// MetricAuthFailures counts failed logins (proto).
	MetricAuthFailures = "mailmig_proxy_auth_failures_total"
	// MetricRouteLookups counts route lookups (proto, result).
	MetricRouteLookups = "mailmig_proxy_route_lookups_total"
	// MetricBackendErrors counts backends that could not be reached or
	// misbehaved (proto, backend).
	MetricBackendErrors = "mailmig_proxy_backend_errors_total"
	// MetricBytes counts bridged bytes (proto, backend, direction
	// "up" = client to backend, "down" = backend to client).
	MetricBytes = "mailmig_proxy_bytes_total"
	// MetricSessionsEnded counts sessions ended by a route change or
	// freeze (proto).
	MetricSessionsEnded = "mailmig_proxy_sessions_ended_by_route_total"
	// MetricIdleTimeouts counts bridged sessions closed by the idle
	// timeout (proto).
	MetricIdleTimeouts = "mailmig_proxy_idle_timeouts_total"
	// MetricPanics counts recovered panics (proto).
	MetricPanics = "mailmig_proxy_panics_total"
)

// Metrics is a small registry of counters and gauges written in the
// Prometheus text format. It is safe for concurrent use; the zero value is
// not usable, use NewMetrics.
type Metrics struct {
	mu sync.RWMutex
	m  map[string]*atomic.Int64 // series key → value
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics { return &Metrics{m: map[string]*atomic.Int64{}} }

// labelEscaper escapes a label value for the text exposition format.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// seriesKey is the series' line prefix in the exposition format, e.g.
// name{proto="imap"}. It runs several times per session, so it builds the
// string by hand.
func seriesKey(name string, labels []string) string {
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 16*len(labels))
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

func (m *Metrics) series(name string, labels []string) *atomic.Int64 {
	k := seriesKey(name, labels)
	m.mu.RLock()
	v := m.m[k]
	m.mu.RUnlock()
	if v != nil {
		return v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if v = m.m[k]; v == nil {
		v = new(atomic.Int64)
		m.m[k] = v
	}
	return v
}

// Add adds delta to a series (counter or gauge). labels are key, value
// pairs. A nil *Metrics does nothing.
func (m *Metrics) Add(name string, delta int64, labels ...string) {
	if m == nil {
		return
	}
	m.series(name, labels).Add(delta)
}

// Inc adds one to a series.
func (m *Metrics) Inc(name string, labels ...string) { m.Add(name, 1, labels...) }

// Get returns a series' value (for tests).
func (m *Metrics) Get(name string, labels ...string) int64 {
	if m == nil {
		return 0
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if v := m.m[seriesKey(name, labels)]; v != nil {
		return v.Load()
	}
	return 0
}

// WriteTo writes every series in the Prometheus text exposition format,
// sorted.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.RLock()
	keys := make([]string, 0, len(m.m))
	for k := range m.m {
		keys = append(keys, k)
	}
	vals := make(map[string]int64, len(keys))
	for _, k := range keys {
		vals[k] = m.m[k].Load()
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	var n int64
	last := ""
	for _, k := range keys {
		name, _, _ := strings.Cut(k, "{")
		if name != last {
			typ := "counter"
			if strings.HasSuffix(name, "_open") {
				typ = "gauge"
			}
			c, err := fmt.Fprintf(w, "# TYPE %s %s\n", name, typ)
			n += int64(c)
			if err != nil {
				return n, err
			}
			last = name
		}
		c, err := fmt.Fprintf(w, "%s %d\n", k, vals[k])
		n += int64(c)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Values of the result label of MetricRouteLookups, the same for every
// protocol.
const (
	RouteFound   = "found"   // a route (or the default backend) names a backend
	RouteUnknown = "unknown" // no route and no default backend
	RouteFrozen  = "frozen"  // the account stayed frozen for the hold time
	RouteError   = "error"   // the route names an unknown backend, or the lookup failed
)

// RouteResult is the result label for a Router error (nil: RouteFound).
func RouteResult(err error) string {
	switch {
	case err == nil:
		return RouteFound
	case errors.Is(err, ErrUnknown):
		return RouteUnknown
	case errors.Is(err, ErrFrozen):
		return RouteFrozen
	}
	return RouteError
}
