package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// DialTimeout bounds connecting to a backend when its endpoint sets no
// connect timeout.
const DialTimeout = 10 * time.Second

// Default timeouts of the steps after connecting, for endpoints that set
// none.
const (
	// DefaultTLSTimeout bounds a TLS handshake with a backend (implicit
	// or after STARTTLS).
	DefaultTLSTimeout = 10 * time.Second
	// DefaultGreetingTimeout bounds the wait for a backend's greeting.
	DefaultGreetingTimeout = 30 * time.Second
)

// Timeouts bound the steps of reaching a backend endpoint: the plan's
// backend timeouts block (connect, tls_handshake, response_header). A
// zero field takes its default. The protocol's whole login dialogue stays
// bounded by its own BackendTimeout as well.
type Timeouts struct {
	// Connect bounds the TCP connection and the PROXY header. Default:
	// DialTimeout.
	Connect time.Duration
	// TLS bounds a TLS handshake. Default: DefaultTLSTimeout.
	TLS time.Duration
	// Greeting bounds the wait for the backend's greeting. Default:
	// DefaultGreetingTimeout.
	Greeting time.Duration
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ClientHandshake runs the TLS client handshake toward the endpoint on
// nc (implicit TLS, or after STARTTLS) within its TLS timeout.
func ClientHandshake(ctx context.Context, nc net.Conn, ep Endpoint) (*tls.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(ep.Timeouts.TLS, DefaultTLSTimeout))
	defer cancel()
	tc := tls.Client(nc, ClientTLS(ep))
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

// GreetingDeadline makes reads on nc fail when the backend's greeting
// does not arrive within the endpoint's greeting timeout (a backend that
// accepts connections and says nothing); the returned func lifts it once
// the greeting is read.
func GreetingDeadline(nc net.Conn, ep Endpoint) (done func()) {
	nc.SetReadDeadline(time.Now().Add(orDefault(ep.Timeouts.Greeting, DefaultGreetingTimeout)))
	return func() { nc.SetReadDeadline(time.Time{}) }
}

// ErrPlaintext means credentials would cross an unencrypted connection to
// a backend whose endpoint does not allow it.
var ErrPlaintext = errors.New("backend connection is not encrypted and plaintext logins are not allowed for it")

// Dial connects to a backend endpoint for a client: it sends the HAProxy
// PROXY v2 header when the endpoint wants one and starts implicit TLS.
// STARTTLS toward the backend is the protocol's business (see
// ClientTLS).
func Dial(ctx context.Context, ep Endpoint, client, local netip.AddrPort) (net.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, orDefault(ep.Timeouts.Connect, DialTimeout))
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(cctx, "tcp", ep.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to backend %s: %w", ep.Address, err)
	}
	if dl, ok := cctx.Deadline(); ok {
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
		nc.SetDeadline(time.Time{})
		tc, err := ClientHandshake(ctx, nc, ep)
		if err != nil {
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
// one side closes or ctx ends, then closes both. Bytes already read ahead
// by a pre-auth parser (clientPending, backendPending) are sent first; the
// caller should drop its buffered readers before calling Bridge, so that an
// idle bridged session holds no buffers. When the backend side ends first
// and goodbye is not nil, goodbye runs before the client connection is
// closed (no copy writes to the client any more), so a protocol can say
// why (IMAP "* BYE ..."). It returns the bytes sent up (client → backend)
// and down.
//
// The client-to-backend copy runs on the calling goroutine and only one
// goroutine is started, to keep idle sessions small. Without TLS on either
// side the copies run on the plain TCP connections, so Linux moves the
// bytes with splice and no user-space buffer is held while idle.
func Bridge(ctx context.Context, client net.Conn, clientPending []byte, backend net.Conn, backendPending []byte, goodbye func()) (up, down int64) {
	var bye func(bool)
	if goodbye != nil {
		bye = func(bool) { goodbye() }
	}
	up, down, _ = BridgeIdle(ctx, client, clientPending, backend, backendPending, 0, bye)
	return up, down
}

// BridgeIdle is Bridge with an idle timeout: when no byte moved in either
// direction for idle (0: never), the session ends; goodbye then runs with
// idle true so the protocol can tell the client (IMAP "* BYE Autologout").
// Traffic of either side counts as activity, so an IMAP IDLE whose backend
// sends updates stays open. The timeout is noticed between idle and 1.5 ×
// idle after the last byte: each copy wakes up every idle/2 to look, which
// keeps splice (the copies are not wrapped). idled reports whether the
// session ended by the timeout.
func BridgeIdle(ctx context.Context, client net.Conn, clientPending []byte, backend net.Conn, backendPending []byte, idle time.Duration, goodbye func(idle bool)) (up, down int64, idled bool) {
	st := &bridgeState{idle: idle}
	st.touch()
	stop := context.AfterFunc(ctx, func() {
		st.stopped.Store(true)
		client.SetDeadline(time.Now())
		backend.SetDeadline(time.Now())
	})
	defer stop()
	var first atomic.Int32 // 1: up ended first, 2: down ended first
	downDone := make(chan int64, 1)
	go func() {
		n := st.copy(client, backend, backendPending)
		if first.CompareAndSwap(0, 2) && goodbye != nil {
			client.SetWriteDeadline(time.Now().Add(5 * time.Second))
			goodbye(st.idled.Load())
		}
		// Close both so the other copy ends too. A half-close would
		// keep sessions hanging on servers that wait for the client.
		client.Close()
		backend.Close()
		downDone <- n
	}()
	up = st.copy(backend, client, clientPending)
	if st.idled.Load() {
		// The up copy noticed the timeout: wake the down copy, which
		// says goodbye (it alone writes to the client).
		backend.SetReadDeadline(time.Now())
	} else {
		first.CompareAndSwap(0, 1)
	}
	// If the down copy is writing its goodbye, let it finish first.
	if first.Load() == 1 {
		client.Close()
		backend.Close()
	}
	down = <-downDone
	return up, down, st.idled.Load()
}

// bridgeState is what the two copies of BridgeIdle share.
type bridgeState struct {
	idle    time.Duration
	last    atomic.Int64 // unix nanoseconds of the last activity seen
	stopped atomic.Bool  // ctx ended or the idle timeout hit: stop copying
	idled   atomic.Bool
}

func (b *bridgeState) touch() { b.last.Store(time.Now().UnixNano()) }

// copy copies src to dst. With an idle timeout it copies in rounds of
// idle/2 (a read deadline on src); a round that moved bytes counts as
// activity, and a silent round ends the copy when the whole session was
// silent for idle.
func (b *bridgeState) copy(dst, src net.Conn, pending []byte) int64 {
	var n int64
	if len(pending) > 0 {
		m, err := dst.Write(pending)
		n += int64(m)
		if err != nil {
			return n
		}
	}
	if b.idle <= 0 {
		m, _ := io.Copy(dst, src)
		return n + m
	}
	round := b.idle / 2
	for {
		src.SetReadDeadline(time.Now().Add(round))
		// Whoever sets stopped sets a past deadline afterwards; checking
		// after our own deadline means one of the two always wins.
		if b.stopped.Load() {
			return n
		}
		m, err := io.Copy(dst, src)
		n += m
		if m > 0 {
			b.touch()
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || b.stopped.Load() {
			return n
		}
		if m == 0 && time.Since(time.Unix(0, b.last.Load())) >= b.idle {
			b.idled.Store(true)
			b.stopped.Store(true)
			return n
		}
	}
}

// Pending returns a copy of the bytes buffered in br (nil when none), so
// that the reader can be dropped before Bridge.
func Pending(br *bufio.Reader) []byte {
	if br == nil || br.Buffered() == 0 {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}
