package proxytest

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
)

// staticSource is a routes.Source that never changes.
type staticSource struct{ t *routes.Table }

func (s staticSource) Version(context.Context) (int64, error)          { return s.t.Version, nil }
func (s staticSource) Snapshot(context.Context) (*routes.Table, error) { return s.t, nil }

// offline is shared by every Replay: one route to a backend where nothing
// listens, so logins end quickly with a failure and never touch
// the network beyond a refused loopback connect.
var offline struct {
	once sync.Once
	srv  map[bool]*proxy.Server
}

func offlineServer(tb testing.TB, withTLS bool) *proxy.Server {
	offline.once.Do(func() {
		tab := routes.NewTable(1, "", []routes.Route{{Account: "routed@example.test", Backend: "down", State: routes.Active, Generation: 1}}, map[string]string{"alias": "routed@example.test"}, nil)
		w, err := routes.NewWatcher(context.Background(), staticSource{tab}, nil)
		if err != nil {
			panic(err)
		}
		down := &proxy.Backend{Name: "down", Endpoints: map[proxy.Protocol]proxy.Endpoint{}}
		for _, p := range []proxy.Protocol{proxy.IMAP, proxy.POP3, proxy.ManageSieve} {
			down.Endpoints[p] = proxy.Endpoint{Address: "127.0.0.1:1", AllowPlaintext: true}
		}
		r := proxy.NewRouter(w, []*proxy.Backend{down}, &proxy.RouterOptions{FrozenHold: time.Millisecond})
		dir, err := os.MkdirTemp("", "mmfuzz")
		if err != nil {
			panic(err)
		}
		cert, key, _ := SelfSigned(tb, dir)
		cs, err := proxy.LoadCertStore(cert, key)
		if err != nil {
			panic(err)
		}
		// No failure delay: every failed login of a fuzz input would
		// otherwise wait 2 s, and fuzzing is about parsing, not timing.
		offline.srv = map[bool]*proxy.Server{
			false: proxy.NewServer(&proxy.Options{Router: r, AuthFailures: 1 << 30, AuthFailureDelay: -1}),
			true:  proxy.NewServer(&proxy.Options{Router: r, Certs: cs, AuthFailures: 1 << 30, AuthFailureDelay: -1}),
		}
	})
	return offline.srv[withTLS]
}

// socketpair returns two connected stream sockets. Tests use it rather
// than net.Pipe because net.Pipe has no buffer: a handler that writes a
// response while the test is still writing input would deadlock.
func socketpair(tb testing.TB) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conv := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	return conv(fds[0]), conv(fds[1])
}

// Replay feeds input to a protocol handler over a socketpair, as a client
// that sends everything and then half-closes, and returns what the handler
// wrote. withTLS gives the listener a certificate (so STARTTLS is offered
// and plaintext logins are disabled). The handler's logins go to an offline
// backend. Replay fails the test when the handler does not finish within
// 10 s or when the proxy recovered a panic.
func Replay(tb testing.TB, h proxy.Handler, proto proxy.Protocol, withTLS bool, input []byte) []byte {
	tb.Helper()
	srv := offlineServer(tb, withTLS)
	client, server := socketpair(tb)
	defer client.Close()
	mode := proxy.TLSNone
	if withTLS {
		mode = proxy.TLSStartTLS
	}
	c := proxy.NewConn(srv, server, proto, mode)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		defer proxy.Recover(c.Log, srv.Metrics(), proto)
		h.ServeConn(context.Background(), c)
	}()
	go func() {
		client.Write(input)
		if uc, ok := client.(*net.UnixConn); ok {
			uc.CloseWrite()
		}
	}()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, _ := io.ReadAll(bufio.NewReader(client))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("handler did not finish; input %q", input)
	}
	if n := proxy.Panics(); n != 0 {
		tb.Fatalf("handler panicked on input %q", input)
	}
	return out
}

// Seeds reads fuzz seeds from a file: inputs separated by lines "----";
// "\n" in the file becomes CRLF.
func Seeds(tb testing.TB, path string) [][]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, part := range strings.Split(string(b), "\n----\n") {
		part = strings.TrimPrefix(part, "\n")
		out = append(out, []byte(strings.ReplaceAll(part, "\n", "\r\n")))
	}
	return out
}
