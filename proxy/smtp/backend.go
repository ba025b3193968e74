package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
)

// Limits of the backend reply reader. A backend is trusted more than a
// client, but a broken one must not make the proxy buffer without bound.
const (
	maxReplyLines    = 64
	maxReplyLineSize = 4096
)

// Reply is one SMTP reply read by the proxy's own reply reader.
type Reply struct {
	Code  int
	Lines []string // text after "ddd-" / "ddd ", one element per line
}

// readReply reads one possibly multi-line SMTP reply (RFC 5321 4.2).
func readReply(br *bufio.Reader) (Reply, error) {
	var rep Reply
	for i := 0; ; i++ {
		if i >= maxReplyLines {
			return rep, errors.New("reply has too many lines")
		}
		line, err := readLimitedLine(br, maxReplyLineSize)
		if err != nil {
			return rep, err
		}
		if len(line) < 3 {
			return rep, fmt.Errorf("malformed reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 100 || code > 599 {
			return rep, fmt.Errorf("malformed reply code in %q", line)
		}
		if i > 0 && code != rep.Code {
			return rep, fmt.Errorf("reply code changed within a reply: %d then %d", rep.Code, code)
		}
		rep.Code = code
		more := false
		text := ""
		if len(line) > 3 {
			switch line[3] {
			case '-':
				more = true
			case ' ':
			default:
				return rep, fmt.Errorf("malformed reply line %q", line)
			}
			text = line[4:]
		}
		rep.Lines = append(rep.Lines, text)
		if !more {
			return rep, nil
		}
	}
}

// readLimitedLine reads one CRLF (or LF) terminated line of at most max
// bytes, without the terminator.
func readLimitedLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > max {
			return "", errors.New("reply line too long")
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && len(buf) > 0 {
			return "", io.ErrUnexpectedEOF
		}
		return "", err
	}
	return strings.TrimRight(string(buf), "\r\n"), nil
}

// extensions parses the lines of an EHLO/LHLO reply into keyword → params.
func extensions(rep Reply) map[string]string {
	ext := make(map[string]string)
	for i, l := range rep.Lines {
		if i == 0 {
			continue // the greeting domain
		}
		k, v, _ := strings.Cut(l, " ")
		ext[strings.ToUpper(k)] = v
	}
	return ext
}

// clientInfo is what the proxy knows about the client it forwards, sent
// to the backend with XCLIENT.
type clientInfo struct {
	addr  net.Addr
	helo  string
	proto string // SMTP or ESMTP
	login string // authenticated user (submission)
}

// xclientCommand builds an XCLIENT command (Postfix XCLIENT_README) with
// only the attributes the backend advertised. It returns "" when there is
// nothing to send.
func xclientCommand(advertised string, ci clientInfo) string {
	attrs := make(map[string]bool)
	for _, a := range strings.Fields(advertised) {
		attrs[strings.ToUpper(a)] = true
	}
	var parts []string
	if ta, ok := ci.addr.(*net.TCPAddr); ok && ta != nil {
		if attrs["ADDR"] {
			ip := ta.IP.String()
			if ta.IP.To4() == nil {
				ip = "IPV6:" + ip
			}
			parts = append(parts, "ADDR="+ip)
		}
		if attrs["PORT"] {
			parts = append(parts, "PORT="+strconv.Itoa(ta.Port))
		}
	}
	if attrs["HELO"] && ci.helo != "" {
		parts = append(parts, "HELO="+xtext(ci.helo))
	}
	if attrs["PROTO"] && ci.proto != "" {
		parts = append(parts, "PROTO="+ci.proto)
	}
	if attrs["LOGIN"] && ci.login != "" {
		parts = append(parts, "LOGIN="+xtext(ci.login))
	}
	if len(parts) == 0 {
		return ""
	}
	return "XCLIENT " + strings.Join(parts, " ")
}

// xtext encodes s as RFC 3461 4 xtext.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// replayConn is a net.Conn whose first reads return bytes the proxy already
// read (or made up) during its own prelude.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// backendConn is one open connection to a backend's SMTP, LMTP or
// submission service, past greeting, EHLO/LHLO, STARTTLS and XCLIENT.
type backendConn struct {
	name   string
	client *gosmtp.Client
	conn   net.Conn
	lmtp   bool
	inTx   bool // MAIL sent, no RSET/DATA end since
	broken bool // unusable: close instead of reuse

	xclientAdv string // the XCLIENT attributes the backend offers, "" if none
	poolKey    string // delivery sessions go back to the pool under this key
}

// validHelo reports whether a client's HELO name can be repeated in our
// own EHLO/LHLO.
func validHelo(h string) bool { return h != "" && !strings.ContainsAny(h, "\r\n ") }

// dialConfig is everything dialBackend needs.
type dialConfig struct {
	name      string
	addr      string
	lmtp      bool
	tlsMode   proxy.TLSMode
	xclient   bool
	tlsConfig *tls.Config
	localName string
	timeout   time.Duration
	client    clientInfo
}

// errBackendGreeting marks a backend that answered its greeting or hello
// with a failure.
var errBackendGreeting = errors.New("backend refused the session")

// dialBackend connects to a backend and runs the prelude the go-smtp client
// cannot do itself: XCLIENT (RFC-less Postfix extension) on the raw
// connection. After XCLIENT the backend sends a fresh 220 greeting, which
// the go-smtp client then reads as its own greeting; without XCLIENT a
// synthetic greeting is replayed instead. The go-smtp client then says
// EHLO/LHLO once more, which also refreshes the extension list.
func dialBackend(ctx context.Context, dc dialConfig) (*backendConn, error) {
	d := net.Dialer{Timeout: dc.timeout}
	conn, err := d.DialContext(ctx, "tcp", dc.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to backend %s: %w", dc.name, err)
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(time.Now().Add(dc.timeout))

	if dc.tlsMode == proxy.TLSImplicit {
		tc := tls.Client(conn, dc.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls with backend %s: %w", dc.name, err)
		}
		conn = tc
	}
	if !dc.xclient && dc.tlsMode != proxy.TLSStartTLS {
		// Nothing for the raw prelude to do: go-smtp reads the greeting
		// and says hello itself (one round trip less).
		conn.SetDeadline(time.Time{})
		var c *gosmtp.Client
		if dc.lmtp {
			c = gosmtp.NewClientLMTP(conn)
		} else {
			c = gosmtp.NewClient(conn)
		}
		c.CommandTimeout = dc.timeout
		if err := c.Hello(dc.localName); err != nil {
			c.Close()
			return nil, fmt.Errorf("backend %s hello: %w", dc.name, err)
		}
		ok = true
		return &backendConn{name: dc.name, client: c, conn: conn, lmtp: dc.lmtp}, nil
	}
	br := bufio.NewReader(conn)
	rep, err := readReply(br)
	if err != nil {
		return nil, fmt.Errorf("read greeting of backend %s: %w", dc.name, err)
	}
	if rep.Code != 220 {
		return nil, fmt.Errorf("backend %s greeting %d: %w", dc.name, rep.Code, errBackendGreeting)
	}
	hello := "EHLO"
	if dc.lmtp {
		hello = "LHLO"
	}
	cmd := func(line string) (Reply, error) {
		if _, err := io.WriteString(conn, line+"\r\n"); err != nil {
			return Reply{}, fmt.Errorf("write to backend %s: %w", dc.name, err)
		}
		rep, err := readReply(br)
		if err != nil {
			return rep, fmt.Errorf("read reply of backend %s: %w", dc.name, err)
		}
		return rep, nil
	}
	rep, err = cmd(hello + " " + dc.localName)
	if err != nil {
		return nil, err
	}
	if rep.Code != 250 {
		return nil, fmt.Errorf("backend %s %s: %d: %w", dc.name, hello, rep.Code, errBackendGreeting)
	}
	ext := extensions(rep)
	if dc.tlsMode == proxy.TLSStartTLS {
		if _, ok := ext["STARTTLS"]; !ok {
			return nil, fmt.Errorf("backend %s does not offer STARTTLS", dc.name)
		}
		rep, err = cmd("STARTTLS")
		if err != nil {
			return nil, err
		}
		if rep.Code != 220 {
			return nil, fmt.Errorf("backend %s refused STARTTLS: %d", dc.name, rep.Code)
		}
		if br.Buffered() > 0 {
			return nil, fmt.Errorf("backend %s sent data before the TLS handshake", dc.name)
		}
		tc := tls.Client(conn, dc.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls with backend %s: %w", dc.name, err)
		}
		conn = tc
		br = bufio.NewReader(conn)
		rep, err = cmd(hello + " " + dc.localName)
		if err != nil {
			return nil, err
		}
		if rep.Code != 250 {
			return nil, fmt.Errorf("backend %s %s: %d: %w", dc.name, hello, rep.Code, errBackendGreeting)
		}
		ext = extensions(rep)
	}

	greeting := []byte("220 backend ready\r\n")
	helloName := dc.localName
	xclientAdv := ""
	if adv, ok := ext["XCLIENT"]; ok && dc.xclient {
		xclientAdv = adv
		if line := xclientCommand(adv, dc.client); line != "" {
			rep, err = cmd(line)
			if err != nil {
				return nil, err
			}
			if rep.Code == 220 {
				var b bytes.Buffer
				for i, l := range rep.Lines {
					sep := "-"
					if i == len(rep.Lines)-1 {
						sep = " "
					}
					fmt.Fprintf(&b, "220%s%s\r\n", sep, l)
				}
				greeting = b.Bytes()
				// The backend now believes it talks to the client: say
				// hello with the client's name, as XCLIENT announced.
				if validHelo(dc.client.helo) {
					helloName = dc.client.helo
				}
			}
			// Any other answer leaves the session as it was (Postfix
			// semantics): continue without the client's address.
		}
	}
	conn.SetDeadline(time.Time{})
	rc := &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(greeting), br)}
	var c *gosmtp.Client
	if dc.lmtp {
		c = gosmtp.NewClientLMTP(rc)
	} else {
		c = gosmtp.NewClient(rc)
	}
	c.CommandTimeout = dc.timeout
	if err := c.Hello(helloName); err != nil {
		c.Close()
		return nil, fmt.Errorf("backend %s hello: %w", dc.name, err)
	}
	ok = true
	return &backendConn{name: dc.name, client: c, conn: conn, lmtp: dc.lmtp, xclientAdv: xclientAdv}, nil
}

// close ends the session politely when it is still usable.
func (b *backendConn) close() {
	if b == nil {
		return
	}
	if !b.broken {
		b.conn.SetDeadline(time.Now().Add(2 * time.Second))
		b.client.Quit()
	}
	b.client.Close()
}

// reset ends an open transaction on the backend.
func (b *backendConn) reset() {
	if !b.inTx || b.broken {
		return
	}
	b.inTx = false
	if err := b.client.Reset(); err != nil {
		b.broken = true
	}
}

// smtpErr returns err as *gosmtp.SMTPError when it is one (a reply of the
// backend), nil otherwise (a transport failure).
func smtpErr(err error) *gosmtp.SMTPError {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	return nil
}
