package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Conn is one client connection as a protocol handler sees it. The
// embedded net.Conn is replaced by the TLS connection after StartTLS.
type Conn struct {
	net.Conn
	// ID is the connection id (log attribute "cid").
	ID uint64
	// Proto is the listener's protocol.
	Proto Protocol
	// Client is the client's address.
	Client netip.AddrPort
	// Local is the address the client connected to.
	Local netip.AddrPort
	// Log has cid and proto bound.
	Log *slog.Logger

	srv *Server
	lis *listener
	tls bool
	raw net.Conn // the TCP connection; closing it ends any TLS on top
	// header is set for a connection from a trusted load balancer until
	// its PROXY header was read (Server.handle).
	header bool
	// ipCounted says the listener counts Client's IP for this connection
	// (its per-IP limit); a connection waiting for its PROXY header holds
	// a slot of the listener only.
	ipCounted bool

	mu    sync.Mutex
	onEnd func(reason string)
	ended string
}

// NewConn wraps a connection for tests of a handler without a listener
// (e.g. over a socketpair). s supplies options, router and metrics.
func NewConn(s *Server, nc net.Conn, proto Protocol, tlsMode TLSMode) *Conn {
	c := &Conn{Conn: nc, raw: nc, ID: s.nextID.Add(1), Proto: proto, Client: addrPort(nc.RemoteAddr()), Local: addrPort(nc.LocalAddr()), srv: s}
	c.lis = &listener{cfg: ListenerConfig{Protocol: proto, TLS: tlsMode}}
	c.Log = s.log.With("cid", fmt.Sprint(c.ID), "proto", string(proto))
	return c
}

// Server returns the server the connection belongs to.
func (c *Conn) Server() *Server { return c.srv }

// Router returns the server's router.
func (c *Conn) Router() Router { return c.srv.opts.Router }

// Metrics returns the server's metrics.
func (c *Conn) Metrics() *Metrics { return c.srv.metrics }

// IsTLS reports whether the client connection is encrypted.
func (c *Conn) IsTLS() bool { return c.tls }

// TLSConfigured reports whether the listener uses TLS at all (implicit or
// STARTTLS); protocols then refuse plaintext logins before TLS
// (LOGINDISABLED).
func (c *Conn) TLSConfigured() bool { return c.lis.cfg.TLS != TLSNone && c.srv.opts.Certs != nil }

// CanStartTLS reports whether STARTTLS may be offered now.
func (c *Conn) CanStartTLS() bool {
	return !c.tls && c.lis.cfg.TLS == TLSStartTLS && c.srv.opts.Certs != nil
}

// StartTLS runs the server side of a TLS handshake on the connection. The
// caller must have answered the protocol's STARTTLS command and discarded
// any buffered plaintext.
func (c *Conn) StartTLS(ctx context.Context) error {
	tc := tls.Server(c.Conn, c.srv.opts.Certs.Config())
	c.SetDeadline(time.Now().Add(c.srv.opts.PreAuthTimeout))
	defer c.SetDeadline(time.Time{})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	c.Conn = tc
	c.tls = true
	return nil
}

// preAuthWriteGrace is how long past the pre-auth read deadline an answer
// may still be written: a command read just before the deadline gets its
// response (the next read then fails and the session says goodbye) instead
// of a silent close.
const preAuthWriteGrace = 5 * time.Second

// PreAuthDeadline sets the deadlines for the dialogue before login: reads
// end at the earlier of the pre-auth timeout since started and the idle
// timeout from now; writes get preAuthWriteGrace more. Call it before
// reading each pre-auth command, with the time the connection started.
func (c *Conn) PreAuthDeadline(started time.Time) {
	d := started.Add(c.srv.opts.PreAuthTimeout)
	if idle := time.Now().Add(c.srv.opts.IdleTimeout); idle.Before(d) {
		d = idle
	}
	c.SetReadDeadline(d)
	c.SetWriteDeadline(d.Add(preAuthWriteGrace))
}

// IdleTimeout returns how long a session may be silent (no byte either
// way) before it is closed, before or after login (Options.IdleTimeout).
func (c *Conn) IdleTimeout() time.Duration { return c.srv.opts.IdleTimeout }

// AuthAllowed reports whether the client IP may try another login; false
// after too many failures (answer with a temporary failure without asking
// a backend).
func (c *Conn) AuthAllowed() bool { return c.srv.auth.allowed(c.Client.Addr()) }

// AuthFailed records a failed login of the client IP.
func (c *Conn) AuthFailed() {
	c.srv.auth.failed(c.Client.Addr())
	c.srv.metrics.Inc(MetricAuthFailures, "proto", string(c.Proto))
}

// LoginFailed does what every failed login needs before its answer is
// written: a FailUser failure counts toward the client address's
// failed-login limit (AuthFailed), and every failure waits for the
// failure delay from start (when the client's credentials were complete),
// so that neither the answer nor its time tells why the login failed.
func (c *Conn) LoginFailed(ctx context.Context, start time.Time, class FailClass) {
	if class == FailUser {
		c.AuthFailed()
	}
	c.srv.delay.Wait(ctx, start)
}

// BackendRefused records how long a backend took, since start, to refuse
// the client's credentials, so that every other failure takes as long
// (FailureDelay.Observe).
func (c *Conn) BackendRefused(start time.Time) {
	c.srv.delay.Observe(time.Since(start))
}

// LoginOutcome classifies a backend's answer to a login for the line
// fronts (IMAP, POP3, ManageSieve): 0 when it succeeded, else the
// failure's class. err is a failure to talk to the backend at all,
// refused a refusal; verified says that the backend already accepted the
// client's own credentials (the master login of a master backend), the
// only case in which the client may learn of a backend problem. The
// backend's own answer (reply: slog attributes) goes to the log, never to
// the client.
func (c *Conn) LoginOutcome(log *slog.Logger, backend string, start time.Time, refused bool, err error, verified bool, reply ...any) FailClass {
	switch {
	case err != nil:
		c.Metrics().Inc(MetricBackendErrors, "proto", string(c.Proto), "backend", backend)
		log.Warn("backend login", "err", err, "verified", verified)
		if verified {
			return FailTemporary
		}
		return FailUser
	case refused && verified:
		log.Error("backend refused the master login after the user's own", reply...)
		return FailInternal
	case refused:
		c.BackendRefused(start)
		log.Debug("backend refused login", reply...)
		return FailUser
	}
	return 0
}

// OnEnd sets the function that ends the session politely (server
// shutdown). Without one, ending closes the connection. If the session was
// already asked to end, fn runs at once.
func (c *Conn) OnEnd(fn func(reason string)) {
	c.mu.Lock()
	c.onEnd = fn
	ended := c.ended
	c.mu.Unlock()
	if ended != "" && fn != nil {
		go fn(ended)
	}
}

// Abort closes the underlying TCP connection (and so any TLS on top). It
// is safe to call from any goroutine, also during StartTLS.
func (c *Conn) Abort() { c.raw.Close() }

// Ended returns the reason the session was asked to end, or "".
func (c *Conn) Ended() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

func (c *Conn) end(reason string) {
	c.mu.Lock()
	if c.ended != "" {
		c.mu.Unlock()
		return
	}
	c.ended = reason
	fn := c.onEnd
	c.mu.Unlock()
	if fn != nil {
		go fn(reason)
		return
	}
	c.raw.Close()
}
