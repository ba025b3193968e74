package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// DefaultProxyHeaderTimeout is how long a connection from a trusted load
// balancer may take to send its PROXY header. A load balancer sends the
// header in its first packet, so the bound only matters for a balancer that
// stalls; it holds one slot of the listener, never the accept loop.
const DefaultProxyHeaderTimeout = 5 * time.Second

// ProxyUntrusted says what a listener that accepts the PROXY protocol does
// with a connection from a source outside its trusted networks.
type ProxyUntrusted string

const (
	// ProxyRefuse closes the connection at once, before reading or writing
	// anything (Dovecot's haproxy listeners do the same). It is the default:
	// such a listener is meant to be reached through the load balancer
	// only, and a direct connection is a misconfiguration or an attempt to
	// bypass it.
	ProxyRefuse ProxyUntrusted = "refuse"
	// ProxyPlain serves the connection as a direct client with its TCP
	// address; no header is read, so a PROXY header it sends is protocol
	// input like any other (and refused as a bad command).
	ProxyPlain ProxyUntrusted = "plain"
)

// errNoProxyHeader is a connection from a trusted source that did not
// start with a PROXY header.
var errNoProxyHeader = errors.New("no proxy protocol header")

// trusted reports whether ip may send a PROXY header to l.
func (l *listener) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.cfg.ProxyTrusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readProxyHeader reads the PROXY (v1 or v2) header that a connection from
// a trusted load balancer starts with. It runs on the connection's own
// goroutine, never in the accept loop, so a silent connection delays only
// itself. It returns the connection to use from now on (bytes read past the
// header stay buffered in it), and the client and local addresses: those
// of the header for a PROXY command over TCP, the connection's own for
// LOCAL (health checks) and UNKNOWN.
func (l *listener) readProxyHeader(ctx context.Context, nc net.Conn) (net.Conn, netip.AddrPort, netip.AddrPort, error) {
	client, local := addrPort(nc.RemoteAddr()), addrPort(nc.LocalAddr())
	timeout := l.cfg.ProxyHeaderTimeout
	if timeout <= 0 {
		timeout = DefaultProxyHeaderTimeout
	}
	nc.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	// A v1 header is at most 107 bytes; a v2 header longer than the buffer
	// (TLVs) is read through it.
	br := bufio.NewReaderSize(nc, 256)
	h, err := proxyproto.Read(br)
	stop()
	nc.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return nil, client, local, errNoProxyHeader
	case err != nil:
		return nil, client, local, fmt.Errorf("read proxy protocol header: %w", err)
	}
	if h.Command.IsProxy() {
		if src, dst, ok := h.TCPAddrs(); ok {
			client, local = addrPort(src), addrPort(dst)
		}
	}
	pc := &proxiedConn{Conn: nc, br: br, remote: net.TCPAddrFromAddrPort(client), local: net.TCPAddrFromAddrPort(local)}
	return pc, client, local, nil
}

// proxiedConn is a connection whose PROXY header was read: reads drain the
// bytes buffered past the header first, and the addresses are the header's
// (go-smtp and net/http take the client address from RemoteAddr).
type proxiedConn struct {
	net.Conn
	br            *bufio.Reader
	remote, local net.Addr
}

// Read implements net.Conn.
func (c *proxiedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client address of the header.
func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr returns the destination address of the header.
func (c *proxiedConn) LocalAddr() net.Addr { return c.local }
