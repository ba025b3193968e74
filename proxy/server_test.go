package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
