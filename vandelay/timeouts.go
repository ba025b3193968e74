package vandelay

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts bound the network steps of talking to a server. A zero field
// means its default; a nil *Timeouts means every default.
type Timeouts struct {
	// Connect bounds the TCP connection. Default: DefaultConnectTimeout.
	Connect time.Duration
	// TLSHandshake bounds the TLS handshake. Default:
	// DefaultTLSHandshakeTimeout.
	TLSHandshake time.Duration
	// ResponseHeader bounds the wait for the server's first reply: an
	// HTTP response's header, an IMAP or POP3 greeting. Default:
	// DefaultResponseHeaderTimeout.
	ResponseHeader time.Duration
	// Idle bounds how long a connection may receive nothing while a reply
	// is awaited. Default: DefaultIdleTimeout.
	Idle time.Duration
}

// Default timeouts: what a user expects of a mail client. Before they
// existed a hung JMAP target took about four minutes per request to fail.
const (
	DefaultConnectTimeout        = 15 * time.Second
	DefaultTLSHandshakeTimeout   = 10 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleTimeout           = 5 * time.Minute
)

// OrDefaults returns t with every zero field set to its default.
func (t *Timeouts) OrDefaults() Timeouts {
	var o Timeouts
	if t != nil {
		o = *t
	}
	if o.Connect <= 0 {
		o.Connect = DefaultConnectTimeout
	}
	if o.TLSHandshake <= 0 {
		o.TLSHandshake = DefaultTLSHandshakeTimeout
	}
	if o.ResponseHeader <= 0 {
		o.ResponseHeader = DefaultResponseHeaderTimeout
	}
	if o.Idle <= 0 {
		o.Idle = DefaultIdleTimeout
	}
	return o
}

// Dial connects to addr within the connect timeout; the connection it
// returns fails a read that waits longer than the idle timeout.
func (t *Timeouts) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	o := t.OrDefaults()
	d := &net.Dialer{Timeout: o.Connect, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: c, idle: o.Idle}, nil
}

// Handshake runs the TLS client handshake on c within the TLS timeout.
func (t *Timeouts) Handshake(ctx context.Context, c net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	o := t.OrDefaults()
	hctx, cancel := context.WithTimeout(ctx, o.TLSHandshake)
	defer cancel()
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// HTTPTransport returns a transport with the timeouts: connect and idle
// through its dialer, the TLS handshake and the response header by the
// transport's own settings.
func (t *Timeouts) HTTPTransport() *http.Transport {
	o := t.OrDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = o.Dial
	tr.TLSHandshakeTimeout = o.TLSHandshake
	tr.ResponseHeaderTimeout = o.ResponseHeader
	tr.MaxIdleConnsPerHost = 32
	return tr
}

// idleConn sets a read deadline before every read, so that a server that
// stops sending in the middle of a reply fails the read after the idle
// timeout instead of holding the connection forever. A deadline the
// caller sets itself (a greeting's, a handshake's) still applies when it
// is earlier.
type idleConn struct {
	net.Conn
	idle time.Duration

	mu       sync.Mutex
	explicit time.Time
}

func (c *idleConn) Read(p []byte) (int, error) {
	d := time.Now().Add(c.idle)
	c.mu.Lock()
	if !c.explicit.IsZero() && c.explicit.Before(d) {
		d = c.explicit
	}
	c.mu.Unlock()
	if err := c.Conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.explicit = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.explicit = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}
