package smtp

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailmig/mailmig/proxy"
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
	// preAuth is the overall deadline (unix nanoseconds) of the dialogue
	// before AUTH (submission) or the first transaction (SMTP, LMTP); 0
	// once passed. go-smtp sets a fresh read deadline before every
	// command, so without it a client that sends a byte now and then
	// would stay forever (slowloris).
	preAuth atomic.Int64

	srv       *Server       // forgets the connection on Close
	pc        *proxy.Conn   // set when served through proxy.Server
	done      chan struct{} // closed by Close when set
	closeOnce sync.Once
}

// Close implements net.Conn and tells ServeConn that go-smtp is done.
func (c *endConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.srv != nil {
			c.srv.forget(c)
		}
		if c.done != nil {
			close(c.done)
		}
	})
	return err
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

// SetReadDeadline implements net.Conn. Before authentication or the first
// transaction, no deadline is later than the pre-auth deadline.
func (c *endConn) SetReadDeadline(t time.Time) error {
	if c.stopped.Load() {
		t = past
	}
	if pre := c.preAuth.Load(); pre != 0 {
		if d := time.Unix(0, pre); t.IsZero() || t.After(d) {
			t = d
		}
	}
	return c.Conn.SetReadDeadline(t)
}

// startPreAuth starts the pre-auth deadline of a new connection.
func (c *endConn) startPreAuth(timeout time.Duration) {
	c.preAuth.Store(time.Now().Add(timeout).UnixNano())
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
}

// passedPreAuth ends the pre-auth deadline: the client authenticated
// (submission) or started a transaction (SMTP, LMTP); from now on only the
// idle timeout per command applies.
func (c *endConn) passedPreAuth() {
	c.preAuth.Store(0)
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
	srv *Server
}

// Accept implements net.Listener.
func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ec := &endConn{Conn: c, srv: l.srv}
	ec.startPreAuth(l.srv.opts.PreAuthTimeout)
	if !l.srv.remember(ec) {
		c.Close()
		return nil, net.ErrClosed
	}
	var nc net.Conn = ec
	if l.tls != nil {
		nc = tls.Server(nc, l.tls)
	}
	return nc, nil
}

// chanListener hands connections accepted elsewhere (proxy.Server) to a
// go-smtp server, which only knows how to serve a listener.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// ServeConn serves one connection accepted by a proxy.Server listener
// (which applies connection limits and implicit TLS); it implements
// proxy.Handler. Failed logins count toward the server's per-IP limit, and
// the server's shutdown ends the session politely.
func (s *Server) ServeConn(ctx context.Context, c *proxy.Conn) {
	ec := &endConn{Conn: c, pc: c, done: make(chan struct{}), srv: s}
	ec.startPreAuth(s.opts.PreAuthTimeout)
	if !s.remember(ec) {
		return
	}
	l := s.feed(c.IsTLS())
	select {
	case l.ch <- ec:
	case <-l.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-ec.done:
	case <-ctx.Done():
		c.Close()
		<-ec.done
	}
}

// feed returns the listener feeding the go-smtp server for plain (STARTTLS
// capable) or already encrypted connections, starting it on first use.
// Connections that arrive encrypted go to a second go-smtp server that
// allows AUTH at once: go-smtp cannot see the TLS below proxy.Conn.
func (s *Server) feed(encrypted bool) *chanListener {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	if encrypted {
		i = 1
	}
	if s.feeds[i] == nil {
		l := newChanListener()
		s.feeds[i] = l
		gs := s.srv
		if encrypted {
			gs = s.newGoSMTP(true)
			s.tlsSrv = gs
		}
		go gs.Serve(l)
	}
	return s.feeds[i]
}

// remember registers a client connection for Shutdown; false when the
// server is shutting down.
func (s *Server) remember(ec *endConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[ec] = struct{}{}
	return true
}

func (s *Server) forget(ec *endConn) {
	s.mu.Lock()
	delete(s.conns, ec)
	s.mu.Unlock()
}
