package sieve

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
)

// MaxBadCommands is how many errors a client gets before login until the
// proxy says BYE.
const MaxBadCommands = 20

// BackendTimeout bounds the login dialogue with a backend.
const BackendTimeout = 30 * time.Second

// DefaultSieve is the SIEVE capability advertised before login.
const DefaultSieve = "fileinto reject envelope encoded-character vacation subaddress comparator-i;ascii-numeric relational regex imap4flags copy include variables body enotify environment mailbox date index ihave duplicate mime foreverypart extracttext"

// Options configure the ManageSieve front. A nil *Options means defaults.
type Options struct {
	// Implementation is the IMPLEMENTATION capability. Default:
	// "mailmig proxy".
	Implementation string
	// Sieve is the SIEVE capability before login. Default: DefaultSieve.
	Sieve string
}

// Handler is the ManageSieve front. It implements proxy.Handler.
type Handler struct{ impl, sieve string }

var _ proxy.Handler = (*Handler)(nil)

// New returns a ManageSieve handler.
func New(opts *Options) *Handler {
	h := &Handler{impl: "mailmig proxy", sieve: DefaultSieve}
	if opts != nil {
		if opts.Implementation != "" {
			h.impl = opts.Implementation
		}
		if opts.Sieve != "" {
			h.sieve = opts.Sieve
		}
	}
	return h
}

type session struct {
	*proxy.PreAuth
	h   *Handler
	c   *proxy.Conn
	bad int
}

var errClose = errors.New("close session")

// ServeConn implements proxy.Handler.
func (h *Handler) ServeConn(ctx context.Context, c *proxy.Conn) {
	s := &session{PreAuth: proxy.NewPreAuth(c, 4096, 1024), h: h, c: c}
	c.OnEnd(func(reason string) {
		s.writef(`BYE (TRYLATER) %s`, quote(reason))
		c.Abort()
	})
	s.writeCaps()
	for {
		s.ReadDeadline()
		cmd, err := wire.ReadCommand(s.Reader(), nil)
		if err != nil {
			var le *wire.LiteralError
			switch {
			case errors.As(err, &le):
				s.writef(`BYE "Literal too large"`)
			case errors.Is(err, wire.ErrLineTooLong):
				s.writef(`BYE "Line too long"`)
			case errors.Is(err, wire.ErrSyntax):
				if s.bad1("Invalid characters in command") == nil {
					continue
				}
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.TimeoutGoodbye(`BYE "Disconnected for inactivity"`)
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				c.Log.Debug("managesieve read", "err", err)
			}
			return
		}
		if err := s.dispatch(ctx, cmd); err != nil {
			if !errors.Is(err, errClose) {
				c.Log.Debug("managesieve pre-auth", "err", err)
			}
			return
		}
	}
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", " ")

func quote(s string) string {
	return `"` + quoteEscaper.Replace(s) + `"`
}

func (s *session) writef(format string, args ...any) error { return s.Writef(format, args...) }

func (s *session) loginDisabled() bool { return s.LoginDisabled() }

// writeCaps sends the capability block. RFC 5804 1.7
func (s *session) writeCaps() error {
	var b strings.Builder
	fmt.Fprintf(&b, "\"IMPLEMENTATION\" %s\r\n", quote(s.h.impl))
	if s.loginDisabled() {
		b.WriteString("\"SASL\" \"\"\r\n")
	} else {
		b.WriteString("\"SASL\" \"PLAIN LOGIN XOAUTH2 OAUTHBEARER\"\r\n")
	}
	fmt.Fprintf(&b, "\"SIEVE\" %s\r\n", quote(s.h.sieve))
	if s.c.CanStartTLS() {
		b.WriteString("\"STARTTLS\"\r\n")
	}
	b.WriteString("\"VERSION\" \"1.0\"\r\nOK \"mailmig proxy ready.\"")
	return s.writef("%s", b.String())
}

var commands = map[string]func(s *session, ctx context.Context, d *wire.Decoder) error{
	"CAPABILITY":   (*session).handleCapability,
	"NOOP":         (*session).handleNoop,
	"LOGOUT":       (*session).handleLogout,
	"STARTTLS":     (*session).handleStartTLS,
	"AUTHENTICATE": (*session).handleAuthenticate,
}

func (s *session) bad1(msg string) error {
	s.bad++
	if s.bad >= MaxBadCommands {
		s.writef(`BYE "Too many invalid commands"`)
		return errClose
	}
	return s.writef(`NO %s`, quote(msg))
}

func (s *session) dispatch(ctx context.Context, cmd *wire.Command) error {
	d := wire.NewDecoder(cmd)
	var name string
	// Commands are atoms; some clients quote them.
	if d.Peek('"') {
		d.ExpectQuoted(&name)
	} else {
		d.ExpectAtom(&name)
	}
	if d.Err() != nil {
		return s.bad1("Missing command")
	}
	s.c.Log.Log(ctx, proxy.LevelTrace, "command", "cmd", strings.ToUpper(name))
	fn, ok := commands[strings.ToUpper(name)]
	if !ok {
		return s.bad1("Unknown command or not allowed before login")
	}
	if err := fn(s, ctx, d); err != nil {
		if errors.Is(err, wire.ErrSyntax) {
			return s.bad1("Syntax error in arguments")
		}
		return err
	}
	return nil
}

// RFC 5804 2.4
func (s *session) handleCapability(ctx context.Context, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	return s.writeCaps()
}

// RFC 5804 2.13
func (s *session) handleNoop(ctx context.Context, d *wire.Decoder) error {
	var tag string
	if d.Consume(' ') && !d.ExpectString(&tag) {
		return d.Err()
	}
	if !d.ExpectEnd() {
		return d.Err()
	}
	if tag != "" {
		return s.writef(`OK (TAG %s) "Done"`, quote(tag))
	}
	return s.writef(`OK "NOOP completed"`)
}

// RFC 5804 2.3
func (s *session) handleLogout(ctx context.Context, d *wire.Decoder) error {
	s.writef(`OK "Logout completed"`)
	return errClose
}

// RFC 5804 2.2
func (s *session) handleStartTLS(ctx context.Context, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	if !s.c.CanStartTLS() {
		return s.bad1("STARTTLS not available")
	}
	if err := s.writef(`OK "Begin TLS negotiation now"`); err != nil {
		return err
	}
	if err := s.StartTLS(ctx); err != nil {
		return err
	}
	// RFC 5804 2.2: the server sends the capabilities again after TLS.
	return s.writeCaps()
}

// RFC 5804 2.1
func (s *session) handleAuthenticate(ctx context.Context, d *wire.Decoder) error {
	var mech, irs string
	if !d.ExpectSP() || !d.ExpectString(&mech) {
		return d.Err()
	}
	var ir []byte
	if d.Consume(' ') {
		if !d.ExpectString(&irs) {
			return d.Err()
		}
		b, err := wire.DecodeBase64(irs)
		if err != nil {
			return s.writef(`NO "Invalid initial response"`)
		}
		ir = b
	}
	if !d.ExpectEnd() {
		return d.Err()
	}
	if s.loginDisabled() {
		return s.writef(`NO (ENCRYPT-NEEDED) "Authentication is disabled before STARTTLS"`)
	}
	mech = strings.ToUpper(mech)
	switch mech {
	case wire.MechPlain, wire.MechLogin, wire.MechXOAuth2, wire.MechOAuthBearer:
	default:
		return s.writef(`NO "Unsupported authentication mechanism"`)
	}
	creds, err := wire.Exchange(mech, ir, func(ch []byte) ([]byte, error) {
		if err := s.writef(`"%s"`, encodeChallenge(ch)); err != nil {
			return nil, err
		}
		resp, err := wire.ReadCommand(s.Reader(), nil)
		if err != nil {
			return nil, err
		}
		rd := wire.NewDecoder(resp)
		var str string
		if !rd.ExpectString(&str) || !rd.ExpectEnd() {
			return nil, wire.ErrCancelled
		}
		return wire.DecodeBase64(str)
	})
	switch {
	case errors.Is(err, wire.ErrCancelled):
		return s.writef(`NO "Authentication cancelled"`)
	case errors.Is(err, wire.ErrSASL):
		s.c.AuthFailed()
		return s.writef(`NO "Invalid authentication data"`)
	case err != nil:
		return err
	}
	return s.login(ctx, creds)
}

func encodeChallenge(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return wire.EncodeBase64(b)
}

// replies is the ManageSieve reply table of failed logins
// (proxy.FailClass): one answer per class, whatever the cause. RFC 5804
// 1.3 response codes.
var replies = map[proxy.FailClass]string{
	proxy.FailUser:      `NO "Authentication failed."`,
	proxy.FailTemporary: `NO (TRYLATER) "Account temporarily unavailable, try again later."`,
	proxy.FailInternal:  `NO (TRYLATER) "Internal error, try again later."`,
}

func (s *session) login(ctx context.Context, creds *wire.Credentials) error {
	c := s.c
	start := time.Now()
	d, ep, log, fail := s.RouteLogin(ctx, proxy.ManageSieve, creds.Identity())
	if fail != 0 {
		return s.fail(ctx, start, fail)
	}
	if d.Frozen() {
		// Held only once the backend that holds the account accepted
		// the credentials (proxy.PreAuth.RouteLogin).
		v, line, err := dialLogin(ctx, c, ep, d.Backend, creds, false)
		if v != nil {
			v.nc.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(v.nc, "LOGOUT\r\n")
			v.nc.Close()
		}
		if fail := s.loginClass(log, d, start, line, err, false); fail != 0 {
			return s.fail(ctx, start, fail)
		}
		if d, ep, log, fail = s.HoldLogin(ctx, proxy.ManageSieve, creds.Identity()); fail != 0 {
			return s.fail(ctx, start, fail)
		}
	}
	master := d.Backend.Login == proxy.LoginMaster && !creds.Token()
	if master {
		// The client's password is checked by the backend itself first.
		v, line, err := dialLogin(ctx, c, ep, d.Backend, creds, false)
		if v != nil {
			v.nc.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(v.nc, "LOGOUT\r\n")
			v.nc.Close()
		}
		if fail := s.loginClass(log, d, start, line, err, false); fail != 0 {
			return s.fail(ctx, start, fail)
		}
	}
	b, line, err := dialLogin(ctx, c, ep, d.Backend, creds, master)
	if fail := s.loginClass(log, d, start, line, err, master); fail != 0 {
		if b != nil {
			b.nc.Close()
		}
		return s.fail(ctx, start, fail)
	}
	log.Info("login")
	bp := proxy.Pending(b.br)
	b.br = nil
	up, down, idled, err := s.Bridge(ctx, d, proxy.ManageSieve, b.nc, bp, line, func(r string, idle bool) {
		switch {
		case r != "":
			fmt.Fprintf(c.Conn, "BYE (TRYLATER) %s\r\n", quote(r+", please reconnect"))
		case idle:
			fmt.Fprintf(c.Conn, "BYE %s\r\n", quote("Idle for too long"))
		}
	})
	if err != nil {
		return err
	}
	log.Info("session ended", "up", up, "down", down, "idle_timeout", idled)
	return errClose
}

// fail answers a failed login from the reply table, after the failure
// delay.
func (s *session) fail(ctx context.Context, start time.Time, class proxy.FailClass) error {
	s.c.LoginFailed(ctx, start, class)
	return s.writef("%s", replies[class])
}

// loginClass classifies a backend login (proxy.Conn.LoginOutcome).
func (s *session) loginClass(log *slog.Logger, d proxy.Decision, start time.Time, line string, err error, verified bool) proxy.FailClass {
	refused := !strings.HasPrefix(strings.ToUpper(line), "OK")
	return s.c.LoginOutcome(log, d.Backend.Name, start, refused, err, verified, "reply", line)
}

type backend struct {
	nc      net.Conn
	br      *bufio.Reader
	xclient bool
}

// response reads lines up to OK/NO/BYE and returns that line; it notes
// whether a capability block listed XCLIENT.
func (b *backend) response() (string, error) {
	for {
		cmd, err := wire.ReadCommand(b.br, nil)
		if err != nil {
			return "", err
		}
		l := cmd.Text
		u := strings.ToUpper(l)
		if strings.HasPrefix(u, "OK") || strings.HasPrefix(u, "NO") || strings.HasPrefix(u, "BYE") {
			return strings.ReplaceAll(l, "\x00", `""`), nil
		}
		if strings.HasPrefix(u, `"XCLIENT"`) {
			b.xclient = true
		}
	}
}

// dialLogin connects and logs in; it returns the backend's final response
// line (OK … or NO …).
func dialLogin(ctx context.Context, c *proxy.Conn, ep proxy.Endpoint, be *proxy.Backend, creds *wire.Credentials, master bool) (*backend, string, error) {
	ctx, cancel := context.WithTimeout(ctx, BackendTimeout)
	defer cancel()
	nc, err := proxy.Dial(ctx, ep, c.Client, c.Local)
	if err != nil {
		return nil, "", err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	b := &backend{nc: nc, br: bufio.NewReaderSize(nc, 4096)}
	fail := func(err error) (*backend, string, error) {
		nc.Close()
		return nil, "", err
	}
	greeted := proxy.GreetingDeadline(nc, ep)
	g, err := b.response()
	greeted()
	if err != nil {
		return fail(fmt.Errorf("read backend greeting: %w", err))
	}
	if !strings.HasPrefix(strings.ToUpper(g), "OK") {
		return fail(fmt.Errorf("backend greeting %.40q", g))
	}
	if ep.TLS == proxy.TLSStartTLS {
		fmt.Fprintf(nc, "STARTTLS\r\n")
		r, err := b.response()
		if err != nil {
			return fail(err)
		}
		if !strings.HasPrefix(strings.ToUpper(r), "OK") {
			return fail(fmt.Errorf("backend refused STARTTLS"))
		}
		tc, err := proxy.ClientHandshake(ctx, nc, ep)
		if err != nil {
			return fail(fmt.Errorf("tls to backend: %w", err))
		}
		b.nc, b.br = tc, bufio.NewReaderSize(tc, 4096)
		if _, err := b.response(); err != nil { // capabilities again
			return fail(err)
		}
	}
	if err := proxy.CheckCredentialsSafe(ep, b.nc); err != nil {
		return fail(err)
	}
	if ep.XCLIENT && !ep.ProxyProtocol && b.xclient {
		// Dovecot: XCLIENT ADDR= PORT= from login_trusted_networks.
		fmt.Fprintf(b.nc, "XCLIENT ADDR=%s PORT=%d\r\n", c.Client.Addr(), c.Client.Port())
		r, err := b.response()
		if err != nil {
			return fail(err)
		}
		if !strings.HasPrefix(strings.ToUpper(r), "OK") {
			c.Log.Debug("backend refused XCLIENT")
		}
	}
	var mech string
	var msg []byte
	if master {
		authzid, authcid, pass := be.MasterLogin(creds.Identity())
		mech, msg = wire.MechPlain, wire.EncodePlain(authzid, authcid, pass)
	} else {
		mech, msg = wire.BackendMessage(creds)
	}
	if _, err := fmt.Fprintf(b.nc, "AUTHENTICATE %s %s\r\n", quote(mech), quote(wire.EncodeBase64(msg))); err != nil {
		return fail(err)
	}
	for {
		cmd, err := wire.ReadCommand(b.br, nil)
		if err != nil {
			return fail(err)
		}
		u := strings.ToUpper(cmd.Text)
		if strings.HasPrefix(u, "OK") || strings.HasPrefix(u, "NO") {
			return b, strings.ReplaceAll(cmd.Text, "\x00", `""`), nil
		}
		if strings.HasPrefix(u, "BYE") {
			return fail(fmt.Errorf("backend said %.60q", cmd.Text))
		}
		// A challenge after the initial response: a refused token's error
		// report, answered as the mechanism says so that the backend ends
		// with its NO and counts a failed login ("*" would be an abort).
		if reply, ok := wire.TokenErrorReply(mech); ok {
			fmt.Fprintf(b.nc, "\"%s\"\r\n", base64.StdEncoding.EncodeToString(reply))
		} else {
			fmt.Fprintf(b.nc, "\"*\"\r\n")
		}
	}
}
