// Package sieveclient is the ManageSieve (RFC 5804) client of the Sieve
// source and target: connect (implicit TLS, STARTTLS or, when allowed,
// cleartext), log in (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER; master logins in
// both forms) and the script verbs LISTSCRIPTS, GETSCRIPT, PUTSCRIPT,
// SETACTIVE and DELETESCRIPT.
//
// The greeting, capability parsing and TLS upgrades are
// github.com/migadu/go-managesieve's managesieveclient, which the proxy's
// Sieve front also uses; it stops at authentication (it was written for
// relays), so the verbs, the SASL exchange and the response parser (string
// literals, response codes, multi-line error texts) are written here.
//
// A Client is used by one goroutine at a time.
package sieveclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/migadu/go-managesieve/managesieveclient"

	"github.com/mailmig/mailmig/vandelay"
)

// Options configure [Dial].
type Options struct {
	vandelay.Server
	vandelay.Login
	// Timeout bounds each command. Default: 2 minutes.
	Timeout time.Duration
}

// Client is one logged-in ManageSieve connection.
type Client struct {
	conn    net.Conn
	dec     *decoder
	bw      *bufio.Writer
	caps    map[string]string
	timeout time.Duration
}

// Script is one entry of LISTSCRIPTS.
type Script struct {
	Name   string
	Active bool
}

// Error is a NO or BYE answer of the server. Text is the server's own
// words (a Sieve compile error for PUTSCRIPT), passed on to the user.
type Error struct {
	Command string // the verb, e.g. PUTSCRIPT
	Status  string // NO or BYE
	Code    string // response code without parentheses, e.g. NONEXISTENT
	Text    string
}

func (e *Error) Error() string {
	s := strings.ToLower(e.Command) + ": server said " + e.Status
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Text != "" {
		s += ": " + strings.TrimSpace(e.Text)
	}
	return s
}

// Dial connects and logs in. Errors wrap vandelay.ErrUsage (bad
// settings), vandelay.ErrConnect or vandelay.ErrAuth.
func Dial(ctx context.Context, o *Options) (*Client, error) {
	host, _, err := net.SplitHostPort(o.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: bad address %q (want host:port): %w", vandelay.ErrUsage, o.Address, err)
	}
	sn := o.ServerName
	if sn == "" {
		sn = host
	}
	// The connection is ours (the library's Dialer has no TLS or
	// greeting bound): the server's timeouts apply to connecting, the TLS
	// handshake and the greeting, as for the IMAP and POP3 sources.
	var mo managesieveclient.Options
	tlsCfg := &tls.Config{ServerName: sn, InsecureSkipVerify: o.InsecureSkipVerify}
	switch o.TLS {
	case vandelay.TLSImplicit, "", vandelay.TLSStartTLS:
	case vandelay.TLSNone:
		if !o.AllowCleartext {
			return nil, fmt.Errorf("%w: refusing to send credentials without TLS; pass --allow-cleartext for a trusted network", vandelay.ErrUsage)
		}
	default:
		return nil, fmt.Errorf("%w: unknown TLS mode %q", vandelay.ErrUsage, o.TLS)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	to := o.Timeouts.OrDefaults()
	conn, err := to.DialSession(ctx, "tcp", o.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, o.Address, err)
	}
	greet := to.ResponseHeader
	switch o.TLS {
	case vandelay.TLSImplicit, "":
		tc, err := to.Handshake(ctx, conn, tlsCfg)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, o.Address, err)
		}
		conn = tc
	case vandelay.TLSStartTLS:
		mo.TLSConfig, mo.STARTTLS = tlsCfg, true
		greet += to.TLSHandshake
	}
	dctx, cancel := context.WithTimeout(ctx, greet)
	defer cancel()
	conn.SetDeadline(time.Now().Add(greet))
	mc, err := managesieveclient.NewClient(dctx, conn, mo)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: connect to %s: %w", vandelay.ErrConnect, o.Address, err)
	}
	// The library is done once the connection is up: it has read the
	// greeting (and the post-STARTTLS capabilities) and buffers nothing
	// after the OK line, since the server sends nothing unasked.
	c := &Client{conn: mc.Conn(), dec: &decoder{r: mc.Reader()}, bw: bufio.NewWriter(mc.Conn()), caps: mc.Capabilities(), timeout: timeout}
	c.conn.SetDeadline(time.Time{})
	if err := c.login(ctx, o); err != nil {
		c.Close()
		var se *Error
		if errors.As(err, &se) && se.Status == "NO" {
			who := o.User
			if o.MasterUser != "" {
				who += " (master " + o.MasterUser + ")"
			}
			return nil, fmt.Errorf("%w: log in to %s as %s: %w", vandelay.ErrAuth, o.Address, who, err)
		}
		return nil, fmt.Errorf("%w: log in to %s: %w", vandelay.ErrConnect, o.Address, err)
	}
	return c, nil
}

// Capabilities returns the capabilities of the greeting (after STARTTLS
// when used), keyed by upper-case name ("SIEVE", "SASL", "IMPLEMENTATION").
func (c *Client) Capabilities() map[string]string { return c.caps }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) mechs() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields(c.caps["SASL"]) {
		m[strings.ToUpper(s)] = true
	}
	return m
}

// login authenticates like the IMAP source: PLAIN when offered (always
// with an authzid master login), else LOGIN; XOAUTH2 or OAUTHBEARER with a
// token.
func (c *Client) login(ctx context.Context, o *Options) error {
	user, authz := o.User, ""
	if o.MasterUser != "" {
		if strings.EqualFold(o.MasterForm, vandelay.MasterAuthzID) {
			user, authz = o.MasterUser, o.User
		} else {
			user = o.User + "*" + o.MasterUser
		}
	}
	switch strings.ToLower(o.Auth) {
	case vandelay.AuthXOAUTH2:
		// A refused token gets an error challenge (JSON) that the client
		// answers empty, then NO (Google's XOAUTH2 protocol).
		return c.authenticate(ctx, "XOAUTH2", []byte("user="+o.User+"\x01auth=Bearer "+o.Token+"\x01\x01"),
			func([]byte) ([]byte, error) { return []byte{}, nil })
	case vandelay.AuthOAuthBearer:
		host, port, _ := net.SplitHostPort(o.Address)
		pn, _ := strconv.Atoi(port)
		_, ir, _ := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: o.User, Token: o.Token, Host: host, Port: pn}).Start()
		// RFC 7628 3.2.3: the client answers an error challenge with ^A.
		return c.authenticate(ctx, "OAUTHBEARER", ir, func([]byte) ([]byte, error) { return []byte{1}, nil })
	case vandelay.AuthLogin:
		if authz != "" {
			return fmt.Errorf("%w: the authzid master form needs SASL PLAIN, not LOGIN", vandelay.ErrUsage)
		}
		return c.authenticate(ctx, "LOGIN", nil, func(ch []byte) ([]byte, error) {
			switch strings.ToLower(strings.TrimSpace(string(ch))) {
			case "username:":
				return []byte(user), nil
			case "password:":
				return []byte(o.Password), nil
			}
			return nil, fmt.Errorf("unexpected LOGIN challenge %q", ch)
		})
	case vandelay.AuthPlain, vandelay.AuthAuto:
		if o.Auth == vandelay.AuthAuto && authz == "" && !c.mechs()["PLAIN"] && c.mechs()["LOGIN"] {
			o2 := *o
			o2.Auth = vandelay.AuthLogin
			return c.login(ctx, &o2)
		}
		return c.authenticate(ctx, "PLAIN", []byte(authz+"\x00"+user+"\x00"+o.Password), nil)
	}
	return fmt.Errorf("%w: unknown auth mechanism %q", vandelay.ErrUsage, o.Auth)
}

// authenticate runs AUTHENTICATE (RFC 5804 2.1): the initial response on
// the command line, then one client string per server challenge.
func (c *Client) authenticate(ctx context.Context, mech string, ir []byte, next func([]byte) ([]byte, error)) error {
	defer c.guard(ctx)()
	line := "AUTHENTICATE " + quote(mech)
	if ir != nil {
		line += " " + quote(base64.StdEncoding.EncodeToString(ir))
	}
	if err := c.send(line); err != nil {
		return err
	}
	for {
		toks := c.dec.readLine()
		if c.dec.err != nil {
			return c.dec.err
		}
		if len(toks) > 0 && toks[0].kind == tokAtom {
			st := strings.ToUpper(toks[0].s)
			if st == "OK" || st == "NO" || st == "BYE" {
				r := statusOf(toks)
				return r.err("AUTHENTICATE")
			}
		}
		if len(toks) != 1 || toks[0].kind != tokString {
			return fmt.Errorf("%w: bad AUTHENTICATE challenge", errSyntax)
		}
		ch, err := base64.StdEncoding.DecodeString(toks[0].s)
		if err != nil || next == nil {
			c.send(`"*"`) // RFC 5804 2.1: cancel
			c.dec.readResponse()
			return fmt.Errorf("%w: unexpected AUTHENTICATE challenge", errSyntax)
		}
		resp, err := next(ch)
		if err != nil {
			c.send(`"*"`)
			c.dec.readResponse()
			return err
		}
		if err := c.send(quote(base64.StdEncoding.EncodeToString(resp))); err != nil {
			return err
		}
	}
}

func statusOf(toks []token) *response {
	r := &response{status: strings.ToUpper(toks[0].s)}
	rest := toks[1:]
	if len(rest) > 0 && rest[0].kind == tokCode {
		r.code, rest = rest[0].s, rest[1:]
	}
	if len(rest) > 0 && rest[0].kind == tokString {
		r.text = rest[0].s
	}
	return r
}

func (r *response) err(cmd string) error {
	if r.status == "OK" {
		return nil
	}
	return &Error{Command: cmd, Status: r.status, Code: r.code, Text: r.text}
}

// guard bridges ctx and the per-command timeout to the connection, which
// ignores contexts.
func (c *Client) guard(ctx context.Context) func() {
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	return func() { stop() }
}

func (c *Client) send(line string) error {
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return err
	}
	return c.bw.Flush()
}

// cmd sends line and reads the response; a NO or BYE is an *Error.
func (c *Client) cmd(ctx context.Context, verb, line string) (*response, error) {
	defer c.guard(ctx)()
	if err := c.send(line); err != nil {
		return nil, fmt.Errorf("%s: %w", strings.ToLower(verb), err)
	}
	r, err := c.dec.readResponse()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.ToLower(verb), err)
	}
	return r, r.err(verb)
}

// quote returns s as a quoted string, or as a non-synchronising literal
// (RFC 5804 4: clients send literals as {N+}) when it holds CR, LF or NUL,
// which quoted strings cannot carry, or bytes outside ASCII: Cyrus 3.6's
// timsieved fails to parse a quoted string with UTF-8 in it and then reads
// the rest of the command (a script body) as commands.
func quote(s string) string {
	if strings.ContainsAny(s, "\r\n\x00") || !isASCII(s) {
		return "{" + strconv.Itoa(len(s)) + "+}\r\n" + s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// ListScripts returns the account's scripts (RFC 5804 2.7).
func (c *Client) ListScripts(ctx context.Context) ([]Script, error) {
	r, err := c.cmd(ctx, "LISTSCRIPTS", "LISTSCRIPTS")
	if err != nil {
		return nil, err
	}
	var out []Script
	for _, l := range r.data {
		if len(l) == 0 || l[0].kind != tokString {
			return nil, fmt.Errorf("listscripts: %w: a line without a script name", errSyntax)
		}
		s := Script{Name: l[0].s}
		s.Active = len(l) > 1 && l[1].kind == tokAtom && strings.EqualFold(l[1].s, "ACTIVE")
		out = append(out, s)
	}
	return out, nil
}

// GetScript returns a script's bytes exactly as the server stores them
// (RFC 5804 2.9).
func (c *Client) GetScript(ctx context.Context, name string) ([]byte, error) {
	r, err := c.cmd(ctx, "GETSCRIPT", "GETSCRIPT "+quote(name))
	if err != nil {
		return nil, err
	}
	if len(r.data) != 1 || len(r.data[0]) != 1 || r.data[0][0].kind != tokString {
		return nil, fmt.Errorf("getscript %q: %w: want one string", name, errSyntax)
	}
	return []byte(r.data[0][0].s), nil
}

// PutScript stores a script under name, replacing one of that name (RFC
// 5804 2.6). The server compiles it first; a script it refuses is an
// *Error whose Text is the server's compile error.
func (c *Client) PutScript(ctx context.Context, name string, body []byte) error {
	_, err := c.cmd(ctx, "PUTSCRIPT", "PUTSCRIPT "+quote(name)+" {"+strconv.Itoa(len(body))+"+}\r\n"+string(body))
	return err
}

// SetActive makes name the active script; "" deactivates all (RFC 5804 2.8).
func (c *Client) SetActive(ctx context.Context, name string) error {
	_, err := c.cmd(ctx, "SETACTIVE", "SETACTIVE "+quote(name))
	return err
}

// DeleteScript deletes a script; the active one cannot be deleted (RFC
// 5804 2.10).
func (c *Client) DeleteScript(ctx context.Context, name string) error {
	_, err := c.cmd(ctx, "DELETESCRIPT", "DELETESCRIPT "+quote(name))
	return err
}

// Logout ends the session and closes the connection.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.cmd(ctx, "LOGOUT", "LOGOUT")
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}
