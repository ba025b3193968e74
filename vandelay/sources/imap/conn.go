package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailmig/mailmig/vandelay"
)

// dial connects and logs in according to the configuration. The
// not-authenticated state runs in preauth (so that COMPRESS=DEFLATE can be
// negotiated, which go-imap v2 cannot), then go-imap takes the connection.
func (s *Source) dial(ctx context.Context) (*imapclient.Client, error) {
	cfg := s.cfg
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: bad address %q (want host:port): %w", vandelay.ErrUsage, cfg.Address, err)
	}
	sn := cfg.ServerName
	if sn == "" {
		sn = host
	}
	tlsCfg := &tls.Config{ServerName: sn, InsecureSkipVerify: cfg.InsecureSkipVerify}
	to := cfg.Timeouts.OrDefaults()
	var conn net.Conn
	switch cfg.TLS {
	case vandelay.TLSImplicit, "", vandelay.TLSStartTLS:
		conn, err = to.DialSession(ctx, "tcp", cfg.Address)
	case vandelay.TLSNone:
		if !cfg.AllowCleartext {
			return nil, fmt.Errorf("%w: refusing to send credentials without TLS; pass --allow-cleartext for a trusted network", vandelay.ErrUsage)
		}
		conn, err = to.DialSession(ctx, "tcp", cfg.Address)
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", vandelay.ErrUsage, cfg.TLS)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, cfg.Address, err)
	}
	if cfg.TLS == vandelay.TLSImplicit || cfg.TLS == "" {
		tc, herr := to.Handshake(ctx, conn, tlsCfg)
		if herr != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, cfg.Address, herr)
		}
		conn = tc
	}
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	p := &preauth{conn: conn, br: bufio.NewReader(conn), timeout: to.ResponseHeader, tlsTimeout: to.TLSHandshake}
	fail := func(err error) (*imapclient.Client, error) {
		raw.Close()
		return nil, err
	}
	pre, err := p.greeting()
	if err != nil {
		return fail(fmt.Errorf("%w: greeting from %s: %w", vandelay.ErrConnect, cfg.Address, err))
	}
	if cfg.TLS == vandelay.TLSStartTLS {
		if pre {
			return fail(fmt.Errorf("%w: %s sent PREAUTH on a connection that must use STARTTLS", vandelay.ErrConnect, cfg.Address))
		}
		if err := p.capability(); err != nil {
			return fail(fmt.Errorf("%w: %s: %w", vandelay.ErrConnect, cfg.Address, err))
		}
		if !p.caps["STARTTLS"] {
			return fail(fmt.Errorf("%w: %s does not offer STARTTLS", vandelay.ErrConnect, cfg.Address))
		}
		if err := p.startTLS(tlsCfg); err != nil {
			return fail(fmt.Errorf("%w: STARTTLS with %s: %w", vandelay.ErrConnect, cfg.Address, err))
		}
	}
	if !pre {
		if err := p.capability(); err != nil {
			return fail(fmt.Errorf("%w: %s: %w", vandelay.ErrConnect, cfg.Address, err))
		}
		gen := p.gen
		if err := s.login(p); err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAuthenticationFailed || ie.Code == imap.ResponseCodeAuthorizationFailed ||
				ie.Type == imap.StatusResponseTypeNo) && !temporary(err) {
				return fail(fmt.Errorf("%w: log in to %s as %s: %w", vandelay.ErrAuth, cfg.Address, s.login0(), err))
			}
			return fail(fmt.Errorf("%w: log in to %s: %w", vandelay.ErrConnect, cfg.Address, err))
		}
		if p.gen == gen { // no capabilities with the login reply: ask, they change
			p.caps, p.line = nil, ""
			if err := p.capability(); err != nil {
				return fail(fmt.Errorf("%w: %s: %w", vandelay.ErrConnect, cfg.Address, err))
			}
		}
	}
	compressed := false
	if p.caps["COMPRESS=DEFLATE"] && !cfg.NoCompress {
		if err := p.compress(); err != nil {
			return fail(fmt.Errorf("%w: COMPRESS DEFLATE with %s: %w", vandelay.ErrConnect, cfg.Address, err))
		}
		compressed = true
	}
	c := imapclient.New(p.authenticatedConn(), nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s: %w", vandelay.ErrConnect, cfg.Address, err)
	}
	if compressed {
		s.count(func(st *Stats) { st.Compressed++ })
	}
	// RFC 6855: with UTF8=ACCEPT the server may send UTF-8 mailbox names;
	// go-imap decodes and encodes names either way.
	if c.Caps().Has(imap.CapUTF8Accept) {
		if _, err := c.Enable(imap.CapUTF8Accept).Wait(); err != nil {
			s.log.Debug("ENABLE UTF8=ACCEPT refused", "err", err)
		}
	}
	return c, nil
}

// login0 is the user name shown in messages (never a password).
func (s *Source) login0() string {
	if s.cfg.MasterUser != "" {
		return s.cfg.User + " (master " + s.cfg.MasterUser + ")"
	}
	return s.cfg.User
}

func (s *Source) login(p *preauth) error {
	cfg := s.cfg
	switch strings.ToLower(cfg.Auth) {
	case vandelay.AuthXOAUTH2:
		return p.authenticate(NewXOAUTH2Client(cfg.User, cfg.Token))
	case vandelay.AuthOAuthBearer:
		host, port, _ := net.SplitHostPort(cfg.Address)
		pn, _ := strconv.Atoi(port)
		return p.authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: cfg.User, Token: cfg.Token, Host: host, Port: pn}))
	}
	user, authz := cfg.User, ""
	if cfg.MasterUser != "" {
		if strings.EqualFold(cfg.MasterForm, vandelay.MasterAuthzID) {
			user, authz = cfg.MasterUser, cfg.User
		} else {
			user = cfg.User + "*" + cfg.MasterUser
		}
	}
	usePlain := authz != "" || strings.EqualFold(cfg.Auth, vandelay.AuthPlain) ||
		(cfg.Auth == vandelay.AuthAuto && p.caps["AUTH=PLAIN"])
	if usePlain {
		return p.authenticate(sasl.NewPlainClient(authz, user, cfg.Password))
	}
	if p.caps["LOGINDISABLED"] {
		return errors.New("server disables LOGIN (it wants TLS or another mechanism)")
	}
	return p.login(user, cfg.Password)
}

// temporary reports whether an error is worth a retry after a backoff: the
// server asked us to slow down or is busy ([LIMIT], [UNAVAILABLE],
// [INUSE]; RFC 5530), or the connection dropped.
func temporary(err error) bool {
	if err == nil {
		return false
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		switch ie.Code {
		case imap.ResponseCodeLimit, imap.ResponseCodeUnavailable, imap.ResponseCodeInUse, "SERVERBUG":
			return true
		}
		return ie.Type == imap.StatusResponseTypeBye
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe") || strings.Contains(s, "use of closed")
}

// XOAUTH2Client is the SASL XOAUTH2 mechanism of Google and Microsoft,
// which go-sasl lacks: one initial response "user=U^Aauth=Bearer T^A^A";
// on failure the server sends a JSON challenge, answered with an empty
// line, and then fails the command.
type XOAUTH2Client struct {
	user, token string
}

// NewXOAUTH2Client returns an XOAUTH2 SASL client.
func NewXOAUTH2Client(user, token string) *XOAUTH2Client {
	return &XOAUTH2Client{user: user, token: token}
}

// Start implements sasl.Client.
func (c *XOAUTH2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next implements sasl.Client.
func (c *XOAUTH2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

var _ sasl.Client = (*XOAUTH2Client)(nil)

// Dial connects and logs in as a source would (TLS mode, master login,
// SASL, COMPRESS=DEFLATE, the timeouts), for a caller that writes to the
// server: the IMAP target (package vandelay/targets/imap) uses it to copy
// mail back onto a source. The caller closes the client.
func Dial(ctx context.Context, opts *Options) (*imapclient.Client, error) {
	src, err := New(opts)
	if err != nil {
		return nil, err
	}
	return src.(*Source).dial(ctx)
}
