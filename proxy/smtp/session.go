package smtp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
)

// session is the state shared by delivery and submission sessions: the
// bookkeeping that lets the server end a session from another goroutine.
//
// go-smtp calls the Session methods from the connection's goroutine (and
// LMTPData from a helper goroutine while that one waits), so the protocol
// state needs no lock; mu guards only what end() touches.
type session struct {
	srv  *Server
	conn *gosmtp.Conn
	log  *slog.Logger
	pc   *proxy.Conn // set when served through proxy.Server
	// ec is the connection's endConn, found once on the connection's
	// goroutine: go-smtp replaces the connection it holds at STARTTLS, so
	// end (another goroutine) must not ask it for the connection.
	ec *endConn

	mu         sync.Mutex
	acct       string // route key of the authenticated user (submission)
	inTx       bool   // between MAIL and the end of DATA/RSET
	endPending bool   // end the session when the transaction is over
}

func (s *Server) newSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down"}
	}
	base := &session{srv: s, conn: c, ec: unwrapEndConn(c.Conn())}
	if ec := base.ec; ec != nil && ec.pc != nil {
		base.pc = ec.pc
		base.log = ec.pc.Log.With("addr", c.Conn().RemoteAddr().String())
		ec.pc.OnEnd(func(reason string) { base.end("4.3.2", reason) })
	} else {
		base.log = s.log.With("cid", s.nextID.Add(1), "addr", c.Conn().RemoteAddr().String())
	}
	s.track(base, true)
	base.log.Debug("session started", "helo", c.Hostname())
	if s.opts.Mode == ModeSubmission {
		return &submissionSession{session: base}, nil
	}
	return &deliverySession{session: base, conns: make(map[string]*backendConn)}, nil
}

// metrics returns the registry to count in (nil: none).
func (ss *session) metrics() *proxy.Metrics {
	if ss.pc != nil {
		return ss.pc.Metrics()
	}
	return ss.srv.opts.Metrics
}

// lookupResult counts a route lookup.
func (ss *session) lookupResult(result string) {
	ss.metrics().Inc(proxy.MetricRouteLookups, "proto", string(ss.srv.opts.Mode), "result", result)
}

func (ss *session) setTx(on bool) {
	ss.mu.Lock()
	ss.inTx = on
	pending := ss.endPending && !on
	ss.mu.Unlock()
	if pending {
		ss.stopReading()
	}
}

// end asks the session to finish: at once when no transaction is open,
// otherwise when it ends. The client then reads a 421 reply (go-smtp's
// reply to a failed read) and the connection closes.
func (ss *session) end(enh, text string) {
	ss.mu.Lock()
	inTx := ss.inTx
	ss.endPending = true
	ss.mu.Unlock()
	ss.log.Info("ending session", "reason", text)
	if !inTx {
		ss.stopReading()
	}
}

func (ss *session) ending() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.endPending
}

// stopReading makes the pending read of the next command fail with a
// timeout; go-smtp answers it with 421 4.4.2 and closes the connection.
func (ss *session) stopReading() {
	if ss.ec != nil {
		ss.ec.stop()
		return
	}
	// Not reached: every connection the server serves is an endConn.
	ss.conn.Conn().SetReadDeadline(time.Now())
}

func (ss *session) logout() {
	ss.srv.track(ss, false)
}

// clientInfo describes the front client for XCLIENT.
func (ss *session) clientInfo(login string) clientInfo {
	proto := "ESMTP"
	return clientInfo{addr: ss.conn.Conn().RemoteAddr(), helo: ss.conn.Hostname(), proto: proto, login: login}
}

// dialConfig describes a connection to one backend endpoint for this
// session's client.
func (ss *session) dialConfig(name string, ep proxy.Endpoint, lmtp bool) dialConfig {
	tcfg := ep.TLSConfig
	if ep.TLS == proxy.TLSImplicit || ep.TLS == proxy.TLSStartTLS {
		tcfg = proxy.ClientTLS(ep)
	}
	return dialConfig{
		name:      name,
		addr:      ep.Address,
		lmtp:      lmtp,
		tlsMode:   ep.TLS,
		xclient:   ep.XCLIENT,
		tlsConfig: tcfg,
		localName: ss.srv.opts.Hostname,
		timeout:   ss.srv.opts.BackendTimeout,
		client:    ss.clientInfo(""),
	}
}

// dial opens a backend connection for delivery or submission.
func (ss *session) dial(ctx context.Context, dc dialConfig) (*backendConn, error) {
	ctx, cancel := context.WithTimeout(ctx, ss.srv.opts.BackendTimeout)
	defer cancel()
	start := time.Now()
	bc, err := dialBackend(ctx, dc)
	if err != nil {
		ss.log.Warn("backend unavailable", "backend", dc.name, "err", err)
		ss.metrics().Inc(proxy.MetricBackendErrors, "proto", string(ss.srv.opts.Mode), "backend", dc.name)
		return nil, err
	}
	ss.metrics().Inc(proxy.MetricSessions, "proto", string(ss.srv.opts.Mode), "backend", dc.name)
	ss.log.Debug("backend connected", "backend", dc.name, "duration", time.Since(start))
	return bc, nil
}

// deliveryConn returns a delivery session to a backend: a pooled one made
// ready for this client (XCLIENT again), or a new one. pooled tells the
// caller that the session may have gone stale while idle.
func (ss *session) deliveryConn(name string, ep proxy.Endpoint, lmtp bool) (bc *backendConn, pooled bool, err error) {
	dc := ss.dialConfig(name, ep, lmtp)
	key := fmt.Sprintf("%s|%s|%t", name, ep.Address, lmtp)
	if bc := ss.srv.pool.get(key); bc != nil {
		if err := bc.rebind(dc); err == nil {
			return bc, true, nil
		}
		bc.broken = true
		bc.close()
	}
	bc, err = ss.dial(context.Background(), dc)
	if err != nil {
		return nil, false, err
	}
	bc.poolKey = key
	return bc, false, nil
}

// splitStatus separates an enhanced status code ("2.0.0 ") from a backend
// reply text, so go-smtp can print it in the usual place.
func splitStatus(code int, text string) *gosmtp.SMTPError {
	e := &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.NoEnhancedCode, Message: text}
	first, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(first, ".")
	if len(parts) == 3 && len(first) <= 11 {
		var ec gosmtp.EnhancedCode
		ok := true
		for i, p := range parts {
			n := 0
			if p == "" || len(p) > 3 {
				ok = false
				break
			}
			for _, r := range p {
				if r < '0' || r > '9' {
					ok = false
					break
				}
				n = n*10 + int(r-'0')
			}
			ec[i] = n
		}
		if ok && ec[0] == code/100 {
			e.EnhancedCode = ec
			e.Message = rest
		}
	}
	if e.Message == "" {
		e.Message = "OK"
	}
	return e
}
