package imap

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
)

// MaxBadCommands is how many BAD answers a client gets before login until
// the proxy says BYE.
const MaxBadCommands = 20

// Options configure the IMAP front. A nil *Options means defaults.
type Options struct {
	// Greeting is the text of the greeting. Default: "mailmig proxy ready".
	Greeting string
}

// Handler is the IMAP front. It implements proxy.Handler.
type Handler struct {
	greeting string
}

var _ proxy.Handler = (*Handler)(nil)

// New returns an IMAP handler.
func New(opts *Options) *Handler {
	h := &Handler{greeting: "mailmig proxy ready"}
	if opts != nil && opts.Greeting != "" {
		h.greeting = opts.Greeting
	}
	return h
}

// session is one client connection before login.
type session struct {
	*proxy.PreAuth
	h   *Handler
	c   *proxy.Conn
	bad int

	clientID [][2]string
}

// errClose ends the session after the response was written.
var errClose = errors.New("close session")

// ServeConn implements proxy.Handler.
func (h *Handler) ServeConn(ctx context.Context, c *proxy.Conn) {
	s := &session{PreAuth: proxy.NewPreAuth(c, 4096, 1024), h: h, c: c}
	c.OnEnd(func(reason string) {
		s.writef("* BYE %s", reason)
		c.Abort()
	})
	s.writef("* OK [CAPABILITY %s] %s", s.capabilities(), h.greeting)
	for {
		s.ReadDeadline()
		cmd, err := wire.ReadCommandLimits(s.Reader(), func() error { return s.writef("+ Ready for literal data") }, wire.IMAPLimits)
		if err != nil {
			if !s.readError(cmd, err) {
				return
			}
			continue
		}
		err = s.dispatch(ctx, cmd)
		if errors.Is(err, errClose) {
			return
		}
		if err != nil {
			c.Log.Debug("imap pre-auth", "err", err)
			return
		}
	}
}

// readError answers a failed read and reports whether the session goes on.
func (s *session) readError(cmd *wire.Command, err error) bool {
	var le *wire.LiteralError
	switch {
	case errors.As(err, &le) && le.Sync:
		s.writef("%s BAD [TOOBIG] Literal too large", tagOf(cmd))
		return s.countBad()
	case errors.Is(err, wire.ErrLiteralTooLarge):
		s.writef("* BYE [TOOBIG] Literal too large")
	case errors.Is(err, wire.ErrLineTooLong):
		s.writef("* BYE [TOOBIG] Line too long")
	case errors.Is(err, wire.ErrSyntax):
		s.writef("* BAD Invalid characters in command")
		return s.countBad()
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.TimeoutGoodbye("* BYE Autologout; idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.c.Log.Debug("imap read", "err", err)
	}
	return false
}

func tagOf(cmd *wire.Command) string {
	if cmd == nil {
		return "*"
	}
	var tag string
	if wire.NewDecoder(cmd).ExpectTag(&tag) {
		return tag
	}
	return "*"
}

func (s *session) countBad() bool {
	s.bad++
	if s.bad >= MaxBadCommands {
		s.writef("* BYE Too many invalid commands")
		return false
	}
	return true
}

// writef writes one response line and flushes it.
func (s *session) writef(format string, args ...any) error { return s.Writef(format, args...) }

// capabilities returns the pre-login capability list. RFC 9051 7.2.2;
// RFC 4959 (SASL-IR); RFC 7888 (LITERAL+); RFC 2971 (ID).
func (s *session) capabilities() string {
	caps := []string{"IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"}
	if s.c.CanStartTLS() {
		caps = append(caps, "STARTTLS")
	}
	if s.loginDisabled() {
		caps = append(caps, "LOGINDISABLED")
	} else {
		caps = append(caps, "AUTH=PLAIN", "AUTH=LOGIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER")
	}
	return strings.Join(caps, " ")
}

// loginDisabled: TLS is configured for the listener but not active yet.
func (s *session) loginDisabled() bool { return s.LoginDisabled() }

// commands is the not-authenticated command table (RFC 9051 6.1, 6.2).
var commands = map[string]func(s *session, ctx context.Context, tag string, d *wire.Decoder) error{
	"CAPABILITY":   (*session).handleCapability,
	"NOOP":         (*session).handleNoop,
	"LOGOUT":       (*session).handleLogout,
	"ID":           (*session).handleID,
	"STARTTLS":     (*session).handleStartTLS,
	"LOGIN":        (*session).handleLogin,
	"AUTHENTICATE": (*session).handleAuthenticate,
}

// syntaxError is answered with BAD.
type syntaxError struct{ msg string }

func (e syntaxError) Error() string { return e.msg }

func (s *session) dispatch(ctx context.Context, cmd *wire.Command) error {
	d := wire.NewDecoder(cmd)
	var tag, name string
	if !d.ExpectTag(&tag) {
		s.writef("* BAD Missing tag")
		if !s.countBad() {
			return errClose
		}
		return nil
	}
	if !d.ExpectSP() || !d.ExpectAtom(&name) {
		s.writef("%s BAD Missing command", tag)
		if !s.countBad() {
			return errClose
		}
		return nil
	}
	s.c.Log.Log(ctx, proxy.LevelTrace, "command", "cmd", strings.ToUpper(name))
	fn, ok := commands[strings.ToUpper(name)]
	if !ok {
		s.writef("%s BAD Unknown command or not allowed before login", tag)
		if !s.countBad() {
			return errClose
		}
		return nil
	}
	err := fn(s, ctx, tag, d)
	var se syntaxError
	if errors.As(err, &se) || (err != nil && errors.Is(err, wire.ErrSyntax)) {
		s.writef("%s BAD %s", tag, strings.TrimPrefix(err.Error(), "syntax error: "))
		if !s.countBad() {
			return errClose
		}
		return nil
	}
	return err
}

// RFC 9051 6.1.1
func (s *session) handleCapability(ctx context.Context, tag string, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	s.writef("* CAPABILITY %s", s.capabilities())
	return s.writef("%s OK CAPABILITY completed", tag)
}

// RFC 9051 6.1.2
func (s *session) handleNoop(ctx context.Context, tag string, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	return s.writef("%s OK NOOP completed", tag)
}

// RFC 9051 6.1.3
func (s *session) handleLogout(ctx context.Context, tag string, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	s.writef("* BYE Logging out")
	s.writef("%s OK LOGOUT completed", tag)
	return errClose
}

// RFC 2971
func (s *session) handleID(ctx context.Context, tag string, d *wire.Decoder) error {
	var params [][2]string
	if !d.ExpectSP() || !d.ExpectIDParams(&params) || !d.ExpectEnd() {
		return d.Err()
	}
	s.clientID = params
	s.writef(`* ID ("name" "mailmig")`)
	return s.writef("%s OK ID completed", tag)
}

// RFC 9051 6.2.1
func (s *session) handleStartTLS(ctx context.Context, tag string, d *wire.Decoder) error {
	if !d.ExpectEnd() {
		return d.Err()
	}
	if !s.c.CanStartTLS() {
		return s.writef("%s BAD STARTTLS not available", tag)
	}
	if err := s.writef("%s OK Begin TLS negotiation now", tag); err != nil {
		return err
	}
	return s.StartTLS(ctx)
}

// RFC 9051 6.2.3
func (s *session) handleLogin(ctx context.Context, tag string, d *wire.Decoder) error {
	var user, pass string
	if !d.ExpectSP() || !d.ExpectAString(&user) || !d.ExpectSP() || !d.ExpectAString(&pass) || !d.ExpectEnd() {
		return d.Err()
	}
	if s.loginDisabled() {
		return s.writef("%s NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS", tag)
	}
	return s.login(ctx, tag, &wire.Credentials{Mechanism: wire.MechLogin, Authcid: user, Password: pass})
}

// RFC 9051 6.2.2; RFC 4959
func (s *session) handleAuthenticate(ctx context.Context, tag string, d *wire.Decoder) error {
	var mech, irText string
	if !d.ExpectSP() || !d.ExpectAtom(&mech) {
		return d.Err()
	}
	var ir []byte
	if d.Consume(' ') {
		if !d.ExpectWord(&irText) || !d.ExpectEnd() {
			return d.Err()
		}
		b, err := wire.DecodeBase64(irText)
		if err != nil {
			return syntaxError{"Invalid base64 in initial response"}
		}
		ir = b
	} else if !d.ExpectEnd() {
		return d.Err()
	}
	mech = strings.ToUpper(mech)
	switch mech {
	case wire.MechPlain, wire.MechLogin, wire.MechXOAuth2, wire.MechOAuthBearer:
	default:
		return s.writef("%s NO [CANNOT] Unsupported authentication mechanism", tag)
	}
	if s.loginDisabled() {
		return s.writef("%s NO [PRIVACYREQUIRED] Authentication is disabled before STARTTLS", tag)
	}
	creds, err := wire.Exchange(mech, ir, func(ch []byte) ([]byte, error) {
		if err := s.writef("+ %s", encodeChallenge(ch)); err != nil {
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
		return s.writef("%s BAD Authentication cancelled", tag)
	case errors.Is(err, wire.ErrSASL):
		s.c.AuthFailed()
		return s.writef("%s NO [AUTHENTICATIONFAILED] Invalid authentication data", tag)
	case err != nil:
		return err
	}
	return s.login(ctx, tag, creds)
}

func encodeChallenge(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return wire.EncodeBase64(b)
}
