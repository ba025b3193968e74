package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// DialTimeout bounds connecting to a backend, including the PROXY header
// and an implicit TLS handshake.
const DialTimeout = 10 * time.Second

// ErrPlaintext means credentials would cross an unencrypted connection to
// a backend whose endpoint does not allow it.
var ErrPlaintext = errors.New("backend connection is not encrypted and plaintext logins are not allowed for it")

// Dial connects to a backend endpoint for a client: it sends the HAProxy
// PROXY v2 header when the endpoint wants one and starts implicit TLS.
// STARTTLS toward the backend is the protocol's business (see
// ClientTLS).
func Dial(ctx context.Context, ep Endpoint, client, local netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", ep.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to backend %s: %w", ep.Address, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if ep.ProxyProtocol && client.IsValid() {
		ver := byte(2)
		if ep.ProxyProtocolVersion == 1 {
			ver = 1
		}
		h := proxyproto.HeaderProxyFromAddrs(ver, net.TCPAddrFromAddrPort(client), net.TCPAddrFromAddrPort(local))
		if _, err := h.WriteTo(nc); err != nil {
			nc.Close()
			return nil, fmt.Errorf("send proxy header to %s: %w", ep.Address, err)
		}
	}
	if ep.TLS == TLSImplicit {
		tc := tls.Client(nc, ClientTLS(ep))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls to backend %s: %w", ep.Address, err)
		}
		nc = tc
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// ClientTLS returns the TLS client configuration for an endpoint.
func ClientTLS(ep Endpoint) *tls.Config {
	if ep.TLSConfig != nil {
		return ep.TLSConfig.Clone()
	}
	host, _, err := net.SplitHostPort(ep.Address)
	if err != nil {
		host = ep.Address
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

// CheckCredentialsSafe returns ErrPlaintext when credentials must not be
// sent over nc to ep.
func CheckCredentialsSafe(ep Endpoint, nc net.Conn) error {
	if _, ok := nc.(*tls.Conn); ok || ep.AllowPlaintext {
		return nil
	}
	return ErrPlaintext
}

// Bridge copies bytes both ways between the client and the backend until
// one side closes or ctx ends, then closes both. Bytes already buffered in
// clientBuf or backendBuf (read ahead by a pre-auth parser) are sent
// first. When the backend side ends first and goodbye is not nil, goodbye
// runs before the client connection is closed (no copy writes to the
// client any more), so a protocol can say why (IMAP "* BYE ..."). It
// returns the bytes sent up (client → backend) and down.
//
// Without TLS on either side the copies run on the plain TCP connections,
// so Linux moves the bytes with splice.
func Bridge(ctx context.Context, client net.Conn, clientBuf *bufio.Reader, backend net.Conn, backendBuf *bufio.Reader, goodbye func()) (up, down int64) {
	stop := context.AfterFunc(ctx, func() {
		client.SetDeadline(time.Now())
		backend.SetDeadline(time.Now())
	})
	defer stop()
	type result struct {
		n  int64
		up bool
	}
	ch := make(chan result, 2)
	copyDir := func(dst, src net.Conn, buf *bufio.Reader, isUp bool) {
		var n int64
		if buf != nil && buf.Buffered() > 0 {
			b, _ := buf.Peek(buf.Buffered())
			m, err := dst.Write(b)
			n += int64(m)
			if err != nil {
				ch <- result{n, isUp}
				return
			}
		}
		m, _ := io.Copy(dst, src)
		n += m
		ch <- result{n, isUp}
	}
	go copyDir(backend, client, clientBuf, true)
	go copyDir(client, backend, backendBuf, false)
	first := <-ch
	if !first.up && goodbye != nil {
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		goodbye()
	}
	// One side finished: close both so the other copy ends too. A
	// half-close would keep IMAP sessions hanging on servers that wait.
	client.Close()
	backend.Close()
	second := <-ch
	for _, r := range []result{first, second} {
		if r.up {
			up = r.n
		} else {
			down = r.n
		}
	}
	return up, down
}
