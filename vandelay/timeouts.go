package vandelay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
// returns fails a read that gets no byte for the idle timeout (for HTTP,
// whose transport reads only when a response is due or a pooled
// connection idles).
func (t *Timeouts) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.dial(ctx, network, addr, true)
}

// DialSession is Dial for a protocol session that may rightly stay quiet
// (IMAP): its connection fails a read only when the server owes a reply,
// that is something was written, and sent no byte for the idle timeout.
func (t *Timeouts) DialSession(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.dial(ctx, network, addr, false)
}

func (t *Timeouts) dial(ctx context.Context, network, addr string, strict bool) (net.Conn, error) {
	o := t.OrDefaults()
	d := &net.Dialer{Timeout: o.Connect, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: c, idle: o.Idle, strict: strict}, nil
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

// idleConn bounds the silence of a server. A strict one (HTTP: the
// transport knows when a response is due) fails any read that gets no byte
// for the idle timeout. A session one (IMAP: go-imap reads in the
// background all the time, and a connection may rightly stay quiet while
// the importer waits on a throttle) fails only when something was written
// and no byte came back for the idle timeout since. A deadline the caller
// sets itself (a greeting's, a handshake's) applies as well.
type idleConn struct {
	net.Conn
	idle   time.Duration
	strict bool

	lastRead, lastWrite atomic.Int64 // unix nanoseconds

	mu       sync.Mutex
	explicit time.Time
}

func (c *idleConn) Read(p []byte) (int, error) {
	for {
		now := time.Now()
		d := now.Add(c.idle)
		if w := c.lastWrite.Load(); !c.strict && w > c.lastRead.Load() {
			d = time.Unix(0, w).Add(c.idle)
		}
		c.mu.Lock()
		explicit := c.explicit
		c.mu.Unlock()
		if !explicit.IsZero() && explicit.Before(d) {
			d = explicit
		}
		if err := c.Conn.SetReadDeadline(d); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(p)
		now = time.Now()
		if n > 0 {
			c.lastRead.Store(now.UnixNano())
		}
		var ne net.Error
		if c.strict || err == nil || !errors.As(err, &ne) || !ne.Timeout() || (!explicit.IsZero() && !now.Before(explicit)) {
			return n, err
		}
		// A session's read timed out: a server that owes a reply for the
		// whole idle timeout is hung; otherwise the quiet is ours.
		if w := c.lastWrite.Load(); w > c.lastRead.Load() && now.Sub(time.Unix(0, w)) >= c.idle {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.lastWrite.Store(time.Now().UnixNano())
	return c.Conn.Write(p)
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
