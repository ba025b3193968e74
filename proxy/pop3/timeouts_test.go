package pop3_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// silentListener accepts connections on loopback and never says a word.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestBackendTimeouts: a backend that accepts connections and never
// greets (or never completes the TLS handshake) costs a POP3, IMAP or
// ManageSieve login through the proxy the endpoint's greeting (TLS)
// timeout, not the 30 s of the whole login dialogue: the login fails (as
// a refused one: nothing is revealed before a backend accepted the
// credentials) and the backend error is counted. The client's own read
// deadline (20 s, below 30 s) fails the test if the endpoint's timeouts
// are ignored.
func TestBackendTimeouts(t *testing.T) {
	s := peers.Get(t)
	addr := silentListener(t)
	to := proxy.Timeouts{Connect: time.Second, TLS: 300 * time.Millisecond, Greeting: 300 * time.Millisecond}
	backend := func(name string, mode proxy.TLSMode) *proxy.Backend {
		b := &proxy.Backend{Name: name, Endpoints: map[proxy.Protocol]proxy.Endpoint{}}
		for _, p := range []proxy.Protocol{proxy.IMAP, proxy.POP3, proxy.ManageSieve} {
			b.Endpoints[p] = proxy.Endpoint{Address: addr, TLS: mode, AllowPlaintext: true, Timeouts: to}
		}
		return b
	}
	p := proxytest.Start(t, s, &proxytest.Options{ExtraBackends: []*proxy.Backend{
		backend("mute", proxy.TLSNone), backend("mute-tls", proxy.TLSImplicit), backend("mute-starttls", proxy.TLSStartTLS)}})
	for _, name := range []string{"mute", "mute-tls", "mute-starttls"} {
		t.Run(name, func(t *testing.T) {
			a := s.NewAccount(t)
			p.Route(t, a.Email, name)
			for proto, login := range map[string]func() string{
				"pop3": func() string {
					tc := dialRaw(t, p.POP3)
					tc.cmd("", "+OK")
					tc.cmd("USER "+a.Email, "+OK")
					return tc.cmd("PASS "+a.Password, "-ERR")
				},
				"imap": func() string {
					tc := dialRaw(t, p.IMAP)
					tc.cmd("", "* OK")
					return tc.cmd(fmt.Sprintf("a LOGIN %s %s", a.Email, a.Password), "a NO")
				},
				"managesieve": func() string {
					tc := dialRaw(t, p.ManageSieve)
					for l := tc.cmd("", ""); !strings.HasPrefix(l, "OK"); l = tc.cmd("", "") {
					}
					ir := base64.StdEncoding.EncodeToString([]byte("\x00" + a.Email + "\x00" + a.Password))
					return tc.cmd(`AUTHENTICATE "PLAIN" "`+ir+`"`, "NO")
				},
			} {
				before := p.Server.Metrics().Get(proxy.MetricBackendErrors, "proto", proto, "backend", name)
				start := time.Now()
				login() // a failed login: the proxy reveals nothing about backends before one accepted the credentials
				took := time.Since(start)
				if p.Server.Metrics().Get(proxy.MetricBackendErrors, "proto", proto, "backend", name) != before+1 {
					t.Errorf("%s: the backend's silence was not counted as a backend error", proto)
				}
				// Bounded well below the 30 s login bound; generous for a
				// loaded machine.
				if took > 10*time.Second {
					t.Errorf("%s: answered after %v with 0.3 s timeouts", proto, took)
				}
			}
		})
	}
}

// TestIdleTimeoutPOP3: a logged-in POP3 session through the proxy that
// says nothing for the idle timeout is closed (POP3 has no unsolicited
// goodbye: RFC 1939's autologout) and counted.
func TestIdleTimeoutPOP3(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{IdleTimeout: time.Second})
	a := s.NewAccount(t)
	tc := dialRaw(t, p.POP3)
	tc.cmd("", "+OK")
	tc.cmd("USER "+a.Email, "+OK")
	tc.cmd("PASS "+a.Password, "+OK")
	tc.cmd("STAT", "+OK")
	if rest, err := io.ReadAll(tc.br); err != nil || len(rest) != 0 {
		t.Fatalf("idle session: %q, %v; want the connection closed", rest, err)
	}
	proxytest.WaitFor(t, 2*time.Second, func() bool {
		return p.Server.Metrics().Get(proxy.MetricIdleTimeouts, "proto", "pop3") == 1
	})
}
