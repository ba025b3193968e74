package imap

import (
	"bufio"
	"cmp"
	"compress/flate"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailmig/mailmig/vandelay"
)

// preauth runs the not-authenticated state of RFC 9051 itself — greeting,
// STARTTLS, LOGIN or AUTHENTICATE (with SASL-IR when offered) — and then
// COMPRESS=DEFLATE (RFC 4978) when the server offers it, which go-imap v2
// cannot send. It returns a connection positioned in the authenticated
// state, the capability list, and whether compression is on; the caller
// gives go-imap the connection behind a synthetic "* PREAUTH" greeting.
//
// Only the few lines of these commands are parsed here; everything after
// login goes through go-imap.
type preauth struct {
	conn net.Conn
	br   *bufio.Reader
	tag  int
	caps map[string]bool
	line string // the capability list as the server sent it
	gen  int    // counts capability lists seen
	// timeout bounds each reply before login (the greeting's included),
	// tlsTimeout the STARTTLS handshake.
	timeout, tlsTimeout time.Duration
}

// replyTimeout is the timeout of one reply (zero in tests: the default).
func (p *preauth) replyTimeout() time.Duration {
	return cmp.Or(p.timeout, vandelay.DefaultResponseHeaderTimeout)
}

func (p *preauth) readLine() (string, error) {
	p.conn.SetReadDeadline(time.Now().Add(p.replyTimeout()))
	defer p.conn.SetReadDeadline(time.Time{})
	l, err := p.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

func (p *preauth) write(s string) error {
	p.conn.SetWriteDeadline(time.Now().Add(p.replyTimeout()))
	defer p.conn.SetWriteDeadline(time.Time{})
	_, err := io.WriteString(p.conn, s)
	return err
}

// noteCaps records a capability list from "* CAPABILITY …" or an
// "[CAPABILITY …]" response code.
func (p *preauth) noteCaps(line string) {
	var list string
	if i := strings.Index(strings.ToUpper(line), "[CAPABILITY "); i >= 0 {
		list = line[i+len("[CAPABILITY "):]
		if j := strings.IndexByte(list, ']'); j >= 0 {
			list = list[:j]
		}
	} else if rest, ok := cutPrefixFold(line, "* CAPABILITY "); ok {
		list = rest
	} else {
		return
	}
	p.caps = map[string]bool{}
	for _, c := range strings.Fields(list) {
		p.caps[strings.ToUpper(c)] = true
	}
	p.line = strings.Join(strings.Fields(list), " ")
	p.gen++
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}

// status parses a tagged "TAG OK|NO|BAD [CODE …] text" line.
func status(line, tag string) (ok bool, err error) {
	rest, found := strings.CutPrefix(line, tag+" ")
	if !found {
		return false, nil
	}
	typ, text, _ := strings.Cut(rest, " ")
	typ = strings.ToUpper(typ)
	if typ == "OK" {
		return true, nil
	}
	var code string
	if strings.HasPrefix(text, "[") {
		if j := strings.IndexByte(text, ']'); j > 0 {
			code, _, _ = strings.Cut(text[1:j], " ")
			text = strings.TrimSpace(text[j+1:])
		}
	}
	return true, &imap.Error{Type: imap.StatusResponseType(typ), Code: imap.ResponseCode(strings.ToUpper(code)), Text: text}
}

// command sends "TAG cmd" and reads until its tagged status; cont answers
// continuation requests ("+ …"), nil meaning none are expected.
func (p *preauth) command(cmd string, cont func(challenge string) (string, error)) error {
	p.tag++
	tag := "P" + strconv.Itoa(p.tag)
	if err := p.write(tag + " " + cmd + "\r\n"); err != nil {
		return err
	}
	for {
		line, err := p.readLine()
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(line, "+"):
			if cont == nil {
				p.write("*\r\n")
				return fmt.Errorf("unexpected continuation request %q", line)
			}
			resp, err := cont(strings.TrimSpace(strings.TrimPrefix(line, "+")))
			if err != nil {
				p.write("*\r\n") // cancel the exchange
				return err
			}
			if err := p.write(resp + "\r\n"); err != nil {
				return err
			}
		case strings.HasPrefix(line, "* "):
			if strings.HasPrefix(strings.ToUpper(line), "* BYE") {
				return &imap.Error{Type: imap.StatusResponseTypeBye, Text: line}
			}
			p.noteCaps(line)
		default:
			if done, err := status(line, tag); done {
				if err == nil {
					p.noteCaps(line)
				}
				return err
			}
		}
	}
}

// greeting reads the server greeting; it reports PREAUTH.
func (p *preauth) greeting() (bool, error) {
	line, err := p.readLine()
	if err != nil {
		return false, err
	}
	up := strings.ToUpper(line)
	switch {
	case strings.HasPrefix(up, "* OK"):
		p.noteCaps(line)
		return false, nil
	case strings.HasPrefix(up, "* PREAUTH"):
		p.noteCaps(line)
		return true, nil
	case strings.HasPrefix(up, "* BYE"):
		return false, &imap.Error{Type: imap.StatusResponseTypeBye, Text: line}
	}
	return false, fmt.Errorf("unexpected greeting %q", line)
}

func (p *preauth) capability() error {
	if p.caps != nil {
		return nil
	}
	return p.command("CAPABILITY", nil)
}

// authenticate runs AUTHENTICATE with a SASL client (RFC 9051 6.2.2, RFC
// 4959 SASL-IR).
func (p *preauth) authenticate(c sasl.Client) error {
	mech, ir, err := c.Start()
	if err != nil {
		return err
	}
	cmd := "AUTHENTICATE " + mech
	sent := false
	if ir != nil && p.caps["SASL-IR"] {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		cmd += " " + enc
		sent = true
	}
	return p.command(cmd, func(ch string) (string, error) {
		if !sent && ir != nil {
			sent = true
			return base64.StdEncoding.EncodeToString(ir), nil
		}
		dec, err := base64.StdEncoding.DecodeString(ch)
		if err != nil {
			return "", fmt.Errorf("bad SASL challenge: %w", err)
		}
		resp, err := c.Next(dec)
		if err != nil {
			// A token mechanism's error report (RFC 7628 3.2.2, Google's
			// XOAUTH2): answer it as the mechanism says, so the server
			// ends with NO [AUTHENTICATIONFAILED] (an authentication
			// failure, exit 3) rather than a broken exchange.
			switch strings.ToUpper(mech) {
			case "OAUTHBEARER":
				return base64.StdEncoding.EncodeToString([]byte{1}), nil
			case "XOAUTH2":
				return "", nil
			}
			return "", err
		}
		return base64.StdEncoding.EncodeToString(resp), nil
	})
}

// quote returns an IMAP quoted string; CR, LF and NUL cannot be quoted.
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("user name or password contains a line break; use SASL PLAIN")
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

func (p *preauth) login(user, pass string) error {
	u, err := quote(user)
	if err != nil {
		return err
	}
	pw, err := quote(pass)
	if err != nil {
		return err
	}
	return p.command("LOGIN "+u+" "+pw, nil)
}

func (p *preauth) startTLS(cfg *tls.Config) error {
	if err := p.command("STARTTLS", nil); err != nil {
		return err
	}
	if p.br.Buffered() > 0 {
		return errors.New("server sent data after STARTTLS (possible injection)")
	}
	tc := tls.Client(p.conn, cfg)
	tc.SetDeadline(time.Now().Add(cmp.Or(p.tlsTimeout, vandelay.DefaultTLSHandshakeTimeout)))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	tc.SetDeadline(time.Time{})
	p.conn, p.br, p.caps = tc, bufio.NewReader(tc), nil // RFC 9051 6.2.1: forget capabilities
	return nil
}

// compress sends COMPRESS DEFLATE and switches the connection.
func (p *preauth) compress() error {
	if err := p.command("COMPRESS DEFLATE", nil); err != nil {
		return err
	}
	fw, err := flate.NewWriter(p.conn, flate.DefaultCompression)
	if err != nil {
		return err
	}
	p.conn = &deflateConn{Conn: p.conn, r: flate.NewReader(p.br), w: fw}
	p.br = nil
	return nil
}

// deflateConn is a connection after COMPRESS=DEFLATE: raw DEFLATE both
// ways (RFC 4978 4), each write sync-flushed so that the server sees
// complete commands.
type deflateConn struct {
	net.Conn
	r  io.Reader
	mu sync.Mutex
	w  *flate.Writer
}

func (d *deflateConn) Read(b []byte) (int, error) { return d.r.Read(b) }

func (d *deflateConn) Write(b []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.w.Write(b)
	if err == nil {
		err = d.w.Flush()
	}
	return n, err
}

// greetedConn replays a synthetic greeting before the connection's data.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(b []byte) (int, error) { return g.r.Read(b) }

// authenticatedConn returns the connection for go-imap: a "* PREAUTH"
// greeting (with the capabilities, saving a round trip) followed by the
// server's stream.
func (p *preauth) authenticatedConn() net.Conn {
	greet := "* PREAUTH mailmig: authenticated\r\n"
	if p.line != "" {
		greet = "* PREAUTH [CAPABILITY " + p.line + "] mailmig: authenticated\r\n"
	}
	var rest io.Reader = p.conn
	if p.br != nil {
		rest = p.br
	}
	return &greetedConn{Conn: p.conn, r: io.MultiReader(strings.NewReader(greet), rest)}
}
