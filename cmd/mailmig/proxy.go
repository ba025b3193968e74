package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mailmig/mailmig/cmd/mailmig/internal/views"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/httpproxy"
	"github.com/mailmig/mailmig/proxy/imap"
	"github.com/mailmig/mailmig/proxy/pop3"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/routes/pgroutes"
	"github.com/mailmig/mailmig/proxy/sieve"
	"github.com/mailmig/mailmig/proxy/smtp"
)

const proxyHelp = `Usage: mailmig [global options] proxy [options]

  Runs the protocol proxy described by the plan's proxy block: IMAP, POP3,
  ManageSieve, submission, SMTP, LMTP and HTTP (JMAP, CalDAV, CardDAV,
  WebDAV) on the listed addresses, each session routed to its account's
  backend by the route table (the plan's routes block). Route changes are
  followed within a second. At start the proxy writes the proxy block's
  default_backend and domains into the route table ("mailmig routes"
  changes them afterwards) and warns on standard error when the table is
  empty and has no default backend (every login would be refused).

  Every listener has the same limits (max_connections, -max-conns-per-ip),
  failed logins are limited per client IP, sessions end after the plan's
  pre_auth_timeout before login and idle_timeout without traffic.

  The plan's tls blocks give the certificates; each TLS client gets the
  one for the name it asks for (SNI), the first is the default. SIGHUP
  reloads them all (on an error the old ones stay). SIGINT or SIGTERM
  drains: listeners close, open sessions are told to end (IMAP BYE, SMTP
  421 …) and the proxy waits up to -drain for them and for HTTP requests
  in flight; a second signal stops at once.

Options:
  -admin ADDR       Serve /healthz and /metrics (Prometheus text) on ADDR,
                    e.g. 127.0.0.1:9465, and with the routes in PostgreSQL
                    /fleet (JSON: every proxy, its lag and the last change
                    it applied); with the plan's proxy admin_token_ref the
                    mapping API too (bearer token: GET/PUT/DELETE
                    /api/mapping/ACCOUNT, GET /api/stats). Default: off.
  -drain DURATION   How long to wait for sessions on shutdown. Default: 30s.
  -id NAME          This proxy's name in a fleet sharing a route table in
                    PostgreSQL ("mailmig routes proxies" lists them; keep
                    it stable across restarts). Default: host name and
                    process id.
  -max-conns-per-ip N
                    Open connections allowed per client IP and listener.
                    Default: 200.
  -var NAME=VALUE   Set a plan variable (repeatable).
`

func runProxy(ctx context.Context, g *globals, args []string, s Streams) int {
	fs := newFlagSet("proxy", proxyHelp, s)
	admin := fs.String("admin", "", "")
	drain := fs.Duration("drain", 30*time.Second, "")
	id := fs.String("id", "", "")
	perIP := fs.Int("max-conns-per-ip", proxy.DefaultMaxConnsPerIP, "")
	vars := varFlags{}
	fs.Var(vars, "var", "")
	if code, done := parseFlags(fs, args, s); done {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(s.Err, "Error: proxy takes no arguments.\n\nRun \"mailmig proxy -h\" for help.\n")
		return exitError
	}
	v := views.New(s.Out, s.Err, useColor(g, s.Out))
	// The proxy reads its certificates now, so that a missing file or a
	// wrong key is reported at its line (other commands skip that check).
	m, diags := plan.Load(g.PlanPath, plan.WithVariables(vars), plan.WithCertificateCheck())
	g.hide(m)
	if len(diags) > 0 {
		var srcs map[string][]byte
		if m != nil {
			srcs = m.Sources
		}
		v.Diagnostics(diags, srcs)
	}
	if m == nil || diags.HasErrors() {
		return exitError
	}
	if m.Proxy == nil {
		fmtErr(v, "No proxy block", errors.New("the plan has no proxy block; add one with listen addresses, e.g. proxy { listen { imap = \":143\" } }"))
		return exitError
	}
	log := g.logger(s)
	p, err := startProxy(ctx, m, &proxyRun{Admin: *admin, Logger: log, MaxConnsPerIP: *perIP, ID: *id})
	if err != nil {
		fmtErr(v, "Cannot start the proxy", err)
		return exitError
	}
	if p.Unroutable {
		fmt.Fprintf(s.Err, "Warning: the route table %s is empty and has no default backend: every login is refused and every inbound message bounced until routes are added. Set default_backend (and domains) in the plan's proxy block, or run \"mailmig routes default BACKEND\".\n", routeTableName(m))
	}
	for _, a := range p.Addrs {
		fmt.Fprintf(s.Out, "listening: %s\n", a)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := p.Server.ReloadTLS(); err != nil {
				log.Error("tls reload", "err", err)
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	fmt.Fprintf(s.Out, "draining (up to %v)\n", *drain)
	dctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := p.Stop(dctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	return exitOK
}

// proxyRun are the run-time options of startProxy that the plan does not
// hold.
type proxyRun struct {
	// Admin is the health/metrics address; "" means none.
	Admin string
	// Logger receives the proxy's log.
	Logger *slog.Logger
	// PollInterval of the route table. Default: 250ms.
	PollInterval time.Duration
	// MaxConnsPerIP limits connections per client IP and listener.
	// Default: proxy.DefaultMaxConnsPerIP.
	MaxConnsPerIP int
	// ID names the proxy in a PostgreSQL route table's fleet. Default:
	// pgroutes.DefaultID.
	ID string
}

// runningProxy is a started proxy.
type runningProxy struct {
	Server *proxy.Server
	// Router routes every listener (tests read its deliveries in flight).
	Router *proxy.TableRouter
	// Addrs lists "protocol address" of every listener.
	Addrs []string
	// Unroutable is set when the route table was empty and had no
	// default backend at start: every login is refused and every
	// inbound message bounced until routes are added.
	Unroutable bool
	Stop       func(ctx context.Context) error
}

// startProxy builds and starts everything the plan's proxy block names.
func startProxy(ctx context.Context, m *plan.Migration, run *proxyRun) (_ *runningProxy, err error) {
	pb := m.Proxy
	log := run.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backends, err := proxyBackends(m)
	if err != nil {
		return nil, err
	}
	st, err := openRouteDB(ctx, m, true)
	if err != nil {
		return nil, err
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()
	cleanups = append(cleanups, func() { stopWatch(); <-watchDone; st.Close() })
	unroutable, err := applyProxyRouting(ctx, st, pb, log)
	if err != nil {
		close(watchDone)
		return nil, err
	}
	var w *routes.Watcher
	var follower *pgroutes.Follower
	if pg, ok := st.(*pgroutes.Store); ok {
		// A fleet: follow the database's notifications and acknowledge
		// every change (the cut-over's barrier waits for that).
		var addrs []string
		for _, l := range pb.Listeners {
			addrs = append(addrs, l.Protocol+" "+l.Address)
		}
		f, ferr := pgroutes.Follow(ctx, pg, &pgroutes.FollowOptions{ID: run.ID, Address: strings.Join(addrs, ", "), Lease: m.Routes.Lease, Logger: log})
		if ferr != nil {
			close(watchDone)
			return nil, ferr
		}
		w, follower = f.Watcher(), f
		go func() { f.Run(wctx); close(watchDone) }()
	} else {
		w, err = routes.NewWatcher(ctx, st, &routes.WatchOptions{Interval: run.PollInterval, Logger: log})
		if err != nil {
			close(watchDone)
			return nil, err
		}
		go func() { w.Run(wctx); close(watchDone) }()
	}
	router := proxy.NewRouter(w, backends, &proxy.RouterOptions{FrozenHold: pb.HoldLogins})
	cleanups = append(cleanups, router.Close)
	// The proxy acknowledges every freeze once the account is quiet here
	// (no session, no delivery in flight); the cut-over waits for that. It
	// registers in the SQLite route table for it; in a PostgreSQL fleet
	// the follower is its registration (docs/fleet.md).
	stopAcker := func() {}
	var acks proxy.AckStore
	host, _ := os.Hostname()
	ackID, ackAddr := proxy.NewProxyID(), fmt.Sprintf("%s pid %d", host, os.Getpid())
	if follower != nil {
		acks, ackID = follower.FreezeAcks(), follower.ID()
	} else if as, ok := st.(proxy.AckStore); ok {
		acks = as
	}
	if acks != nil {
		acker := proxy.NewFreezeAcker(router, w, acks, ackID, ackAddr, log)
		if stopAcker, err = acker.Start(wctx); err != nil {
			return nil, err
		}
		cleanups = append(cleanups, stopAcker)
	}
	opts := &proxy.Options{Router: router, Logger: log, PreAuthTimeout: pb.PreAuthTimeout, IdleTimeout: pb.IdleTimeout, AuthFailureDelay: pb.AuthFailureDelay}
	if pb.AuthFailureDelay == 0 {
		opts.AuthFailureDelay = -1 // "0s" in the plan: no fixed delay
	}
	if len(pb.TLS) > 0 {
		files := make([]proxy.CertFiles, len(pb.TLS))
		for i, t := range pb.TLS {
			files[i] = proxy.CertFiles{Cert: t.Cert, Key: t.Key}
		}
		if opts.Certs, err = proxy.NewCertStore(files); err != nil {
			return nil, err
		}
	}
	srv := proxy.NewServer(opts)
	rp := &runningProxy{Server: srv, Router: router, Unroutable: unroutable}
	// Protocol servers that hold state of their own (SMTP delivery
	// pools, HTTP tunnels) are stopped after (SMTP) or before (HTTP) the
	// server's drain.
	var before, after []func(context.Context) error
	cleanups = append(cleanups, func() {
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, f := range before {
			f(c)
		}
		srv.Shutdown(c)
		for _, f := range after {
			f(c)
		}
	})
	var hp *httpproxy.Proxy // one HTTP proxy for the http and https listeners
	for _, l := range pb.Listeners {
		cfg := proxy.ListenerConfig{Address: l.Address, MaxConns: pb.MaxConnections, MaxConnsPerIP: run.MaxConnsPerIP,
			AcceptProxyProtocol: pb.AcceptProxyProtocol, ProxyTrusted: pb.ProxyProtocolTrustedNetworks, ProxyUntrusted: proxy.ProxyUntrusted(pb.ProxyProtocolUntrusted)}
		// Implicit TLS is the server's; STARTTLS is the protocol's
		// (go-smtp negotiates it itself, so its listeners are TLSNone).
		cfg.TLS = proxy.TLSNone
		if l.ImplicitTLS {
			cfg.TLS = proxy.TLSImplicit
		} else if opts.Certs != nil {
			cfg.TLS = proxy.TLSStartTLS
		}
		switch l.Protocol {
		case "imap", "imaps":
			cfg.Protocol, cfg.Handler = proxy.IMAP, imap.New(nil)
		case "pop3", "pop3s":
			po := &pop3.Options{}
			if pg, ok := st.(*pgroutes.Store); ok {
				// The fleet's maps, kept for a database outage.
				po.UIDLs = &pgroutes.UIDLMaps{Store: pg}
			} else if um, ok := st.(pop3.UIDLMaps); ok {
				po.UIDLs = um
			}
			cfg.Protocol, cfg.Handler = proxy.POP3, pop3.New(po)
		case "managesieve":
			cfg.Protocol, cfg.Handler = proxy.ManageSieve, sieve.New(nil)
		case "smtp", "lmtp", "submission", "submissions":
			mode, p := smtp.ModeSMTP, proxy.SMTP
			switch l.Protocol {
			case "lmtp":
				mode, p = smtp.ModeLMTP, proxy.LMTP
			case "submission", "submissions":
				mode, p = smtp.ModeSubmission, proxy.Submission
			}
			var ss *smtp.Server
			ss, err = smtp.NewServer(&smtp.Options{
				Mode: mode, Router: router, TLSConfig: srv.TLSConfig(),
				AllowInsecureAuth: opts.Certs == nil, Logger: log, Metrics: srv.Metrics(),
				// 0 (idle_timeout not in the plan) keeps SMTP's own 5 minutes.
				IdleTimeout:    pb.IdleTimeout,
				PreAuthTimeout: pb.PreAuthTimeout,
			})
			if err != nil {
				break
			}
			after = append(after, ss.Shutdown)
			if !l.ImplicitTLS {
				cfg.TLS = proxy.TLSNone
			}
			cfg.Protocol, cfg.Handler = p, ss
		case "http", "https":
			if hp == nil {
				hp, err = httpproxy.New(&httpproxy.Options{Router: router, PublicURL: pb.PublicOrigin, AuthLimiter: srv, FailureDelay: srv.FailureDelay(), Logger: log, Metrics: srv.Metrics()})
				if err != nil {
					break
				}
				before = append(before, hp.Shutdown)
			}
			if !l.ImplicitTLS {
				cfg.TLS = proxy.TLSNone
			}
			cfg.Protocol, cfg.HTTP = proxy.HTTP, hp
		default:
			err = fmt.Errorf("unknown listener protocol %q", l.Protocol)
		}
		var addr net.Addr
		if err == nil {
			addr, err = srv.Listen(cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("listen %s on %s: %w", l.Protocol, l.Address, err)
		}
		rp.Addrs = append(rp.Addrs, l.Protocol+" "+addr.String())
	}
	if run.Admin != "" {
		var h http.Handler = srv.AdminHandler()
		api, err := newAdminAPI(m, log)
		if err != nil {
			return nil, err
		}
		if follower != nil || api != nil {
			mux := http.NewServeMux()
			mux.Handle("/", h)
			if follower != nil {
				// The fleet view of a route table in PostgreSQL.
				mux.Handle("GET /fleet", follower.Handler())
			}
			if api != nil {
				mux.Handle("/api/", api)
				mux.Handle("/mappings", api) // Stalwart's proxy's path
			}
			h = mux
		}
		a, err := srv.ListenHTTP(run.Admin, proxy.TLSNone, h)
		if err != nil {
			return nil, err
		}
		rp.Addrs = append(rp.Addrs, "admin "+a.String())
	}
	srv.Start()
	if follower != nil {
		if err := follower.SetAddress(ctx, strings.Join(rp.Addrs, ", ")); err != nil {
			log.Warn("proxy address not recorded", "err", err)
		}
	}
	rp.Stop = func(ctx context.Context) error {
		var errs []error
		for _, f := range before {
			errs = append(errs, f(ctx))
		}
		errs = append(errs, srv.Shutdown(ctx))
		for _, f := range after {
			errs = append(errs, f(ctx))
		}
		router.Close()
		stopAcker()
		stopWatch()
		<-watchDone // a follower unregisters itself on the way out
		errs = append(errs, st.Close())
		return errors.Join(errs...)
	}
	return rp, nil
}
