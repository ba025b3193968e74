package smtp

import (
	"crypto/tls"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// past is a deadline that has always expired.
var past = time.Unix(1, 0)

// endConn wraps every accepted connection so that a session can be ended
// from another goroutine without racing go-smtp, which resets the read
// deadline before every command: once stopped, every read fails with a
// timeout, go-smtp answers 421 4.4.2 and closes the connection.
type endConn struct {
	net.Conn
	stopped atomic.Bool
}

func (c *endConn) stop() {
	c.stopped.Store(true)
	c.Conn.SetReadDeadline(past)
}

// Read implements net.Conn.
func (c *endConn) Read(p []byte) (int, error) {
	if c.stopped.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	return c.Conn.Read(p)
}

// SetReadDeadline implements net.Conn.
func (c *endConn) SetReadDeadline(t time.Time) error {
	if c.stopped.Load() {
		t = past
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline implements net.Conn.
func (c *endConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// unwrapEndConn finds the endConn below a (TLS) connection.
func unwrapEndConn(c net.Conn) *endConn {
	for {
		switch v := c.(type) {
		case *endConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// listener wraps accepted connections in endConn and, for implicit TLS,
// in a TLS server connection on top (go-smtp recognises *tls.Conn).
type listener struct {
	net.Listener
	tls *tls.Config
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var nc net.Conn = &endConn{Conn: c}
	if l.tls != nil {
		nc = tls.Server(nc, l.tls)
	}
	return nc, nil
}
