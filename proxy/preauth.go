package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// ErrPlaintextAfterStartTLS means the client sent more bytes after its
// STARTTLS command before the handshake: they would be injected into the
// TLS session (CVE-2011-0411 style), so the session ends.
var ErrPlaintextAfterStartTLS = errors.New("plaintext after STARTTLS")

// PreAuth is the client side of a line-based protocol (IMAP, POP3,
// ManageSieve) before login: buffered reads and writes on the connection,
// one writer at a time, STARTTLS, and the hand-over to the bridge, after
// which it holds no buffers and refuses writes (only the bridge writes).
// The protocol fronts embed it.
type PreAuth struct {
	// C is the client connection.
	C *Conn
	// Started is when the connection was accepted (the pre-auth timeout
	// counts from it).
	Started time.Time

	rsize, wsize int
	br           *bufio.Reader

	wmu sync.Mutex
	bw  *bufio.Writer
}

// NewPreAuth returns the pre-auth state of c with read and write buffers
// of the given sizes.
func NewPreAuth(c *Conn, rsize, wsize int) *PreAuth {
	return &PreAuth{C: c, Started: time.Now(), rsize: rsize, wsize: wsize,
		br: bufio.NewReaderSize(c.Conn, rsize), bw: bufio.NewWriterSize(c.Conn, wsize)}
}

// Reader is the buffered client reader; only the session's own goroutine
// reads.
func (p *PreAuth) Reader() *bufio.Reader { return p.br }

// Writef writes one line (CRLF appended) and flushes it. It is safe from
// any goroutine (a server shutdown says goodbye from another) and returns
// net.ErrClosed once the session is bridged.
func (p *PreAuth) Writef(format string, args ...any) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.bw == nil {
		return net.ErrClosed
	}
	fmt.Fprintf(p.bw, format, args...)
	p.bw.WriteString("\r\n")
	return p.bw.Flush()
}

// ReadDeadline sets the deadlines before reading the next command
// (Conn.PreAuthDeadline).
func (p *PreAuth) ReadDeadline() { p.C.PreAuthDeadline(p.Started) }

// TimeoutGoodbye writes the line that ends a session whose read deadline
// passed, with a fresh write deadline of its own.
func (p *PreAuth) TimeoutGoodbye(format string, args ...any) {
	p.C.SetWriteDeadline(time.Now().Add(time.Second))
	p.Writef(format, args...)
}

// LoginDisabled reports whether the listener uses TLS but the connection
// is not encrypted yet: logins are refused until STARTTLS (IMAP
// LOGINDISABLED, POP3 and ManageSieve likewise).
func (p *PreAuth) LoginDisabled() bool { return p.C.TLSConfigured() && !p.C.IsTLS() }

// StartTLS runs the handshake after the protocol answered its STARTTLS
// command, and starts fresh buffers on the encrypted connection.
func (p *PreAuth) StartTLS(ctx context.Context) error {
	if p.br.Buffered() > 0 {
		return ErrPlaintextAfterStartTLS
	}
	if err := p.C.StartTLS(ctx); err != nil {
		return err
	}
	p.br = bufio.NewReaderSize(p.C.Conn, p.rsize)
	p.wmu.Lock()
	p.bw = bufio.NewWriterSize(p.C.Conn, p.wsize)
	p.wmu.Unlock()
	return nil
}

// Bridge tells the client it is logged in with final (one line, the
// backend's answer as the protocol words it), then runs BridgeSession
// with the backend connection. backendPending are the bytes the backend
// sent that the login dialogue read ahead (Pending of its reader, which
// the caller then drops). The deadlines of the login dialogue are cleared
// first. On a failed write the backend is closed and the error returned.
func (p *PreAuth) Bridge(ctx context.Context, d Decision, proto Protocol, backend net.Conn, backendPending []byte, final string, goodbye func(reason string, idle bool)) (up, down int64, idled bool, err error) {
	backend.SetDeadline(time.Time{})
	p.C.SetDeadline(time.Time{})
	if err := p.Writef("%s", final); err != nil {
		backend.Close()
		return 0, 0, false, err
	}
	drop := func() ([]byte, []byte) {
		cp := Pending(p.br)
		p.wmu.Lock()
		p.br, p.bw = nil, nil
		p.wmu.Unlock()
		return cp, backendPending
	}
	up, down, idled = BridgeSession(ctx, p.C, d, proto, backend, drop, goodbye)
	return up, down, idled, nil
}

// RouteLogin is the routing step that every login of a line protocol
// takes before it asks a backend: the failed-login limit of the client's
// address, the route lookup, the endpoint of the protocol, with their
// metrics and log records. log is the connection's logger with the user
// (and backend) bound. fail is 0 when the login may go on at ep, else the
// class of the failure to answer with (Conn.LoginFailed): FailTemporary
// when the client's address is over the failed-login limit, FailUser for
// everything else, so that an unknown account, a route to a backend that
// is not configured and a backend without the protocol all get the same
// answer as a wrong password.
//
// A frozen account is not held here: d.Frozen() is true, and the front
// first checks the credentials at ep (the backend that holds the account
// during the freeze), then calls HoldLogin. The hold and its temporary
// answer would otherwise tell anyone that the account exists.
func (p *PreAuth) RouteLogin(ctx context.Context, proto Protocol, id string) (d Decision, ep Endpoint, log *slog.Logger, fail FailClass) {
	c := p.C
	log = c.Log.With("user", LogUser(id))
	if !c.AuthAllowed() {
		c.Metrics().Inc(MetricConnectionsRefused, "proto", string(proto), "reason", "auth-rate")
		log.Info("login refused: too many failed logins from this address")
		return d, ep, log, FailTemporary
	}
	d, err := c.Router().Lookup(ctx, id)
	return p.routed(proto, id, log, d, err, !d.Frozen())
}

// HoldLogin holds the login of a frozen account, whose credentials the
// backend already accepted, up to the router's hold time (Router.Await),
// and then routes it as RouteLogin does; an account still frozen is a
// FailTemporary.
func (p *PreAuth) HoldLogin(ctx context.Context, proto Protocol, id string) (d Decision, ep Endpoint, log *slog.Logger, fail FailClass) {
	log = p.C.Log.With("user", LogUser(id))
	d, err := p.C.Router().Await(ctx, id)
	return p.routed(proto, id, log, d, err, true)
}

// routed turns a route lookup into RouteLogin's results; count says
// whether to count the lookup (a frozen one is counted after its hold).
func (p *PreAuth) routed(proto Protocol, id string, log *slog.Logger, d Decision, err error, count bool) (Decision, Endpoint, *slog.Logger, FailClass) {
	var ep Endpoint
	if count {
		p.C.Metrics().Inc(MetricRouteLookups, "proto", string(proto), "result", RouteResult(err))
	}
	switch {
	case errors.Is(err, ErrUnknown):
		log.Debug("login for unknown account")
		return d, ep, log, FailUser
	case errors.Is(err, ErrFrozen):
		log.Info("login refused, account frozen")
		return d, ep, log, FailTemporary
	case err != nil:
		log.Warn("route lookup", "err", err)
		return d, ep, log, FailUser
	}
	log = log.With("backend", d.Backend.Name)
	ep, ok := d.Backend.Endpoint(proto)
	if !ok {
		log.Warn("backend has no endpoint for the protocol", "proto", string(proto))
		return d, ep, log, FailUser
	}
	if d.Backend.ClientMaster(id) {
		log.Info("login refused: a master user named by the client on a master-login backend")
		return d, ep, log, FailUser
	}
	return d, ep, log, 0
}
