package imap

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/internal/wire"
)

// BackendTimeout bounds the login dialogue with a backend.
const BackendTimeout = 30 * time.Second

// replies is the IMAP reply table of failed logins (proxy.FailClass):
// one answer per class, whatever the cause. RFC 5530 response codes.
var replies = map[proxy.FailClass]string{
	proxy.FailUser:      "NO [AUTHENTICATIONFAILED] Authentication failed.",
	proxy.FailTemporary: "NO [UNAVAILABLE] Account temporarily unavailable, try again later.",
	proxy.FailInternal:  "NO [SERVERBUG] Internal error, try again later.",
}

// login routes the credentials, logs in at the backend and bridges. A
// master backend first checks the client's own credentials with a
// passthrough login.
func (s *session) login(ctx context.Context, tag string, creds *wire.Credentials) error {
	c := s.c
	start := time.Now()
	d, ep, log, fail := s.RouteLogin(ctx, proxy.IMAP, creds.Identity())
	if fail != 0 {
		return s.fail(ctx, tag, start, fail)
	}
	if d.Frozen() {
		// Held only once the backend that holds the account accepted
		// the credentials (proxy.PreAuth.RouteLogin).
		v, res, err := dialLogin(ctx, c, ep, d.Backend, creds, false, nil)
		if v != nil {
			v.logout()
		}
		if fail := s.loginClass(log, d, start, res, err, false); fail != 0 {
			return s.fail(ctx, tag, start, fail)
		}
		if d, ep, log, fail = s.HoldLogin(ctx, proxy.IMAP, creds.Identity()); fail != 0 {
			return s.fail(ctx, tag, start, fail)
		}
	}
	master := d.Backend.Login == proxy.LoginMaster && !creds.Token()
	if master {
		// The client's password is checked by the backend itself first.
		v, res, err := dialLogin(ctx, c, ep, d.Backend, creds, false, nil)
		if v != nil {
			v.logout()
		}
		if fail := s.loginClass(log, d, start, res, err, false); fail != 0 {
			return s.fail(ctx, tag, start, fail)
		}
	}
	b, res, err := dialLogin(ctx, c, ep, d.Backend, creds, master, s.clientID)
	if fail := s.loginClass(log, d, start, res, err, master); fail != 0 {
		if b != nil {
			b.nc.Close()
		}
		return s.fail(ctx, tag, start, fail)
	}
	log.Info("login", "duration", time.Since(start))
	return s.bridge(ctx, tag, log, d, b, res)
}

// fail answers a failed login from the reply table, after the failure
// delay.
func (s *session) fail(ctx context.Context, tag string, start time.Time, class proxy.FailClass) error {
	s.c.LoginFailed(ctx, start, class)
	return s.writef("%s %s", tag, replies[class])
}

// loginClass classifies a backend login (proxy.Conn.LoginOutcome).
func (s *session) loginClass(log *slog.Logger, d proxy.Decision, start time.Time, res *response, err error, verified bool) proxy.FailClass {
	refused := err == nil && res.status != "OK"
	var reply []any
	if res != nil {
		reply = []any{"status", res.status, "reply", res.text}
	}
	return s.c.LoginOutcome(log, d.Backend.Name, start, refused, err, verified, reply...)
}

// bridge answers the client with the backend's OK and copies bytes.
func (s *session) bridge(ctx context.Context, tag string, log interface {
	Info(string, ...any)
}, d proxy.Decision, b *backend, res *response) error {
	c := s.c
	text := res.text
	if !strings.HasPrefix(strings.ToUpper(text), "[CAPABILITY ") {
		caps, err := b.capability(ctx)
		if err == nil && caps != "" {
			text = "[CAPABILITY " + caps + "] " + text
		}
	}
	// From here on only the bridge writes to the client, and neither side
	// holds a buffer.
	bp := proxy.Pending(b.br)
	b.br = nil
	up, down, idled, err := s.Bridge(ctx, d, proxy.IMAP, b.nc, bp, tag+" OK "+text, func(r string, idle bool) {
		switch {
		case r != "":
			fmt.Fprintf(c.Conn, "* BYE [UNAVAILABLE] %s, please reconnect\r\n", r)
		case idle:
			fmt.Fprintf(c.Conn, "* BYE Autologout; idle for too long\r\n")
		}
	})
	if err != nil {
		return err
	}
	log.Info("session ended", "up", up, "down", down, "idle_timeout", idled)
	return errClose
}

// backend is a connection to a backend IMAP server before login.
type backend struct {
	nc   net.Conn
	br   *bufio.Reader
	caps []string
	n    int
}

// response is a backend's tagged response.
type response struct {
	status string // OK, NO, BAD
	text   string // after the status, with the response code
}

// dialLogin connects to the backend and logs in. With master set it uses
// the backend's master credentials for the client's identity. clientID is
// forwarded in the ID command when the endpoint forwards the client
// address. A non-nil error means the backend could not be used; a NO is a
// response with status NO.
func dialLogin(ctx context.Context, c *proxy.Conn, ep proxy.Endpoint, be *proxy.Backend, creds *wire.Credentials, master bool, clientID [][2]string) (*backend, *response, error) {
	ctx, cancel := context.WithTimeout(ctx, BackendTimeout)
	defer cancel()
	nc, err := proxy.Dial(ctx, ep, c.Client, c.Local)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	b := &backend{nc: nc, br: bufio.NewReaderSize(nc, 4096)}
	fail := func(err error) (*backend, *response, error) {
		nc.Close()
		return nil, nil, err
	}
	greeted := proxy.GreetingDeadline(nc, ep)
	greeting, err := b.readLine()
	greeted()
	if err != nil {
		return fail(fmt.Errorf("read backend greeting: %w", err))
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return fail(fmt.Errorf("backend greeting %.40q", greeting))
	}
	b.caps = capsFrom(greeting[4:])
	if ep.TLS == proxy.TLSStartTLS {
		res, err := b.command("STARTTLS")
		if err != nil {
			return fail(err)
		}
		if res.status != "OK" {
			return fail(fmt.Errorf("backend refused STARTTLS: %s", res.status))
		}
		tc, err := proxy.ClientHandshake(ctx, nc, ep)
		if err != nil {
			return fail(fmt.Errorf("tls to backend: %w", err))
		}
		b.nc, b.br, b.caps = tc, bufio.NewReaderSize(tc, 4096), nil
	}
	if err := proxy.CheckCredentialsSafe(ep, b.nc); err != nil {
		return fail(err)
	}
	if b.caps == nil {
		caps, err := b.capability(ctx)
		if err != nil {
			return fail(err)
		}
		b.caps = strings.Fields(strings.ToUpper(caps))
	}
	var pipelined string
	if ep.ForwardID {
		if b.has("SASL-IR") {
			// Pipelined with the AUTHENTICATE below, in the same write
			// (RFC 9051 5.5): one backend round trip and one segment less
			// per session. authenticate skips the ID's responses while it
			// waits for its own tag.
			pipelined = b.nextTag() + " " + idCommand(c, clientID) + "\r\n"
		} else if _, err := b.command(idCommand(c, clientID)); err != nil {
			return fail(err)
		}
	}
	var mech string
	var msg []byte
	if master && !creds.Token() {
		authzid, authcid, pass := be.MasterLogin(creds.Identity())
		mech, msg = wire.MechPlain, wire.EncodePlain(authzid, authcid, pass)
	} else {
		mech, msg = wire.BackendMessage(creds)
	}
	res, err := b.authenticate(pipelined, mech, msg)
	if err != nil {
		return fail(err)
	}
	return b, res, nil
}

// idCommand builds the ID command with the client's address (Dovecot's
// x-originating-ip family, honoured from login_trusted_networks) and the
// client's own ID fields.
func idCommand(c *proxy.Conn, clientID [][2]string) string {
	var sb strings.Builder
	sb.WriteString("ID (")
	fields := [][2]string{
		{"x-originating-ip", c.Client.Addr().String()},
		{"x-originating-port", strconv.Itoa(int(c.Client.Port()))},
		{"x-connected-ip", c.Local.Addr().String()},
		{"x-connected-port", strconv.Itoa(int(c.Local.Port()))},
	}
	// The client's x- fields would claim another address; the rest go on
	// as far as RFC 2971 3.3's 30 pairs allow next to the proxy's own.
	for _, f := range clientID {
		if len(fields) == wire.MaxIDPairs {
			break
		}
		if !strings.HasPrefix(strings.ToLower(f[0]), "x-") {
			fields = append(fields, f)
		}
	}
	for i, f := range fields {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(quote(f[0]) + " " + quote(f[1]))
	}
	sb.WriteString(")")
	return sb.String()
}

func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return `"` + quoteEscaper.Replace(s) + `"`
}

var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

func capsFrom(text string) []string {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(strings.ToUpper(text), "[CAPABILITY ") {
		return nil
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return nil
	}
	return strings.Fields(strings.ToUpper(text[len("[CAPABILITY "):end]))
}

func (b *backend) has(c string) bool {
	for _, x := range b.caps {
		if x == c {
			return true
		}
	}
	return false
}

// readLine reads one response line; literals in it are skipped (none are
// expected before login).
func (b *backend) readLine() (string, error) {
	cmd, err := wire.ReadCommand(b.br, nil)
	if err != nil {
		return "", err
	}
	return strings.ReplaceAll(cmd.Text, "\x00", `""`), nil
}

func (b *backend) nextTag() string {
	b.n++
	return "m" + strconv.Itoa(b.n)
}

// command sends one command and reads up to its tagged response; untagged
// CAPABILITY responses update caps.
func (b *backend) command(line string) (*response, error) {
	tag := b.nextTag()
	if _, err := fmt.Fprintf(b.nc, "%s %s\r\n", tag, line); err != nil {
		return nil, fmt.Errorf("write to backend: %w", err)
	}
	return b.await(tag)
}

func (b *backend) await(tag string) (*response, error) {
	for {
		line, err := b.readLine()
		if err != nil {
			return nil, fmt.Errorf("read from backend: %w", err)
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			status, text, _ := strings.Cut(rest, " ")
			return &response{status: strings.ToUpper(status), text: text}, nil
		}
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			b.caps = strings.Fields(strings.ToUpper(rest))
		}
		if strings.HasPrefix(line, "* BYE") {
			return nil, fmt.Errorf("backend said %.60q", line)
		}
	}
}

// capability asks for the capability list and returns it as sent.
func (b *backend) capability(ctx context.Context) (string, error) {
	tag := b.nextTag()
	if _, err := fmt.Fprintf(b.nc, "%s CAPABILITY\r\n", tag); err != nil {
		return "", err
	}
	var caps string
	for {
		line, err := b.readLine()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			caps = rest
			b.caps = strings.Fields(strings.ToUpper(rest))
		}
		if strings.HasPrefix(line, tag+" ") {
			return caps, nil
		}
	}
}

// authenticate runs AUTHENTICATE with SASL-IR when offered, else with one
// continuation. With SASL-IR, pipelined (complete command lines) is sent
// in the same write before it.
func (b *backend) authenticate(pipelined, mech string, msg []byte) (*response, error) {
	tag := b.nextTag()
	if b.has("SASL-IR") {
		if _, err := io.WriteString(b.nc, pipelined+tag+" AUTHENTICATE "+mech+" "+wire.EncodeBase64(msg)+"\r\n"); err != nil {
			return nil, err
		}
	} else {
		if _, err := fmt.Fprintf(b.nc, "%s AUTHENTICATE %s\r\n", tag, mech); err != nil {
			return nil, err
		}
		line, err := b.readLine()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(line, "+") {
			status, text, _ := strings.Cut(strings.TrimPrefix(line, tag+" "), " ")
			return &response{status: strings.ToUpper(status), text: text}, nil
		}
		if _, err := fmt.Fprintf(b.nc, "%s\r\n", wire.EncodeBase64(msg)); err != nil {
			return nil, err
		}
	}
	for {
		line, err := b.readLine()
		if err != nil {
			return nil, fmt.Errorf("read from backend: %w", err)
		}
		if strings.HasPrefix(line, "+") {
			// A further challenge is a token mechanism's error report
			// (RFC 7628 3.2.2; Google's XOAUTH2): answer it the way the
			// mechanism says, so the backend ends with its NO
			// [AUTHENTICATIONFAILED] and counts a failed login. "*" would
			// be an abort (BAD, not counted as a failure).
			fmt.Fprintf(b.nc, "%s\r\n", errorChallengeReply(mech))
			continue
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			status, text, _ := strings.Cut(rest, " ")
			return &response{status: strings.ToUpper(status), text: text}, nil
		}
	}
}

// errorChallengeReply is the line answering a server challenge during a
// token login (wire.TokenErrorReply, base64; an empty response is an empty
// line), or a cancel for other mechanisms.
func errorChallengeReply(mech string) string {
	reply, ok := wire.TokenErrorReply(mech)
	if !ok {
		return "*"
	}
	return base64.StdEncoding.EncodeToString(reply)
}

// logout ends a verification connection.
func (b *backend) logout() {
	b.nc.SetDeadline(time.Now().Add(2 * time.Second))
	b.command("LOGOUT")
	b.nc.Close()
}
