package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
)

// Mode selects which of the three mail-transfer protocols a Server speaks.
type Mode string

// Server modes.
const (
	// ModeSMTP is the port-25 MX front: routes by recipient; recipients of
	// a second backend get 452 4.5.3 so that the sender retries them in a
	// separate transaction (RFC 5321 4.5.3.1.10).
	ModeSMTP Mode = "smtp"
	// ModeLMTP is an LMTP front (RFC 2033): routes by recipient and fans
	// one transaction out to every backend involved, with one reply per
	// recipient after DATA.
	ModeLMTP Mode = "lmtp"
	// ModeSubmission is the message submission front (RFC 6409): routes by
	// the authenticated user and relays the transaction to that user's
	// backend submission service.
	ModeSubmission Mode = "submission"
)

// Options configure a Server. A nil *Options is invalid: Mode and Router
// are required.
type Options struct {
	// Mode is the protocol spoken to clients. Required.
	Mode Mode
	// Router finds each recipient's or user's backend and ends the
	// sessions of flipped accounts. Required.
	Router proxy.Router
	// Hostname is the name in the greeting and in EHLO/LHLO toward
	// backends. Default: "localhost".
	Hostname string
	// TLSConfig enables STARTTLS toward clients when set.
	TLSConfig *tls.Config
	// ImplicitTLS makes Serve start TLS at once on every connection
	// (submissions, port 465) with TLSConfig. Pass Serve a plain listener.
	ImplicitTLS bool
	// AllowInsecureAuth offers AUTH before TLS (submission; loopback
	// tests). Default: false.
	AllowInsecureAuth bool
	// MaxMessageBytes limits the message size. Default: 64 MiB.
	MaxMessageBytes int64
	// MaxRecipients limits recipients per transaction. Default: 1000.
	MaxRecipients int
	// MaxLineLength limits a command line. Default: 2000 (RFC 5321
	// 4.5.3.1.6, doubled); for submission 12290, because RFC 4954 4 has
	// servers take SASL responses of at least 12288 octets (bearer tokens
	// of 2–4 KB are common), and go-smtp applies one limit to every line.
	MaxLineLength int
	// IdleTimeout closes a connection that sends no command for this
	// long. Default: 5 minutes (RFC 5321 4.5.3.2.7).
	IdleTimeout time.Duration
	// PreAuthTimeout bounds the dialogue before a successful AUTH
	// (submission) or the first accepted MAIL (SMTP, LMTP), however the
	// client trickles its bytes; the client then gets 421 and the
	// connection closes. Default: 60s (proxy.DefaultPreAuthTimeout, as
	// the other protocols).
	PreAuthTimeout time.Duration
	// BackendTimeout bounds connecting to a backend and each command
	// there. Default: 30 s.
	BackendTimeout time.Duration
	// Logger receives the log; nil discards.
	Logger *slog.Logger
	// FailureDelay makes failed submission logins take the same time
	// (see proxy.FailureDelay). Connections served through proxy.Server
	// use that server's instead. Nil: no delay.
	FailureDelay *proxy.FailureDelay
	// Metrics receives counters (route lookups, backend sessions and
	// errors, auth failures, bytes). Connections served through
	// proxy.Server use that server's registry instead. Nil: none.
	Metrics *proxy.Metrics
}

// Server is one listener's worth of SMTP, LMTP or submission proxy. Create
// it with NewServer; Serve may be called for several listeners.
type Server struct {
	opts Options
	log  *slog.Logger
	srv  *gosmtp.Server

	nextID atomic.Uint64
	panics atomic.Int64

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	conns    map[*endConn]struct{} // open client connections
	feeds    [2]*chanListener      // ServeConn: plain, encrypted
	pool     pool                  // idle delivery sessions
	tlsSrv   *gosmtp.Server        // go-smtp server of feeds[1]
}

var _ proxy.Handler = (*Server)(nil)

// NewServer checks opts and returns a Server.
func NewServer(opts *Options) (*Server, error) {
	if opts == nil {
		return nil, errors.New("smtp proxy: options are required")
	}
	o := *opts
	switch o.Mode {
	case ModeSMTP, ModeLMTP, ModeSubmission:
	default:
		return nil, fmt.Errorf("smtp proxy: unknown mode %q", o.Mode)
	}
	if o.Router == nil {
		return nil, errors.New("smtp proxy: a router is required")
	}
	if o.ImplicitTLS && o.TLSConfig == nil {
		return nil, errors.New("smtp proxy: implicit TLS needs a TLS configuration")
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 64 << 20
	}
	if o.MaxRecipients == 0 {
		o.MaxRecipients = 1000
	}
	if o.MaxLineLength == 0 {
		o.MaxLineLength = 2000
		if o.Mode == ModeSubmission {
			o.MaxLineLength = 12288 + 2
		}
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.PreAuthTimeout <= 0 {
		o.PreAuthTimeout = proxy.DefaultPreAuthTimeout
	}
	if o.BackendTimeout == 0 {
		o.BackendTimeout = 30 * time.Second
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{opts: o, log: log.With("proto", string(o.Mode)), sessions: make(map[*session]struct{}), conns: make(map[*endConn]struct{})}
	gs := s.newGoSMTP(false)
	s.srv = gs
	return s, nil
}

// newGoSMTP configures a go-smtp server. encrypted is for connections that
// are already TLS below a wrapper go-smtp cannot look through.
func (s *Server) newGoSMTP(encrypted bool) *gosmtp.Server {
	o := s.opts
	gs := gosmtp.NewServer(gosmtp.BackendFunc(s.newSession))
	gs.Domain = o.Hostname
	gs.LMTP = o.Mode == ModeLMTP
	gs.Network = "tcp"
	if !o.ImplicitTLS && !encrypted {
		gs.TLSConfig = o.TLSConfig // offers STARTTLS
	}
	gs.AllowInsecureAuth = o.AllowInsecureAuth || encrypted
	gs.MaxMessageBytes = o.MaxMessageBytes
	gs.MaxRecipients = o.MaxRecipients
	gs.MaxLineLength = o.MaxLineLength
	gs.ReadTimeout = o.IdleTimeout
	gs.WriteTimeout = time.Minute
	gs.ErrorLog = errorLog{s}
	return gs
}

// Serve accepts connections on ln until Shutdown or Close. It returns nil
// after a shutdown. ln must be a plain TCP listener (limits may wrap it);
// implicit TLS is Options.ImplicitTLS.
func (s *Server) Serve(ln net.Listener) error {
	l := &listener{Listener: ln, srv: s}
	if s.opts.ImplicitTLS {
		l.tls = s.opts.TLSConfig
	}
	err := s.srv.Serve(l)
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, says 421 to idle sessions and closes them,
// lets transactions in progress finish until ctx ends, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	defer s.pool.close()
	s.mu.Lock()
	s.closing = true
	tlsSrv := s.tlsSrv
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		if tlsSrv != nil {
			go tlsSrv.Shutdown(ctx)
		}
		done <- s.srv.Shutdown(ctx)
	}()
	s.endSessions(func(*session) bool { return true }, "4.3.2", "Service shutting down, try again later")
	// Connections that never said EHLO have no session: end them too.
	s.mu.Lock()
	withSession := make(map[*endConn]bool)
	for ss := range s.sessions {
		if ec := unwrapEndConn(ss.conn.Conn()); ec != nil {
			withSession[ec] = true
		}
	}
	var idle []*endConn
	for ec := range s.conns {
		if !withSession[ec] {
			idle = append(idle, ec)
		}
	}
	s.mu.Unlock()
	for _, ec := range idle {
		ec.stop()
	}
	select {
	case err := <-done:
		if errors.Is(err, gosmtp.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		s.mu.Lock()
		open := make([]*endConn, 0, len(s.conns))
		for ec := range s.conns {
			open = append(open, ec)
		}
		s.mu.Unlock()
		for _, ec := range open {
			ec.Close()
		}
		return ctx.Err()
	}
}

// Close closes listeners and every connection at once.
func (s *Server) Close() error {
	defer s.pool.close()
	s.mu.Lock()
	s.closing = true
	tlsSrv := s.tlsSrv
	open := make([]*endConn, 0, len(s.conns))
	for ec := range s.conns {
		open = append(open, ec)
	}
	s.mu.Unlock()
	for _, ec := range open {
		ec.Close()
	}
	if tlsSrv != nil {
		tlsSrv.Close()
	}
	err := s.srv.Close()
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Panics returns how many panics were recovered at connection boundaries.
func (s *Server) Panics() int64 { return s.panics.Load() }

// endSessions ends the sessions matched by pick: 421 and close when idle,
// otherwise at the end of the current transaction.
func (s *Server) endSessions(pick func(*session) bool, enh, text string) {
	s.mu.Lock()
	var picked []*session
	for ss := range s.sessions {
		if pick(ss) {
			picked = append(picked, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range picked {
		ss.end(enh, text)
	}
}

func (s *Server) track(ss *session, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		s.sessions[ss] = struct{}{}
	} else {
		delete(s.sessions, ss)
	}
}

// errorLog adapts go-smtp's logger to slog and counts recovered panics.
type errorLog struct{ s *Server }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(fmt.Sprintln(v...)) }

func (l errorLog) print(msg string) {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "panic") && strings.Contains(msg, "go-smtp.(*Conn).handleBdat.func1") {
		// go-smtp v0.25.1 starts a goroutine per BDAT transaction that
		// calls Conn.Session(); when the client has already disconnected,
		// Conn.Close has set the session to nil and that goroutine
		// dereferences it. go-smtp recovers it and the connection is gone
		// already, so nothing of ours failed and no mail is affected:
		// log it, but do not count it as a proxy panic (found by FuzzSMTP).
		l.s.log.Warn("go-smtp bdat race after disconnect recovered", "err", firstLine(msg))
		return
	}
	if strings.HasPrefix(msg, "panic") {
		l.s.panics.Add(1)
		proxy.CountPanic(l.s.opts.Metrics, proxy.Protocol(l.s.opts.Mode))
		l.s.log.Error("panic recovered", "err", msg)
		return
	}
	l.s.log.Debug("smtp server", "err", msg)
}

// Replies the proxy gives itself. Backend replies are passed through
// unchanged (as *gosmtp.SMTPError) and are not listed here.
var (
	errRelayDenied  = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "Relaying denied"}
	errNoSuchUser   = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	errFrozen       = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 2, 0}, Message: "Mailbox is being migrated, try again later"}
	errOtherRoute   = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients for this transaction, send the others separately"}
	errUnavailable  = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 1}, Message: "Mail server temporarily unavailable, try again later"}
	errLost         = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Connection to the mail server lost, try again later"}
	errPartial      = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Delivery failed for some recipients, try again later"}
	errNoStatus     = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Delivery status unknown, try again later"}
	errConfig       = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 5}, Message: "Temporary configuration problem, try again later"}
	errTempAuth     = &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: "Temporary authentication failure, try again later"}
	errInternalAuth = &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Internal error, try again later"}
	errMoved        = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Account moved, please reconnect"}
)

// firstLine returns msg up to its first newline.
func firstLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	return line
}
