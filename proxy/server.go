package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of Options and ListenerConfig.
const (
	DefaultMaxConns       = 10000
	DefaultMaxConnsPerIP  = 200
	DefaultAuthFailures   = 20
	DefaultAuthWindow     = time.Minute
	DefaultPreAuthTimeout = time.Minute
	DefaultIdleTimeout    = 30 * time.Minute
	// DefaultAuthFailureDelay is in authfail.go.
)

var panics atomic.Int64

// Panics returns how many panics were recovered at connection boundaries
// since the process started. Tests fail when it is not zero.
func Panics() int64 { return panics.Load() }

// CountPanic counts a panic that a protocol package recovered itself (a
// library's own recovery, such as go-smtp's per command, or an HTTP
// handler's): it adds to Panics and to the metric.
func CountPanic(m *Metrics, proto Protocol) {
	panics.Add(1)
	m.Inc(MetricPanics, "proto", string(proto))
}

// Recover is deferred at every connection or goroutine boundary: it turns a
// panic into an error log with a stack and counts it.
func Recover(log *slog.Logger, m *Metrics, proto Protocol) {
	if v := recover(); v != nil {
		CountPanic(m, proto)
		if log != nil {
			log.Error("panic recovered", "err", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}
}

// Options configure a Server. A nil *Options means defaults (and no router,
// which only the admin listener tolerates).
type Options struct {
	// Router routes sessions. Required for protocol listeners.
	Router Router
	// Logger receives logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives metrics. Default: a new registry.
	Metrics *Metrics
	// Certs are the server certificates for implicit TLS and STARTTLS,
	// picked per connection by SNI (see CertStore). Default: none; then
	// STARTTLS is not offered and implicit-TLS listeners cannot be
	// opened.
	Certs *CertStore
	// AuthFailures is how many failed logins a client IP may have per
	// AuthWindow before further logins are refused without asking a
	// backend. Default: 20.
	AuthFailures int
	// AuthWindow is the window of AuthFailures. Default: 1m.
	AuthWindow time.Duration
	// PreAuthTimeout bounds the dialogue before login. Default: 1m.
	PreAuthTimeout time.Duration
	// IdleTimeout closes a session in which nothing moved either way for
	// this long: before login it bounds the wait for each command, after
	// login it applies to the bridged session, where traffic of either
	// side counts (an IMAP IDLE whose backend reports changes stays
	// open). Default: 30m (RFC 9051's minimum autologout timer).
	IdleTimeout time.Duration
	// AuthFailureDelay is the least time a failed login takes, whatever
	// the cause, unknown accounts included (see FailureDelay, which also
	// waits as long as the slowest recent backend refusal). Default: 2s
	// (DefaultAuthFailureDelay); a negative value means no fixed delay.
	AuthFailureDelay time.Duration
}

// Handler serves one client connection of a protocol.
type Handler interface {
	// ServeConn runs the session and returns when it is over; the server
	// closes the connection afterwards. ctx ends when the server stops
	// for good.
	ServeConn(ctx context.Context, c *Conn)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Conn)

// ServeConn calls f.
func (f HandlerFunc) ServeConn(ctx context.Context, c *Conn) { f(ctx, c) }

// ListenerConfig describes one protocol listener.
type ListenerConfig struct {
	// Protocol is the protocol (metrics label, log attribute).
	Protocol Protocol
	// Address to listen on, host:port.
	Address string
	// TLS: TLSImplicit wraps every connection in TLS; TLSStartTLS lets
	// the handler offer STARTTLS (Conn.CanStartTLS); TLSNone offers no
	// TLS. Default: TLSStartTLS when the server has certificates, else
	// TLSNone.
	TLS TLSMode
	// MaxConns limits open connections on this listener. Default: 10000.
	MaxConns int
	// MaxConnsPerIP limits open connections per client IP. Default: 200.
	MaxConnsPerIP int
	// AcceptProxyProtocol expects a HAProxy PROXY (v1 or v2) header on
	// every connection from ProxyTrusted; the client address (for the
	// per-IP limits, the logs and what backends are told) is taken from
	// it. The header is read on the connection's own goroutine, bounded
	// by ProxyHeaderTimeout. Default: false.
	AcceptProxyProtocol bool
	// ProxyTrusted are the networks of the load balancers whose
	// connections must start with a PROXY header. Required with
	// AcceptProxyProtocol: a header is never taken from anyone else, since
	// it could claim any address.
	ProxyTrusted []netip.Prefix
	// ProxyUntrusted is what happens to a connection from outside
	// ProxyTrusted when AcceptProxyProtocol is set. Default: ProxyRefuse.
	ProxyUntrusted ProxyUntrusted
	// ProxyHeaderTimeout bounds the wait for the PROXY header. Default:
	// DefaultProxyHeaderTimeout (5s).
	ProxyHeaderTimeout time.Duration
	// Handler serves connections.
	Handler Handler
	// HTTP, when set instead of Handler, makes the listener an HTTP
	// server with this handler (the JMAP/DAV proxy). The listener's
	// limits and connection metrics apply; TLS is TLSImplicit or
	// TLSNone. A handler with a ConfigureServer(*http.Server) method
	// (httpproxy.Proxy) gets to install its hooks on the server.
	HTTP http.Handler
}

// ServerConfigurer is an http.Handler that wants to configure the
// http.Server it runs on (hooks on connection state); see
// ListenerConfig.HTTP.
type ServerConfigurer interface {
	ConfigureServer(*http.Server)
}

// Server runs the proxy's listeners. Create it with NewServer, add
// listeners with Listen, then Start; stop with Shutdown.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *Metrics
	auth    *authLimiter
	delay   *FailureDelay

	mu        sync.Mutex
	listeners []*listener
	https     []*http.Server
	conns     map[*Conn]struct{}
	started   bool
	draining  bool
	nextID    atomic.Uint64
	wg        sync.WaitGroup
	connCtx   context.Context
	cancelAll context.CancelFunc
}

type listener struct {
	cfg  ListenerConfig
	ln   net.Listener
	open atomic.Int64

	mu    sync.Mutex
	perIP map[netip.Addr]int
}

// NewServer returns a server with the given options.
func NewServer(opts *Options) *Server {
	s := &Server{conns: map[*Conn]struct{}{}}
	if opts != nil {
		s.opts = *opts
	}
	if s.opts.Logger == nil {
		s.opts.Logger = slog.New(slog.DiscardHandler)
	}
	if s.opts.Metrics == nil {
		s.opts.Metrics = NewMetrics()
	}
	if s.opts.AuthFailures <= 0 {
		s.opts.AuthFailures = DefaultAuthFailures
	}
	if s.opts.AuthWindow <= 0 {
		s.opts.AuthWindow = DefaultAuthWindow
	}
	if s.opts.PreAuthTimeout <= 0 {
		s.opts.PreAuthTimeout = DefaultPreAuthTimeout
	}
	if s.opts.IdleTimeout <= 0 {
		s.opts.IdleTimeout = DefaultIdleTimeout
	}
	s.log = s.opts.Logger
	s.metrics = s.opts.Metrics
	s.auth = newAuthLimiter(s.opts.AuthFailures, s.opts.AuthWindow)
	if s.opts.AuthFailureDelay == 0 {
		s.opts.AuthFailureDelay = DefaultAuthFailureDelay
	}
	s.delay = NewFailureDelay(max(s.opts.AuthFailureDelay, 0))
	s.connCtx, s.cancelAll = context.WithCancel(context.Background())
	return s
}

// Router returns the server's router.
func (s *Server) Router() Router { return s.opts.Router }

// Metrics returns the server's metrics registry.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// TLSConfig returns the server TLS configuration, or nil without
// certificates.
func (s *Server) TLSConfig() *tls.Config {
	if s.opts.Certs == nil {
		return nil
	}
	return s.opts.Certs.Config()
}

// AuthAllowedIP reports whether the client IP may try another login; it
// is Conn.AuthAllowed for front ends that have no Conn (HTTP).
func (s *Server) AuthAllowedIP(ip netip.Addr) bool { return s.auth.allowed(ip.Unmap()) }

// AuthFailedIP records a failed login of the client IP on proto; it is
// Conn.AuthFailed for front ends that have no Conn (HTTP).
func (s *Server) AuthFailedIP(ip netip.Addr, proto Protocol) {
	s.auth.failed(ip.Unmap())
	s.metrics.Inc(MetricAuthFailures, "proto", string(proto))
}

// FailureDelay returns the server's failed-login delay, shared by every
// front (HTTP too) so that all of them learn the backends' refusal times.
func (s *Server) FailureDelay() *FailureDelay { return s.delay }

// ReloadTLS reloads every certificate's files (call it on SIGHUP). When
// one fails, all the previous certificates stay in use.
func (s *Server) ReloadTLS() error {
	if s.opts.Certs == nil {
		return nil
	}
	if err := s.opts.Certs.Reload(); err != nil {
		return err
	}
	s.log.Info("tls certificates reloaded", "count", s.opts.Certs.Len())
	return nil
}

// Listen opens a listener now (so that its address is known before Start)
// and returns its address.
func (s *Server) Listen(cfg ListenerConfig) (net.Addr, error) {
	if cfg.Handler == nil && cfg.HTTP == nil {
		return nil, fmt.Errorf("listen %s %s: no handler", cfg.Protocol, cfg.Address)
	}
	if cfg.HTTP != nil && cfg.TLS == TLSStartTLS {
		return nil, fmt.Errorf("listen %s %s: HTTP has no STARTTLS", cfg.Protocol, cfg.Address)
	}
	if cfg.TLS == "" && cfg.HTTP != nil {
		cfg.TLS = TLSNone
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSNone
		if s.opts.Certs != nil {
			cfg.TLS = TLSStartTLS
		}
	}
	if cfg.TLS != TLSNone && s.opts.Certs == nil {
		return nil, fmt.Errorf("listen %s %s: tls %s needs a certificate and key", cfg.Protocol, cfg.Address, cfg.TLS)
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if cfg.AcceptProxyProtocol {
		if len(cfg.ProxyTrusted) == 0 {
			return nil, fmt.Errorf("listen %s %s: the proxy protocol needs the trusted networks of the load balancers", cfg.Protocol, cfg.Address)
		}
		switch cfg.ProxyUntrusted {
		case "":
			cfg.ProxyUntrusted = ProxyRefuse
		case ProxyRefuse, ProxyPlain:
		default:
			return nil, fmt.Errorf("listen %s %s: unknown handling %q of untrusted proxy protocol sources", cfg.Protocol, cfg.Address, cfg.ProxyUntrusted)
		}
		if cfg.ProxyHeaderTimeout <= 0 {
			cfg.ProxyHeaderTimeout = DefaultProxyHeaderTimeout
		}
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Protocol, err)
	}
	l := &listener{cfg: cfg, ln: ln, perIP: map[netip.Addr]int{}}
	if cfg.HTTP != nil {
		return s.serveHTTP(l)
	}
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	started := s.started
	s.mu.Unlock()
	if started {
		s.serve(l)
	}
	return ln.Addr(), nil
}

// ListenHTTP serves an http.Handler (the JMAP/DAV proxy, or the admin
// endpoint) on addr, with TLS when tlsMode is TLSImplicit. Shutdown stops
// it gracefully. It returns the bound address.
func (s *Server) ListenHTTP(addr string, tlsMode TLSMode, h http.Handler) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen http: %w", err)
	}
	if tlsMode == TLSImplicit {
		if s.opts.Certs == nil {
			ln.Close()
			return nil, fmt.Errorf("listen http %s: tls needs a certificate and key", addr)
		}
		ln = tls.NewListener(ln, s.opts.Certs.Config())
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.https = append(s.https, hs)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener", "addr", addr, "err", err)
		}
	}()
	return ln.Addr(), nil
}

// bodyDrainDeadline bounds what net/http reads after h returns. To keep a
// connection, the server drains up to 256 KiB of a request body the
// handler left unread, with no deadline of its own (ReadTimeout would also
// cut long uploads): a client refused at once (401 without credentials)
// could trickle that body in forever (slow POST). The drain gets d; the
// server sets its own deadlines again before the next request.
func bodyDrainDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		// Fails harmlessly on a hijacked connection (an upgrade).
		http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
	})
}

// serveHTTP serves an HTTP listener at once: connections are admitted by
// the listener's limits and counted like stream connections.
func (s *Server) serveHTTP(l *listener) (net.Addr, error) {
	var ln net.Listener = newHTTPListener(s, l)
	if l.cfg.TLS == TLSImplicit {
		ln = tls.NewListener(ln, s.opts.Certs.Config())
	}
	// Every HTTP request authenticates in its head, so the head is the
	// pre-auth dialogue: a client that trickles it in (slowloris) is cut
	// off by the pre-auth timeout when that is shorter than 30 s.
	headTimeout := min(30*time.Second, s.opts.PreAuthTimeout)
	hs := &http.Server{
		Handler:           l.cfg.HTTP,
		ReadHeaderTimeout: headTimeout,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if c, ok := l.cfg.HTTP.(ServerConfigurer); ok {
		c.ConfigureServer(hs)
	}
	hs.Handler = bodyDrainDeadline(hs.Handler, headTimeout)
	s.mu.Lock()
	s.https = append(s.https, hs)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener", "addr", l.ln.Addr().String(), "err", err)
		}
	}()
	return l.ln.Addr(), nil
}

// httpListener applies a listener's limits and connection metrics to an
// http.Server's connections. With the PROXY protocol its own goroutine
// accepts, each connection's header is read on a goroutine of its own, and
// Accept hands out the connections whose header was read: http.Server's
// accept loop never waits for a header.
type httpListener struct {
	net.Listener
	s *Server
	l *listener

	// With AcceptProxyProtocol only.
	ready     chan net.Conn
	failed    chan error
	done      chan struct{}
	closeOnce sync.Once
}

func newHTTPListener(s *Server, l *listener) *httpListener {
	hl := &httpListener{Listener: l.ln, s: s, l: l}
	if l.cfg.AcceptProxyProtocol {
		hl.ready, hl.failed, hl.done = make(chan net.Conn), make(chan error, 1), make(chan struct{})
		go hl.acceptProxied()
	}
	return hl
}

// Accept implements net.Listener.
func (hl *httpListener) Accept() (net.Conn, error) {
	if hl.ready == nil {
		for {
			nc, err := hl.Listener.Accept()
			if err != nil {
				return nil, err
			}
			if c := hl.admit(nc); c != nil {
				return c, nil
			}
		}
	}
	select {
	case c := <-hl.ready:
		return c, nil
	case err := <-hl.failed:
		return nil, err
	case <-hl.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (hl *httpListener) Close() error {
	if hl.done != nil {
		hl.closeOnce.Do(func() { close(hl.done) })
	}
	return hl.Listener.Close()
}

// acceptProxied accepts for a listener with the PROXY protocol.
func (hl *httpListener) acceptProxied() {
	var delay time.Duration
	for {
		nc, err := hl.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				hl.failed <- err
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			hl.s.log.Warn("accept", "proto", string(hl.l.cfg.Protocol), "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go func() {
			defer Recover(hl.s.log, hl.s.metrics, hl.l.cfg.Protocol)
			c := hl.admit(nc)
			if c == nil {
				return
			}
			select {
			case hl.ready <- c:
			case <-hl.done:
				c.Close()
			}
		}()
	}
}

// admit applies the listener's limits to a new connection (reading its
// PROXY header when it comes from a trusted balancer) and returns it
// wrapped so that closing it gives its slot back, or nil when it was
// refused and closed.
func (hl *httpListener) admit(nc net.Conn) net.Conn {
	proto := string(hl.l.cfg.Protocol)
	hl.s.metrics.Inc(MetricConnections, "proto", proto)
	ip := addrPort(nc.RemoteAddr()).Addr()
	header, reason := hl.l.arrive(ip)
	if reason != "" {
		hl.s.metrics.Inc(MetricConnectionsRefused, "proto", proto, "reason", reason)
		nc.Close()
		return nil
	}
	if header {
		pc, client, _, reason := hl.s.proxyHeader(hl.l, nc, hl.s.log.With("proto", proto))
		if reason != "" {
			hl.l.leave(ip, false)
			nc.Close()
			return nil
		}
		nc, ip = pc, client.Addr()
	}
	hl.s.metrics.Add(MetricConnectionsOpen, 1, "proto", proto)
	return &httpConn{Conn: nc, release: func() {
		hl.l.release(ip)
		hl.s.metrics.Add(MetricConnectionsOpen, -1, "proto", proto)
	}}
}

// httpConn releases its listener slot once, on the first Close.
type httpConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Close implements net.Conn.
func (c *httpConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// AdminHandler returns the health and metrics endpoint: GET /healthz
// answers 200 "ok" (503 "draining" during shutdown), GET /metrics the
// Prometheus text format.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		draining := s.draining
		s.mu.Unlock()
		if draining {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.metrics.WriteTo(w)
	})
	return mux
}

// Start starts accepting on every listener opened so far (and on later
// ones as they are opened).
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	for _, l := range s.listeners {
		s.serve(l)
	}
}

func (s *Server) serve(l *listener) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.accept(l)
	}()
}

func (s *Server) accept(l *listener) {
	proto := string(l.cfg.Protocol)
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE …): back off instead of spinning.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			s.log.Warn("accept", "proto", proto, "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.metrics.Inc(MetricConnections, "proto", proto)
		ap := addrPort(nc.RemoteAddr())
		header, reason := l.arrive(ap.Addr())
		if reason != "" {
			s.metrics.Inc(MetricConnectionsRefused, "proto", proto, "reason", reason)
			s.log.Debug("connection refused", "proto", proto, "addr", ap.String(), "reason", reason)
			nc.Close()
			continue
		}
		c := &Conn{
			Conn:      nc,
			raw:       nc,
			ID:        s.nextID.Add(1),
			Proto:     l.cfg.Protocol,
			Client:    ap,
			Local:     addrPort(nc.LocalAddr()),
			srv:       s,
			lis:       l,
			header:    header,
			ipCounted: !header,
		}
		c.Log = s.log.With("cid", strconv.FormatUint(c.ID, 10), "proto", proto)
		s.mu.Lock()
		if s.draining {
			s.mu.Unlock()
			l.leave(ap.Addr(), c.ipCounted)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(l, c)
	}
}

func (s *Server) handle(l *listener, c *Conn) {
	proto := string(l.cfg.Protocol)
	s.metrics.Add(MetricConnectionsOpen, 1, "proto", proto)
	defer func() {
		c.Close()
		l.leave(c.Client.Addr(), c.ipCounted)
		s.metrics.Add(MetricConnectionsOpen, -1, "proto", proto)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	defer Recover(c.Log, s.metrics, l.cfg.Protocol)
	if c.header {
		// Read here, not in the accept loop: a balancer's connection that
		// sends nothing holds up only itself.
		nc, client, local, reason := s.proxyHeader(l, c.Conn, c.Log)
		if reason != "" {
			return
		}
		c.Conn, c.Client, c.Local, c.ipCounted = nc, client, local, true
	}
	if l.cfg.TLS == TLSImplicit {
		tc := tls.Server(c.Conn, s.opts.Certs.Config())
		c.SetDeadline(time.Now().Add(s.opts.PreAuthTimeout))
		if err := tc.HandshakeContext(s.connCtx); err != nil {
			c.Log.Debug("tls handshake", "err", err)
			return
		}
		c.SetDeadline(time.Time{})
		c.Conn = tc
		c.tls = true
	}
	l.cfg.Handler.ServeConn(s.connCtx, c)
}

// proxyHeader reads the PROXY header of a connection from a trusted load
// balancer and admits the client address it names by the per-IP limit. On
// failure it counts the refusal and returns its reason; the caller closes
// the connection, which then leaves the listener without an IP count.
func (s *Server) proxyHeader(l *listener, nc net.Conn, log *slog.Logger) (net.Conn, netip.AddrPort, netip.AddrPort, string) {
	proto := string(l.cfg.Protocol)
	pc, client, local, err := l.readProxyHeader(s.connCtx, nc)
	if err != nil {
		s.metrics.Inc(MetricConnectionsRefused, "proto", proto, "reason", "proxy-header")
		log.Info("proxy protocol header refused", "addr", client.String(), "err", err)
		return nil, client, local, "proxy-header"
	}
	if reason := l.admitIP(client.Addr()); reason != "" {
		s.metrics.Inc(MetricConnectionsRefused, "proto", proto, "reason", reason)
		log.Debug("connection refused", "addr", client.String(), "reason", reason)
		return nil, client, local, reason
	}
	log.Debug("proxy protocol header", "addr", client.String(), "balancer", addrPort(nc.RemoteAddr()).String())
	return pc, client, local, ""
}

// arrive admits a new connection from peer before anything is read from
// it. header is true for a connection from a trusted load balancer: it
// holds a slot of the listener now and is admitted by its client address
// (admitIP) once its PROXY header was read. reason says why the connection
// is refused, or is "".
func (l *listener) arrive(peer netip.Addr) (header bool, reason string) {
	if l.cfg.AcceptProxyProtocol {
		if l.trusted(peer) {
			return true, l.reserve()
		}
		if l.cfg.ProxyUntrusted != ProxyPlain {
			return false, "proxy-untrusted"
		}
	}
	return false, l.admit(peer)
}

// reserve takes a slot of the listener without counting a client IP.
func (l *listener) reserve() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int(l.open.Load()) >= l.cfg.MaxConns {
		return "listener-limit"
	}
	l.open.Add(1)
	return ""
}

// admitIP counts a client IP on a slot taken by reserve.
func (l *listener) admitIP(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip] >= l.cfg.MaxConnsPerIP {
		return "ip-limit"
	}
	l.perIP[ip]++
	return ""
}

// leave gives back the slot of a connection, and its IP count when it was
// admitted by IP.
func (l *listener) leave(ip netip.Addr, ipCounted bool) {
	if ipCounted {
		l.release(ip)
		return
	}
	l.open.Add(-1)
}

func (l *listener) admit(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int(l.open.Load()) >= l.cfg.MaxConns {
		return "listener-limit"
	}
	if l.perIP[ip] >= l.cfg.MaxConnsPerIP {
		return "ip-limit"
	}
	l.perIP[ip]++
	l.open.Add(1)
	return ""
}

func (l *listener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
	l.open.Add(-1)
}

// Shutdown stops the server in two phases. First it closes the listeners
// and asks every open session to end (its OnEnd function: a protocol
// goodbye such as IMAP "* BYE"; sessions without one are closed), then
// waits for the sessions to finish. When ctx ends before that, every
// remaining connection is closed and Shutdown returns ctx's error after the
// handlers returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for _, l := range s.listeners {
		l.ln.Close()
	}
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	https := s.https
	s.mu.Unlock()
	// HTTP requests in flight may finish too (the waits join s.wg).
	s.wg.Add(len(https))
	for _, hs := range https {
		go func() {
			defer s.wg.Done()
			hs.Shutdown(ctx)
		}()
	}
	for _, c := range conns {
		c.end("server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancelAll()
		return nil
	case <-ctx.Done():
	}
	s.cancelAll()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
	}
	s.mu.Unlock()
	for _, hs := range https {
		hs.Close()
	}
	<-done
	return ctx.Err()
}

// OpenConns returns the number of open client connections.
func (s *Server) OpenConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// authLimiter is a token bucket of failed logins per client IP.
type authLimiter struct {
	n      int
	window time.Duration
	mu     sync.Mutex
	m      map[netip.Addr]*rate.Limiter
	swept  time.Time
}

func newAuthLimiter(n int, window time.Duration) *authLimiter {
	return &authLimiter{n: n, window: window, m: map[netip.Addr]*rate.Limiter{}}
}

func (a *authLimiter) allowed(ip netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.m[ip]
	return l == nil || l.Tokens() >= 1
}

func (a *authLimiter) failed(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	if now.Sub(a.swept) > a.window {
		for k, l := range a.m {
			if l.TokensAt(now) >= float64(a.n) {
				delete(a.m, k)
			}
		}
		a.swept = now
	}
	l := a.m[ip]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(float64(a.n)/a.window.Seconds()), a.n)
		a.m[ip] = l
	}
	l.AllowN(now, 1)
}
