package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// echoHandler greets, then echoes lines until EOF; on a shutdown request it
// says bye.
var echoHandler = HandlerFunc(func(ctx context.Context, c *Conn) {
	c.OnEnd(func(reason string) {
		io.WriteString(c.Conn, "bye "+reason+"\n")
		c.Abort()
	})
	io.WriteString(c.Conn, "hello\n")
	br := bufio.NewReader(c.Conn)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(l) == "panic" {
			panic("test panic")
		}
		io.WriteString(c.Conn, l)
	}
})

func dialGreet(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	l, _ := br.ReadString('\n')
	return nc, br, l
}

func TestServerLimitsShutdownMetrics(t *testing.T) {
	s := NewServer(nil)
	a, err := s.Listen(ListenerConfig{Protocol: IMAP, Address: "127.0.0.1:0", MaxConnsPerIP: 2, Handler: echoHandler})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	n1, _, g1 := dialGreet(t, a.String())
	n2, _, g2 := dialGreet(t, a.String())
	_, _, g3 := dialGreet(t, a.String())
	if g1 != "hello\n" || g2 != "hello\n" || g3 != "" {
		t.Errorf("greetings %q %q %q: the third connection from one IP must be refused", g1, g2, g3)
	}
	m := s.Metrics()
	waitFor(t, func() bool { return m.Get(MetricConnectionsRefused, "proto", "imap", "reason", "ip-limit") == 1 })

	n1.Close()
	n2.Close()

	// A panic in a handler is recovered and counted.
	before := Panics()
	nc, _, _ := dialGreetAfterClose(t, a.String())
	io.WriteString(nc, "panic\n")
	waitFor(t, func() bool { return Panics() == before+1 })
	panics.Add(-1) // this one was on purpose

	// Admin endpoint.
	rec := httptest.NewRecorder()
	s.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `mailmig_proxy_connections_total{proto="imap"}`) {
		t.Errorf("metrics:\n%s", rec.Body.String())
	}

	// Shutdown asks sessions to end, then returns.
	c1, br1, _ := dialGreetAfterClose(t, a.String())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(ctx) }()
	l, _ := br1.ReadString('\n')
	if l != "bye server shutting down\n" {
		t.Errorf("goodbye = %q", l)
	}
	c1.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	rec = httptest.NewRecorder()
	s.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 503 {
		t.Errorf("healthz while draining = %d", rec.Code)
	}
}

// dialGreetAfterClose waits until a connection slot is free (the earlier
// test connections are closed by their cleanups only at the end).
func dialGreetAfterClose(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		nc, br, g := dialGreet(t, addr)
		if g == "hello\n" {
			return nc, br, g
		}
		nc.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no free connection slot")
	return nil, nil, ""
}

func TestAuthLimiter(t *testing.T) {
	a := newAuthLimiter(2, time.Minute)
	ip := addrPort(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}).Addr()
	if !a.allowed(ip) {
		t.Fatal("fresh IP not allowed")
	}
	a.failed(ip)
	a.failed(ip)
	if a.allowed(ip) {
		t.Error("allowed after 2 failures with a limit of 2")
	}
}

func TestMetricsFormat(t *testing.T) {
	m := NewMetrics()
	m.Inc(MetricAuthFailures, "proto", "pop3")
	// A label value is escaped once, as the exposition format says:
	// backslash, double quote and newline.
	m.Add(MetricSessionsOpen, 2, "proto", "imap", "backend", `we"ird`)
	var b strings.Builder
	m.WriteTo(&b)
	want := "# TYPE mailmig_proxy_auth_failures_total counter\nmailmig_proxy_auth_failures_total{proto=\"pop3\"} 1\n" +
		"# TYPE mailmig_proxy_sessions_open gauge\nmailmig_proxy_sessions_open{proto=\"imap\",backend=\"we\\\"ird\"} 2\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestRouteResult(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, RouteFound},
		{fmt.Errorf("route %q: %w", "a@example.test", ErrUnknown), RouteUnknown},
		{fmt.Errorf("route a: %w", ErrFrozen), RouteFrozen},
		{fmt.Errorf("route a: backend %q: %w", "x", ErrBackend), RouteError},
		{context.Canceled, RouteError},
	} {
		if got := RouteResult(tc.err); got != tc.want {
			t.Errorf("RouteResult(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestProxyProtocolHTTP: on an HTTP listener too, silent balancer
// connections do not hold up others, a trusted header sets the client
// address (v1 and v2; LOCAL keeps the balancer's), a trusted connection
// without a header is refused, and so is any connection from elsewhere.
func TestProxyProtocolHTTP(t *testing.T) {
	s := NewServer(nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })
	const headerTimeout = 20 * time.Second
	a, err := s.Listen(ListenerConfig{Protocol: HTTP, Address: "127.0.0.1:0", HTTP: h,
		AcceptProxyProtocol: true, ProxyTrusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, ProxyHeaderTimeout: headerTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	dial := func(from string) net.Conn {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		nc, err := d.Dial("tcp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(headerTimeout / 2))
		return nc
	}
	get := func(nc net.Conn, header []byte) string {
		t.Helper()
		nc.Write(header)
		io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(nc)
		_, body, _ := strings.Cut(string(b), "\r\n\r\n")
		return body
	}
	for range 3 {
		dial("127.0.0.1") // silent
	}
	if got := get(dial("127.0.0.1"), []byte("PROXY TCP4 192.0.2.1 127.0.0.1 40001 443\r\n")); got != "192.0.2.1:40001" {
		t.Errorf("v1 header: RemoteAddr %q, want 192.0.2.1:40001", got)
	}
	v2 := func(cmd proxyproto.ProtocolVersionAndCommand) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40002}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443})
		h.Command = cmd
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := get(dial("127.0.0.1"), v2(proxyproto.PROXY)); got != "[2001:db8::7]:40002" {
		t.Errorf("v2 header: RemoteAddr %q, want [2001:db8::7]:40002", got)
	}
	if got := get(dial("127.0.0.1"), v2(proxyproto.LOCAL)); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("v2 LOCAL header: RemoteAddr %q, want the balancer's", got)
	}
	if got := get(dial("127.0.0.1"), nil); got != "" {
		t.Errorf("no header from the balancer: answered %q, want the connection refused", got)
	}
	if got := get(dial("127.0.0.2"), []byte("PROXY TCP4 192.0.2.3 127.0.0.1 40003 443\r\n")); got != "" {
		t.Errorf("header from an untrusted source: answered %q, want the connection refused", got)
	}
	m := s.Metrics()
	for reason, want := range map[string]int64{"proxy-header": 1, "proxy-untrusted": 1} {
		if n := m.Get(MetricConnectionsRefused, "proto", "http", "reason", reason); n != want {
			t.Errorf("refused %s = %d, want %d", reason, n, want)
		}
	}
}

// TestProxyProtocolNeedsTrust: a listener that accepts the PROXY protocol
// without trusted networks would believe anyone's header; Listen refuses
// it.
func TestProxyProtocolNeedsTrust(t *testing.T) {
	s := NewServer(nil)
	_, err := s.Listen(ListenerConfig{Protocol: IMAP, Address: "127.0.0.1:0", Handler: echoHandler, AcceptProxyProtocol: true})
	if err == nil || !strings.Contains(err.Error(), "trusted networks") {
		t.Errorf("Listen without trusted networks: %v", err)
	}
}
