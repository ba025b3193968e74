package httpproxy

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailmig/mailmig/proxy"
)

// Options configure a Proxy. A nil *Options is invalid: Router is required.
type Options struct {
	// Router finds each request's backend and ends keep-alives of flipped
	// accounts. Required.
	Router proxy.Router
	// PublicURL is the proxy's public origin ("https://mail.example.org"),
	// written into JMAP session URLs and redirects. Default: derived from
	// each request (its Host header, https when it came over TLS).
	PublicURL string
	// AnonymousBackend names the backend that gets requests without
	// credentials (CORS preflight, unauthenticated discovery); the router
	// must be a *proxy.TableRouter (or have its Backend method). Default:
	// none, such requests get 401 from the proxy.
	AnonymousBackend string
	// RetryAfter is the Retry-After of a 503 for a frozen account.
	// Default: 30 s.
	RetryAfter time.Duration
	// JWTClaims name the account in a JWT, tried in order. Default:
	// DefaultJWTClaims.
	JWTClaims []string
	// Introspection endpoints for opaque bearer tokens (RFC 7662), asked
	// in order.
	Introspection []Introspection
	// IntrospectionCache bounds how long an introspection answer is kept
	// (never beyond the token's exp). Default: 5 minutes.
	IntrospectionCache time.Duration
	// Transport reaches the backends. Default: a clone of
	// http.DefaultTransport with more idle connections per host.
	Transport http.RoundTripper
	// MaxSessionBytes bounds a JMAP session object the proxy rewrites.
	// Default: 4 MiB.
	MaxSessionBytes int64
	// BodyIdleTimeout cuts a request body that sends nothing for this
	// long: an authenticated client trickling an upload would otherwise
	// hold a backend connection (and the account's freeze) open forever.
	// A whole upload may take as long as it needs. Default: 60 s.
	BodyIdleTimeout time.Duration
	// FailureDelay makes every refused request with credentials take the
	// same time (see proxy.FailureDelay; the proxy.Server's, so that all
	// fronts learn the backends' refusal times). Nil: no delay.
	FailureDelay *proxy.FailureDelay
	// AuthLimiter limits failed logins per client IP; *proxy.Server is
	// one (its AuthFailures per AuthWindow). A request with credentials
	// from an IP over the limit gets 429 with Retry-After without
	// reaching a backend; a 401 to a request with credentials (the
	// backend's, or the proxy's for an unknown account or unusable
	// token) counts as a failure. Nil: no limit.
	AuthLimiter AuthLimiter
	// Logger receives the log; nil discards.
	Logger *slog.Logger
	// Metrics receives counters: route lookups, requests per backend
	// (as sessions), backend errors. Nil: none.
	Metrics *proxy.Metrics
}

// AuthLimiter is the per-client-IP failed-login limit (*proxy.Server).
type AuthLimiter interface {
	// AuthAllowedIP reports whether ip may try another login.
	AuthAllowedIP(ip netip.Addr) bool
	// AuthFailedIP records a failed login of ip.
	AuthFailedIP(ip netip.Addr, proto proxy.Protocol)
}

// Proxy is the HTTP reverse proxy for JMAP, CalDAV, CardDAV and WebDAV.
// It is an http.Handler; use Serve (or ConfigureServer on an http.Server
// of one's own) so that it can also close idle keep-alive connections of
// accounts whose route changed.
type Proxy struct {
	opts   Options
	log    *slog.Logger
	rp     *httputil.ReverseProxy
	intro  *introspector
	public *url.URL

	targets sync.Map // backend name → *url.URL
	conns   sync.Map // net.Conn → *connState
	panics  atomic.Int64

	mu  sync.Mutex
	srv []*http.Server
}

var _ http.Handler = (*Proxy)(nil)

// New checks opts and returns a Proxy.
func New(opts *Options) (*Proxy, error) {
	if opts == nil || opts.Router == nil {
		return nil, errors.New("http proxy: a router is required")
	}
	o := *opts
	if o.RetryAfter <= 0 {
		o.RetryAfter = 30 * time.Second
	}
	if o.IntrospectionCache <= 0 {
		o.IntrospectionCache = 5 * time.Minute
	}
	if o.MaxSessionBytes <= 0 {
		o.MaxSessionBytes = 4 << 20
	}
	if o.BodyIdleTimeout <= 0 {
		o.BodyIdleTimeout = 60 * time.Second
	}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.ResponseHeaderTimeout = 0
		o.Transport = t
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{opts: o, log: log.With("proto", string(proxy.HTTP))}
	if o.PublicURL != "" {
		u, err := url.Parse(o.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("http proxy: public URL %q is not an http(s) origin", o.PublicURL)
		}
		p.public = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	p.intro = &introspector{
		endpoints: o.Introspection,
		client:    &http.Client{Transport: o.Transport, Timeout: 10 * time.Second},
		maxTTL:    o.IntrospectionCache,
		negTTL:    30 * time.Second,
		now:       time.Now,
		cache:     make(map[string]cached),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      routeTransport{p},
		FlushInterval:  -1, // EventSource and long polls reach the client at once
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		BufferPool:     bufferPool{},
	}
	return p, nil
}

// Panics returns how many panics were recovered in request handling.
func (p *Proxy) Panics() int64 { return p.panics.Load() }

// ConfigureServer installs the proxy on srv: Handler, and ConnContext and
// ConnState hooks (chained with existing ones) that let the proxy close
// keep-alive connections of flipped accounts.
func (p *Proxy) ConfigureServer(srv *http.Server) {
	srv.Handler = p
	prevCtx, prevState := srv.ConnContext, srv.ConnState
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevCtx != nil {
			ctx = prevCtx(ctx, c)
		}
		cs := &connState{conn: c}
		p.conns.Store(c, cs)
		return context.WithValue(ctx, connKey{}, cs)
	}
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if prevState != nil {
			prevState(c, st)
		}
		v, ok := p.conns.Load(c)
		if !ok {
			return
		}
		cs := v.(*connState)
		switch st {
		case http.StateIdle:
			cs.setIdle(true)
		case http.StateActive:
			cs.setIdle(false)
		case http.StateHijacked:
			cs.setHijacked()
		case http.StateClosed:
			cs.close()
			p.conns.Delete(c)
		}
	}
}

// Serve serves HTTP on ln (a TLS listener for HTTPS) until Shutdown.
func (p *Proxy) Serve(ln net.Listener) error {
	srv := &http.Server{ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	p.ConfigureServer(srv)
	p.mu.Lock()
	p.srv = append(p.srv, srv)
	p.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the servers started by Serve gracefully: idle
// connections and upgraded tunnels close at once, requests in flight may
// finish until ctx ends; then the rest is closed.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	srvs := p.srv
	p.mu.Unlock()
	// http.Server does not track upgraded connections (WebSocket).
	p.conns.Range(func(_, v any) bool {
		if cs := v.(*connState); cs.isHijacked() {
			cs.conn.Close()
		}
		return true
	})
	var first error
	for _, s := range srvs {
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
			if first == nil {
				first = err
			}
		}
	}
	return first
}

type connKey struct{}
type reqKey struct{}

// reqInfo travels with a request from ServeHTTP to the reverse proxy hooks.
type reqInfo struct {
	target  *url.URL
	rt      http.RoundTripper
	public  *url.URL
	backend string
	account string
	cs      *connState
	// cancel ends the request toward the backend; a stream that the
	// account's flip ends uses it to stop waiting for the next event.
	cancel context.CancelFunc
	// body is the request body, when it has one.
	body *idleBody
}

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.panics.Add(1)
			proxy.CountPanic(p.opts.Metrics, proxy.HTTP)
			p.log.Error("panic recovered", "err", fmt.Sprint(v), "path", r.URL.Path)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		// Not a JMAP or DAV method: CONNECT would ask a backend to open a
		// tunnel with the client's credentials, TRACE would echo them.
		// Refused before any routing, the same for every client.
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, PROPFIND, PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK, REPORT, MKCALENDAR, ACL")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	client, limited := p.clientIP(r)
	if limited && !p.opts.AuthLimiter.AuthAllowedIP(client) {
		p.log.Debug("too many failed logins", "client", client.String())
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many failed logins, try again later", http.StatusTooManyRequests)
		return
	}
	var ar *authReq
	if r.Header.Get("Authorization") != "" {
		ar = &authReq{p: p, start: time.Now(), client: client, limited: limited}
		ctx = context.WithValue(ctx, authKey{}, ar)
		r = r.WithContext(ctx)
	}
	id, err := p.identify(ctx, r)
	if err == nil && id == "" && p.opts.AnonymousBackend != "" {
		if br, ok := p.opts.Router.(interface {
			Backend(string) (*proxy.Backend, bool)
		}); ok {
			if b, ok := br.Backend(p.opts.AnonymousBackend); ok {
				p.forward(w, r, b, "")
				return
			}
		}
	}
	if err != nil || id == "" {
		if err != nil {
			p.log.Debug("request without usable credentials", "err", err)
			ar.failed(ctx)
		}
		unauthorized(w.Header(), r)
		http.Error(w, unauthorizedBody, http.StatusUnauthorized)
		return
	}
	dec, err := p.opts.Router.Lookup(ctx, id)
	m := p.opts.Metrics
	switch {
	case errors.Is(err, proxy.ErrUnknown):
		m.Inc(proxy.MetricRouteLookups, "proto", string(proxy.HTTP), "result", proxy.RouteUnknown)
		p.log.Debug("request for unknown account", "user", proxy.LogUser(id))
		p.refuse(ctx, w, r, ar)
		return
	case err != nil:
		// A route to a backend that is not configured: answered as an
		// unknown account, before any backend checked the credentials.
		m.Inc(proxy.MetricRouteLookups, "proto", string(proxy.HTTP), "result", proxy.RouteError)
		p.log.Error("route lookup failed", "err", err)
		p.refuse(ctx, w, r, ar)
		return
	}
	log := p.log.With("user", dec.Account(), "backend", dec.Route.Backend)
	if dec.Frozen() {
		m.Inc(proxy.MetricRouteLookups, "proto", string(proxy.HTTP), "result", proxy.RouteFrozen)
		log.Debug("request for frozen account")
		p.unavailable(w, "account is being migrated, try again later")
		return
	}
	m.Inc(proxy.MetricRouteLookups, "proto", string(proxy.HTTP), "result", proxy.RouteFound)
	var cs *connState
	if v := ctx.Value(connKey{}); v != nil {
		cs = v.(*connState)
		cs.bind(dec, p.opts.Router)
	}
	p.forwardConn(w, r, dec.Backend, dec.Account(), cs)
}

// unauthorizedBody is the body of every 401, the proxy's own and the
// backends' (which the proxy replaces): one answer whatever the cause.
const unauthorizedBody = "authentication required"

// unauthorized sets the challenges of every 401 (RFC 9110 11.6.1): Basic
// and Bearer, as the proxy routes both. A request that presented a bearer
// token is told error="invalid_token" (RFC 6750 3.1), so that clients
// refresh it; that depends only on the request, never on the account.
func unauthorized(h http.Header, r *http.Request) {
	h.Set("WWW-Authenticate", `Basic realm="mail", charset="UTF-8"`)
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if strings.EqualFold(scheme, "Bearer") {
		h.Add("WWW-Authenticate", `Bearer realm="mail", error="invalid_token"`)
		return
	}
	h.Add("WWW-Authenticate", `Bearer realm="mail"`)
}

// authKey is the context key of a request's *authReq.
type authKey struct{}

// authReq is what the proxy knows of a request that carries credentials:
// when they arrived and whether the failed-login limit applies.
type authReq struct {
	p       *Proxy
	start   time.Time
	client  netip.Addr
	limited bool
}

// failed counts a failed login toward the client's limit and waits for
// the failure delay, so that every failure, whatever its cause, is
// answered alike and after the same time. A nil *authReq (a request
// without credentials) does nothing.
func (a *authReq) failed(ctx context.Context) {
	if a == nil {
		return
	}
	if a.limited {
		a.p.opts.AuthLimiter.AuthFailedIP(a.client, proxy.HTTP)
	}
	a.p.opts.FailureDelay.Wait(ctx, a.start)
}

// refuse answers a request with credentials that no backend accepted, or
// that no backend could check (unknown account, no HTTP endpoint, backend
// unreachable), with the one 401, after the failure delay. A request
// without credentials here (the anonymous backend has no endpoint) gets
// 503.
func (p *Proxy) refuse(ctx context.Context, w http.ResponseWriter, r *http.Request, ar *authReq) {
	if ar == nil {
		p.unavailable(w, "service temporarily unavailable")
		return
	}
	ar.failed(ctx)
	unauthorized(w.Header(), r)
	http.Error(w, unauthorizedBody, http.StatusUnauthorized)
}

// clientIP returns the client address of a request that presents
// credentials, and whether the failed-login limit applies to it.
func (p *Proxy) clientIP(r *http.Request) (netip.Addr, bool) {
	if p.opts.AuthLimiter == nil || r.Header.Get("Authorization") == "" {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// forward proxies a request to a backend without tracking its connection.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, b *proxy.Backend, account string) {
	p.forwardConn(w, r, b, account, nil)
}

// forwardConn proxies a request to a backend.
func (p *Proxy) forwardConn(w http.ResponseWriter, r *http.Request, b *proxy.Backend, account string, cs *connState) {
	target, err := p.target(b)
	if err != nil {
		// For a request with credentials this is answered as a wrong
		// password: it would otherwise tell that the account exists
		// (and where).
		p.log.Warn("backend has no usable HTTP endpoint", "backend", b.Name, "err", err)
		ar, _ := r.Context().Value(authKey{}).(*authReq)
		p.refuse(r.Context(), w, r, ar)
		return
	}
	p.opts.Metrics.Inc(proxy.MetricSessions, "proto", string(proxy.HTTP), "backend", b.Name)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	info := &reqInfo{target: target.url, rt: target.rt, public: p.origin(r), backend: b.Name, account: account, cs: cs, cancel: cancel}
	if r.Body != nil && r.Body != http.NoBody {
		info.body = &idleBody{rc: r.Body, ctl: http.NewResponseController(w), idle: p.opts.BodyIdleTimeout}
		r.Body = info.body
	}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(ctx, reqKey{}, info)))
	if info.cs != nil && info.cs.isHijacked() {
		// An upgraded connection (WebSocket) ended: the server will not
		// report it closed.
		info.cs.close()
		p.conns.Delete(info.cs.conn)
	}
}

// unavailable answers 503 with Retry-After (RFC 9110 15.6.4, 10.2.3).
func (p *Proxy) unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(p.opts.RetryAfter/time.Second)))
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// identify returns the identifier a request authenticates as: the Basic
// user name, or the account a bearer token names. "" means none.
func (p *Proxy) identify(ctx context.Context, r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case h == "":
		return "", nil
	case strings.EqualFold(scheme, "Basic"):
		b, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return "", fmt.Errorf("malformed basic credentials: %w", err)
		}
		user, _, ok := strings.Cut(string(b), ":")
		if !ok || !validIdentifier(user) {
			return "", errors.New("malformed basic credentials")
		}
		return user, nil
	case strings.EqualFold(scheme, "Bearer"):
		id, kind := BearerIdentity(cred, p.opts.JWTClaims)
		if kind != TokenOpaque {
			return id, nil
		}
		if len(p.opts.Introspection) == 0 || cred == "" || len(cred) > maxTokenSize {
			return "", errors.New("opaque bearer token and no introspection endpoint")
		}
		return p.intro.lookup(ctx, cred)
	}
	return "", errors.New("unsupported authorization scheme")
}

// backendTarget is a backend's parsed HTTP endpoint and the transport
// that reaches it (its own when the endpoint has a TLS configuration).
type backendTarget struct {
	url *url.URL
	rt  http.RoundTripper
}

// errPlaintext refuses to send credentials over plain HTTP to a backend
// whose endpoint does not allow it.
var errPlaintext = errors.New("http endpoint is not https and plaintext credentials are not allowed for it")

// target returns the parsed HTTP endpoint of a backend.
func (p *Proxy) target(b *proxy.Backend) (*backendTarget, error) {
	if v, ok := p.targets.Load(b.Name); ok {
		return v.(*backendTarget), nil
	}
	ep, ok := b.Endpoint(proxy.HTTP)
	if !ok || ep.URL == "" {
		return nil, fmt.Errorf("backend %s has no http endpoint", b.Name)
	}
	u, err := url.Parse(ep.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend %s: http endpoint %q is not an http(s) URL", b.Name, ep.URL)
	}
	if u.Scheme == "http" && !ep.AllowPlaintext {
		return nil, fmt.Errorf("backend %s: %w", b.Name, errPlaintext)
	}
	bt := &backendTarget{url: u, rt: p.opts.Transport}
	if ep.TLSConfig != nil && u.Scheme == "https" {
		if t, ok := p.opts.Transport.(*http.Transport); ok {
			t = t.Clone()
			t.TLSClientConfig = ep.TLSConfig.Clone()
			bt.rt = t
		}
	}
	p.targets.Store(b.Name, bt)
	return bt, nil
}

// routeTransport sends each outbound request with its backend's transport.
type routeTransport struct{ p *Proxy }

// RoundTrip implements http.RoundTripper.
func (rt routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if info, _ := req.Context().Value(reqKey{}).(*reqInfo); info != nil && info.rt != nil {
		return info.rt.RoundTrip(req)
	}
	return rt.p.opts.Transport.RoundTrip(req)
}

// origin is the public origin for a request.
func (p *Proxy) origin(r *http.Request) *url.URL {
	if p.public != nil {
		return p.public
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: r.Host}
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	info := pr.In.Context().Value(reqKey{}).(*reqInfo)
	pr.SetURL(info.target)
	pr.SetXForwarded()
	pr.Out.Header.Set("X-Forwarded-Host", info.public.Host)
	pr.Out.Header.Set("X-Forwarded-Proto", info.public.Scheme)
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	info, _ := r.Context().Value(reqKey{}).(*reqInfo)
	if info != nil && info.body != nil && info.body.failed() {
		// The client's upload stalled (or broke off), which also
		// cancels the request: the backend is fine, and the credentials
		// were not refused. A client still there reads 408.
		p.log.Debug("request body stalled", "backend", info.backend, "err", err)
		w.Header().Set("Connection", "close")
		http.Error(w, "request body timed out", http.StatusRequestTimeout)
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	backend := ""
	if info != nil {
		backend = info.backend
	}
	p.log.Warn("backend unavailable", "backend", backend, "err", err)
	p.opts.Metrics.Inc(proxy.MetricBackendErrors, "proto", string(proxy.HTTP), "backend", backend)
	if ar, _ := r.Context().Value(authKey{}).(*authReq); ar != nil {
		// The backend never checked the credentials: the one 401.
		p.refuse(r.Context(), w, r, ar)
		return
	}
	http.Error(w, "bad gateway: mail server unavailable", http.StatusBadGateway)
}

// connState follows one client connection: which account it last served,
// whether it is idle, and whether that account's route changed since.
type connState struct {
	conn net.Conn

	mu       sync.Mutex
	account  string
	gen      int64
	backend  string
	untrack  func()
	idle     bool
	hijacked bool
	moved    bool
	closed   bool
	streams  map[*stream]struct{}
}

// bind records the account of the current request and registers the
// connection with the router, so a flip ends it.
func (c *connState) bind(d proxy.Decision, router proxy.Router) {
	c.mu.Lock()
	same := c.untrack != nil && c.account == d.Account() && c.gen == d.Route.Generation && c.backend == d.Route.Backend
	if same || c.closed {
		c.mu.Unlock()
		return
	}
	old := c.untrack
	c.account, c.gen, c.backend, c.moved = d.Account(), d.Route.Generation, d.Route.Backend, false
	c.untrack = nil
	c.mu.Unlock()
	if old != nil {
		old()
	}
	un := router.Track(d, proxy.HTTP, func(string) { c.end() })
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		un()
		return
	}
	c.untrack = un
	c.mu.Unlock()
}

// end is called when the account's route changed: an idle keep-alive (or
// an upgraded WebSocket) is closed at once; a busy one after its response
// (Connection: close). An EventSource stream would never finish its
// response, so it is ended now: the client sees the stream end, the
// connection closes as it goes idle, and the client's reconnect is routed
// anew.
func (c *connState) end() {
	c.mu.Lock()
	c.moved = true
	closeNow := c.idle || c.hijacked
	streams := make([]*stream, 0, len(c.streams))
	for s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		s.end()
	}
	if closeNow {
		c.conn.Close()
	}
}

// addStream registers an open EventSource response of the connection; it
// is ended at once when the route already changed.
func (c *connState) addStream(s *stream) {
	c.mu.Lock()
	moved := c.moved
	if !moved {
		if c.streams == nil {
			c.streams = make(map[*stream]struct{})
		}
		c.streams[s] = struct{}{}
	}
	c.mu.Unlock()
	if moved {
		s.end()
	}
}

func (c *connState) removeStream(s *stream) {
	c.mu.Lock()
	delete(c.streams, s)
	c.mu.Unlock()
}

func (c *connState) isMoved() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.moved
}

func (c *connState) isHijacked() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hijacked
}

func (c *connState) setIdle(idle bool) {
	c.mu.Lock()
	c.idle = idle
	closeNow := idle && c.moved
	c.mu.Unlock()
	if closeNow {
		c.conn.Close()
	}
}

func (c *connState) setHijacked() {
	c.mu.Lock()
	c.hijacked = true
	closeNow := c.moved
	c.mu.Unlock()
	if closeNow {
		c.conn.Close()
	}
}

func (c *connState) close() {
	c.mu.Lock()
	c.closed = true
	un := c.untrack
	c.untrack = nil
	c.mu.Unlock()
	if un != nil {
		un()
	}
}

// bufferPool recycles the reverse proxy's 32 KiB copy buffers.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Get implements httputil.BufferPool.
func (bufferPool) Get() []byte { return *copyBuffers.Get().(*[]byte) }

// Put implements httputil.BufferPool.
func (bufferPool) Put(b []byte) {
	if cap(b) == 32<<10 {
		b = b[:cap(b)]
		copyBuffers.Put(&b)
	}
}
