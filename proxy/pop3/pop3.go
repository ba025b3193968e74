package pop3

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
// proxy closes the connection.
const MaxBadCommands = 20

// BackendTimeout bounds the login dialogue with a backend.
const BackendTimeout = 30 * time.Second

// Options configure the POP3 front. A nil *Options means defaults.
type Options struct {
	// Greeting is the greeting text. Default: "mailmig proxy ready.".
	Greeting string
	// UIDLs, when set, gives the UIDL maps cut-overs wrote: a session of
	// an account with a map for its current backend answers UIDL through
	// it (see UIDLMaps). Default: none, every session is bridged as is.
	UIDLs UIDLMaps
}

// Handler is the POP3 front. It implements proxy.Handler.
type Handler struct {
	greeting string
	uidls    UIDLMaps
}

var _ proxy.Handler = (*Handler)(nil)

// New returns a POP3 handler.
func New(opts *Options) *Handler {
	h := &Handler{greeting: "mailmig proxy ready."}
	if opts != nil && opts.Greeting != "" {
		h.greeting = opts.Greeting
	}
	if opts != nil {
		h.uidls = opts.UIDLs
	}
	return h
}

type session struct {
	*proxy.PreAuth
	h    *Handler
	c    *proxy.Conn
	bad  int
	user string
}

var errClose = errors.New("close session")

// ServeConn implements proxy.Handler.
func (h *Handler) ServeConn(ctx context.Context, c *proxy.Conn) {
	s := &session{PreAuth: proxy.NewPreAuth(c, 1024, 512), h: h, c: c}
	c.OnEnd(func(string) {
		s.writef("-ERR [SYS/TEMP] Server shutting down")
		c.Abort()
	})
	s.writef("+OK %s", h.greeting)
	for {
		s.ReadDeadline()
		line, err := wire.ReadLine(s.Reader(), 512) // RFC 2449: 255 octets; allow AUTH IR
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrLineTooLong):
				s.writef("-ERR Line too long")
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.TimeoutGoodbye("-ERR Autologout; idle for too long")
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				c.Log.Debug("pop3 read", "err", err)
			}
			return
		}
		err = s.dispatch(ctx, string(line))
		if err != nil {
			if !errors.Is(err, errClose) {
				c.Log.Debug("pop3 pre-auth", "err", err)
			}
			return
		}
	}
}

func (s *session) writef(format string, args ...any) error { return s.Writef(format, args...) }

func (s *session) loginDisabled() bool { return s.LoginDisabled() }

// commands is the AUTHORIZATION state command table (RFC 1939 4).
var commands = map[string]func(s *session, ctx context.Context, args []string) error{
	"CAPA": (*session).handleCapa,
	"STLS": (*session).handleSTLS,
	"USER": (*session).handleUser,
	"PASS": (*session).handlePass,
	"AUTH": (*session).handleAuth,
	"QUIT": (*session).handleQuit,
}

func (s *session) dispatch(ctx context.Context, line string) error {
	if strings.IndexByte(line, 0) >= 0 {
		return s.bad1("Invalid characters in command")
	}
	name, rest, _ := strings.Cut(line, " ")
	s.c.Log.Log(ctx, proxy.LevelTrace, "command", "cmd", strings.ToUpper(name))
	fn, ok := commands[strings.ToUpper(name)]
	if !ok {
		return s.bad1("Unknown command or not allowed before login")
	}
	var args []string
	if strings.ToUpper(name) == "PASS" {
		// RFC 1939 7: the password may contain spaces.
		if rest != "" {
			args = []string{rest}
		}
	} else {
		args = strings.Fields(rest)
	}
	return fn(s, ctx, args)
}

func (s *session) bad1(msg string) error {
	s.writef("-ERR %s", msg)
	s.bad++
	if s.bad >= MaxBadCommands {
		s.writef("-ERR Too many invalid commands")
		return errClose
	}
	return nil
}

// RFC 2449 5
func (s *session) handleCapa(ctx context.Context, args []string) error {
	var b strings.Builder
	b.WriteString("+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if !s.loginDisabled() {
		b.WriteString("USER\r\nSASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n")
	}
	if s.c.CanStartTLS() {
		b.WriteString("STLS\r\n")
	}
	b.WriteString(".")
	return s.writef("%s", b.String())
}

// RFC 2595 4
func (s *session) handleSTLS(ctx context.Context, args []string) error {
	if !s.c.CanStartTLS() {
		return s.bad1("STLS not available")
	}
	if err := s.writef("+OK Begin TLS negotiation"); err != nil {
		return err
	}
	return s.StartTLS(ctx)
}

// RFC 1939 7
func (s *session) handleUser(ctx context.Context, args []string) error {
	if s.loginDisabled() {
		return s.writef("-ERR [AUTH] Plaintext login is disabled before STLS")
	}
	if len(args) != 1 {
		return s.bad1("USER needs one argument")
	}
	s.user = args[0]
	return s.writef("+OK")
}

// RFC 1939 7
func (s *session) handlePass(ctx context.Context, args []string) error {
	if s.user == "" {
		return s.bad1("USER first")
	}
	if len(args) != 1 {
		return s.bad1("PASS needs an argument")
	}
	user := s.user
	s.user = ""
	return s.login(ctx, &wire.Credentials{Mechanism: wire.MechLogin, Authcid: user, Password: args[0]})
}

// RFC 5034 4
func (s *session) handleAuth(ctx context.Context, args []string) error {
	if len(args) == 0 {
		// RFC 1734 style mechanism listing, which some clients use.
		return s.writef("+OK\r\nPLAIN\r\nLOGIN\r\nXOAUTH2\r\nOAUTHBEARER\r\n.")
	}
	if len(args) > 2 {
		return s.bad1("AUTH takes a mechanism and an optional initial response")
	}
	if s.loginDisabled() {
		return s.writef("-ERR [AUTH] Authentication is disabled before STLS")
	}
	mech := strings.ToUpper(args[0])
	switch mech {
	case wire.MechPlain, wire.MechLogin, wire.MechXOAuth2, wire.MechOAuthBearer:
	default:
		return s.writef("-ERR Unsupported authentication mechanism")
	}
	var ir []byte
	if len(args) == 2 {
		b, err := wire.DecodeBase64(args[1])
		if err != nil {
			return s.writef("-ERR Invalid initial response")
		}
		ir = b
	}
	creds, err := wire.Exchange(mech, ir, func(ch []byte) ([]byte, error) {
		if len(ch) == 0 {
			s.writef("+ ")
		} else if err := s.writef("+ %s", wire.EncodeBase64(ch)); err != nil {
			return nil, err
		}
		line, err := wire.ReadLine(s.Reader(), wire.MaxLine)
		if err != nil {
			return nil, err
		}
		return wire.DecodeBase64(string(line))
	})
	switch {
	case errors.Is(err, wire.ErrCancelled):
		return s.writef("-ERR Authentication cancelled")
	case errors.Is(err, wire.ErrSASL):
		s.c.AuthFailed()
		return s.writef("-ERR [AUTH] Invalid authentication data")
	case err != nil:
		return err
	}
	return s.login(ctx, creds)
}

// RFC 1939 6
func (s *session) handleQuit(ctx context.Context, args []string) error {
	s.writef("+OK Logging out")
	return errClose
}

// replies is the POP3 reply table of failed logins (proxy.FailClass):
// one answer per class, whatever the cause. RFC 3206 response codes.
var replies = map[proxy.FailClass]string{
	proxy.FailUser:      "-ERR [AUTH] Authentication failed.",
	proxy.FailTemporary: "-ERR [SYS/TEMP] Account temporarily unavailable, try again later.",
	proxy.FailInternal:  "-ERR [SYS/TEMP] Internal error, try again later.",
}

// errInUse is a backend's [IN-USE] answer: the credentials were right, but
// the maildrop is locked by another session (RFC 2449 8.1.1).
var errInUse = errors.New("backend maildrop in use")

func (s *session) login(ctx context.Context, creds *wire.Credentials) error {
	c := s.c
	start := time.Now()
	d, ep, log, fail := s.RouteLogin(ctx, proxy.POP3, creds.Identity())
	if fail != 0 {
		return s.fail(ctx, start, fail)
	}
	if d.Frozen() {
		// Held only once the backend that holds the account accepted
		// the credentials (proxy.PreAuth.RouteLogin).
		v, ok2, text, err := dialLogin(ctx, c, ep, d.Backend, creds, false)
		if v != nil {
			v.nc.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(v.nc, "QUIT\r\n")
			v.nc.Close()
		}
		if fail := s.loginClass(log, d, start, ok2, text, err, false); fail != 0 {
			return s.fail(ctx, start, fail)
		}
		if d, ep, log, fail = s.HoldLogin(ctx, proxy.POP3, creds.Identity()); fail != 0 {
			return s.fail(ctx, start, fail)
		}
	}
	master := d.Backend.Login == proxy.LoginMaster && !creds.Token()
	if master {
		// The client's password is checked by the backend itself first.
		v, ok2, text, err := dialLogin(ctx, c, ep, d.Backend, creds, false)
		if v != nil {
			v.nc.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(v.nc, "QUIT\r\n")
			v.nc.Close()
		}
		if fail := s.loginClass(log, d, start, ok2, text, err, false); fail != 0 {
			return s.fail(ctx, start, fail)
		}
	}
	b, ok2, text, err := dialLogin(ctx, c, ep, d.Backend, creds, master)
	if fail := s.loginClass(log, d, start, ok2, text, err, master); fail != 0 {
		if b != nil {
			b.nc.Close()
		}
		return s.fail(ctx, start, fail)
	}
	u, mapped, err := s.h.uidlMap(ctx, d)
	if err != nil {
		// Without its map a migrated account would show every kept
		// message as new: better a temporary failure.
		log.Error("read the POP3 UIDL map", "err", err)
		b.nc.Close()
		return s.fail(ctx, start, proxy.FailTemporary)
	}
	log.Info("login")
	if mapped {
		return s.bridgeUIDL(ctx, log, d, b, text, u)
	}
	return s.bridge(ctx, log, d, b, text)
}

// fail answers a failed login from the reply table, after the failure
// delay.
func (s *session) fail(ctx context.Context, start time.Time, class proxy.FailClass) error {
	s.c.LoginFailed(ctx, start, class)
	return s.writef("%s", replies[class])
}

// loginClass classifies a backend login: 0 when it succeeded, else the
// failure's class. verified says that the backend already accepted the
// client's own credentials (the master login of a master backend); an
// [IN-USE] answer verifies them too. Only then may the client learn of a
// backend problem. The backend's text goes to the log only.
func (s *session) loginClass(log *slog.Logger, d proxy.Decision, start time.Time, ok bool, text string, err error, verified bool) proxy.FailClass {
	if errors.Is(err, errInUse) {
		log.Info("backend maildrop in use")
		return proxy.FailTemporary
	}
	return s.c.LoginOutcome(log, d.Backend.Name, start, !ok, err, verified, "reply", text)
}

func (s *session) bridge(ctx context.Context, log interface{ Info(string, ...any) }, d proxy.Decision, b *backend, okLine string) error {
	bp := proxy.Pending(b.br)
	b.br = nil
	// POP3 has no unsolicited response: an idle session, or one whose
	// route changed, is just closed (RFC 1939's autologout timer);
	// BridgeSession still counts the route change.
	up, down, idled, err := s.Bridge(ctx, d, proxy.POP3, b.nc, bp, okLine, nil)
	if err != nil {
		return err
	}
	log.Info("session ended", "up", up, "down", down, "idle_timeout", idled)
	return errClose
}

type backend struct {
	nc net.Conn
	br *bufio.Reader
}

func (b *backend) line() (string, error) {
	l, err := wire.ReadLine(b.br, wire.MaxLine)
	return string(l), err
}

func (b *backend) cmd(format string, args ...any) (string, error) {
	if _, err := fmt.Fprintf(b.nc, format+"\r\n", args...); err != nil {
		return "", err
	}
	return b.line()
}

// multi reads a multi-line response body up to ".".
func (b *backend) multi() ([]string, error) {
	var out []string
	for {
		l, err := b.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return out, nil
		}
		out = append(out, l)
	}
}

// dialLogin connects and logs in; ok false with a nil error is a refused
// login; text is the backend's +OK line on success.
func dialLogin(ctx context.Context, c *proxy.Conn, ep proxy.Endpoint, be *proxy.Backend, creds *wire.Credentials, master bool) (b *backend, ok bool, text string, err error) {
	ctx, cancel := context.WithTimeout(ctx, BackendTimeout)
	defer cancel()
	nc, err := proxy.Dial(ctx, ep, c.Client, c.Local)
	if err != nil {
		return nil, false, "", err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	b = &backend{nc: nc, br: bufio.NewReaderSize(nc, 1024)}
	fail := func(err error) (*backend, bool, string, error) {
		nc.Close()
		return nil, false, "", err
	}
	greeted := proxy.GreetingDeadline(nc, ep)
	g, err := b.line()
	greeted()
	if err != nil {
		return fail(fmt.Errorf("read backend greeting: %w", err))
	}
	if !strings.HasPrefix(g, "+OK") {
		return fail(fmt.Errorf("backend greeting %.40q", g))
	}
	if ep.TLS == proxy.TLSStartTLS {
		r, err := b.cmd("STLS")
		if err != nil {
			return fail(err)
		}
		if !strings.HasPrefix(r, "+OK") {
			return fail(fmt.Errorf("backend refused STLS"))
		}
		tc, err := proxy.ClientHandshake(ctx, nc, ep)
		if err != nil {
			return fail(fmt.Errorf("tls to backend: %w", err))
		}
		b.nc, b.br = tc, bufio.NewReaderSize(tc, 1024)
	}
	if err := proxy.CheckCredentialsSafe(ep, b.nc); err != nil {
		return fail(err)
	}
	if ep.XCLIENT && !ep.ProxyProtocol {
		// Dovecot announces XCLIENT in its greeting ("+OK [XCLIENT] …"),
		// others in CAPA.
		has := strings.Contains(g, "[XCLIENT]")
		if !has {
			r, err := b.cmd("CAPA")
			if err != nil {
				return fail(err)
			}
			if strings.HasPrefix(r, "+OK") {
				caps, err := b.multi()
				if err != nil {
					return fail(err)
				}
				for _, cp := range caps {
					if f := strings.Fields(cp); len(f) > 0 && strings.EqualFold(f[0], "XCLIENT") {
						has = true
					}
				}
			}
		}
		if has {
			r, err := b.cmd("XCLIENT ADDR=%s PORT=%d", c.Client.Addr(), c.Client.Port())
			if err != nil {
				return fail(err)
			}
			if !strings.HasPrefix(r, "+OK") {
				c.Log.Debug("backend refused XCLIENT")
			}
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
	r, err := b.cmd("AUTH %s %s", mech, wire.EncodeBase64(msg))
	if err != nil {
		return fail(err)
	}
	for strings.HasPrefix(r, "+ ") || r == "+" {
		// A challenge after the initial response: a refused token's
		// error report. Answered as the mechanism says, so the backend
		// ends with its -ERR and counts a failed login ("*" would be an
		// abort).
		if r, err = b.cmd("%s", tokenErrorLine(mech)); err != nil {
			return fail(err)
		}
	}
	if strings.HasPrefix(r, "+OK") {
		return b, true, r, nil
	}
	if strings.Contains(r, "[IN-USE]") {
		nc.Close()
		return nil, false, "", fmt.Errorf("backend: %.80s: %w", r, errInUse)
	}
	if strings.Contains(r, "[SYS/TEMP]") {
		nc.Close()
		return nil, false, "", fmt.Errorf("backend: %.80s", r)
	}
	return b, false, r, nil
}

// tokenErrorLine answers a server challenge during a token login
// (wire.TokenErrorReply, base64; an empty response is an empty line), or
// cancels for other mechanisms.
func tokenErrorLine(mech string) string {
	reply, ok := wire.TokenErrorReply(mech)
	if !ok {
		return "*"
	}
	return base64.StdEncoding.EncodeToString(reply)
}
