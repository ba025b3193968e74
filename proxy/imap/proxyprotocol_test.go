package imap_test

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// The tests of the PROXY protocol trust 127.0.0.1 as the load balancer;
// 127.0.0.2 plays a client that reaches the listener directly.
const (
	balancer = "127.0.0.1"
	stranger = "127.0.0.2"
)

// acceptProxy makes the standard listeners accept the PROXY protocol from
// the balancer only, handling other sources as untrusted says.
func acceptProxy(untrusted proxy.ProxyUntrusted, headerTimeout time.Duration) func(*proxy.ListenerConfig) {
	return func(cfg *proxy.ListenerConfig) {
		cfg.AcceptProxyProtocol = true
		cfg.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix(balancer + "/32")}
		cfg.ProxyUntrusted = untrusted
		cfg.ProxyHeaderTimeout = headerTimeout
	}
}

// rawFrom is dialRaw from a given loopback address.
func rawFrom(t *testing.T, from, addr string) *transcript {
	t.Helper()
	nc := proxytest.DialFrom(t, from, addr)
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &transcript{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// proxyV1 is a PROXY v1 header that says client connected to the listener
// at addr.
func proxyV1(client, addr string) string {
	ap := netip.MustParseAddrPort(addr)
	return fmt.Sprintf("PROXY TCP4 %s %s 40001 %d\r\n", client, ap.Addr(), ap.Port())
}

// TestProxyHeaderSilentBalancer: connections that send no PROXY header do
// not hold up another client's greeting (before, the accept loop read each
// header in turn: 3 silent connections delayed everyone by 3 header
// timeouts), and a trusted header's address is the one Dovecot logs.
func TestProxyHeaderSilentBalancer(t *testing.T) {
	s := peers.Get(t)
	// A long header timeout: the greeting must come well before even one.
	const headerTimeout = 20 * time.Second
	p := proxytest.Start(t, s, &proxytest.Options{Listener: acceptProxy(proxy.ProxyRefuse, headerTimeout)})
	a := s.NewAccount(t)
	for range 3 {
		proxytest.DialFrom(t, balancer, p.IMAP) // silent
	}
	r := rawFrom(t, balancer, p.IMAP)
	r.nc.SetDeadline(time.Now().Add(headerTimeout / 2))
	r.send(proxyV1("192.0.2.10", p.IMAP))
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a OK")
	proxytest.WaitLogin(t, s.Dovecot, "imap", a.Email, "192.0.2.10")
}

// TestProxyHeaderUntrusted: a header from outside the trusted networks is
// never believed: the connection is closed unread (refuse, the default),
// or served with its own address, the header line being a bad command
// (plain).
func TestProxyHeaderUntrusted(t *testing.T) {
	s := peers.Get(t)
	t.Run("refuse", func(t *testing.T) {
		p := proxytest.Start(t, s, &proxytest.Options{Listener: acceptProxy("", 0)})
		r := rawFrom(t, stranger, p.IMAP)
		r.nc.Write([]byte(proxyV1("192.0.2.11", p.IMAP))) // may fail: the proxy closes at once
		if l, err := r.br.ReadString('\n'); err == nil || l != "" {
			t.Errorf("read %q, %v from a refused connection; want nothing and the connection closed", l, err)
		}
		proxytest.WaitFor(t, 5*time.Second, func() bool {
			return p.Server.Metrics().Get(proxy.MetricConnectionsRefused, "proto", "imap", "reason", "proxy-untrusted") == 1
		})
	})
	t.Run("plain", func(t *testing.T) {
		p := proxytest.Start(t, s, &proxytest.Options{Listener: acceptProxy(proxy.ProxyPlain, 0)})
		a := s.NewAccount(t)
		r := rawFrom(t, stranger, p.IMAP)
		r.expect("* OK")
		r.send(proxyV1("192.0.2.12", p.IMAP))
		if l := r.line(); !strings.HasPrefix(l, "PROXY BAD") {
			t.Errorf("answer to a PROXY header from an untrusted source: %q, want PROXY BAD", l)
		}
		r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
		r.expect("a OK")
		proxytest.WaitLogin(t, s.Dovecot, "imap", a.Email, stranger)
	})
}

// TestProxyHeaderAuthLimit: the failed-login limit per client IP counts an
// untrusted client by its own address whatever header it sends, and a
// trusted balancer's clients by the header's address.
func TestProxyHeaderAuthLimit(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{AuthFailures: 3, Listener: acceptProxy(proxy.ProxyPlain, 0)})
	a := s.NewAccount(t)
	limited := func() int64 {
		return p.Server.Metrics().Get(proxy.MetricConnectionsRefused, "proto", "imap", "reason", "auth-rate")
	}
	// attempt logs in over a new connection from `from`, sending a header
	// that claims `claim`, and returns the tagged answer.
	attempt := func(from, claim, pass string) string {
		r := rawFrom(t, from, p.IMAP)
		if from == balancer {
			r.send(proxyV1(claim, p.IMAP))
			r.expect("* OK")
		} else {
			r.expect("* OK")
			r.send(proxyV1(claim, p.IMAP))
			r.expect("PROXY BAD")
		}
		r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, pass))
		return r.expect("a ")
	}
	for i := range 3 {
		if l := attempt(stranger, fmt.Sprintf("198.51.100.%d", i+1), "wrong"); !strings.HasPrefix(l, "a NO") {
			t.Fatalf("wrong password: %q", l)
		}
	}
	if l := attempt(stranger, "198.51.100.99", a.Password); strings.HasPrefix(l, "a OK") || limited() != 1 {
		t.Errorf("after 3 failures a client claiming another address got %q (%d refused by the limit), want it refused by the limit", l, limited())
	}

	for range 3 {
		if l := attempt(balancer, "203.0.113.1", "wrong"); !strings.HasPrefix(l, "a NO") {
			t.Fatalf("wrong password: %q", l)
		}
	}
	if l := attempt(balancer, "203.0.113.1", a.Password); strings.HasPrefix(l, "a OK") || limited() != 2 {
		t.Errorf("after 3 failures from 203.0.113.1 behind the balancer: %q (%d refused by the limit), want it refused by the limit", l, limited())
	}
	if l := attempt(balancer, "203.0.113.2", a.Password); !strings.HasPrefix(l, "a OK") {
		t.Errorf("another client behind the balancer: %q, want it logged in", l)
	}
}
