package smtp

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/routes"
)

// slowServer starts a front of mode with a 1 s pre-auth deadline and a
// 5 s idle timeout; no backend is needed before authentication.
func slowServer(t *testing.T, mode Mode) string {
	t.Helper()
	fr := &fakeRouter{routes: map[string]routes.Route{}, backends: map[string]*proxy.Backend{}}
	srv, err := NewServer(&Options{Mode: mode, Router: fr, AllowInsecureAuth: true, BackendTimeout: 2 * time.Second,
		IdleTimeout: 5 * time.Second, PreAuthTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestPreAuthDeadline: a client that trickles one byte every 100 ms never
// hits the per-command idle timeout, but the overall deadline before
// authentication or the first transaction cuts it off (issue 10, finding
// 6), on SMTP, LMTP and submission alike.
func TestPreAuthDeadline(t *testing.T) {
	for _, mode := range []Mode{ModeSMTP, ModeLMTP, ModeSubmission} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			nc, err := net.Dial("tcp", slowServer(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := time.Now()
			closed := make(chan string, 1)
			go func() {
				br := bufio.NewReader(nc)
				var last string
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						closed <- last
						return
					}
					last = l
				}
			}()
			hello := "EHLO"
			if mode == ModeLMTP {
				hello = "LHLO"
			}
			line := hello + " slow.example\r\n"
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			// Bounded: 8 s of trickling, far beyond the 1 s deadline and
			// longer than the 5 s idle timeout would allow if it were
			// reset by each byte.
			for i := 0; i < 80; i++ {
				select {
				case last := <-closed:
					if took := time.Since(start); took > 4*time.Second {
						t.Errorf("cut off after %v, want about 1 s", took)
					}
					if !strings.HasPrefix(last, "421") {
						t.Errorf("last reply %q, want 421", last)
					}
					return
				case <-tick.C:
				}
				if _, err := nc.Write([]byte{line[i%len(line)]}); err != nil {
					// Closed by the server; the reader reports the reply.
					continue
				}
			}
			t.Fatalf("a client trickling bytes was still connected after %v", time.Since(start))
		})
	}
}

// TestPreAuthDeadlineEndsWithTransaction: once a backend accepted a
// recipient, the pre-auth deadline no longer applies; the session lives
// on under the idle timeout.
func TestPreAuthDeadlineEndsWithTransaction(t *testing.T) {
	_, _, be := inProcessBackend(t, ModeLMTP)
	fr := &fakeRouter{
		routes: map[string]routes.Route{"u@example.test": {Account: "u@example.test", Backend: "fake", State: routes.Active, Generation: 1}},
		backends: map[string]*proxy.Backend{"fake": {Name: "fake", Endpoints: map[proxy.Protocol]proxy.Endpoint{
			proxy.LMTP: {Address: be.addr, AllowPlaintext: true}}}},
	}
	srv, err := NewServer(&Options{Mode: ModeLMTP, Router: fr, BackendTimeout: 2 * time.Second, IdleTimeout: 5 * time.Second, PreAuthTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	expect := func(cmd, want string) {
		t.Helper()
		if cmd != "" {
			nc.Write([]byte(cmd + "\r\n"))
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if len(l) > 3 && l[3] == '-' {
				continue
			}
			if !strings.HasPrefix(l, want) {
				t.Fatalf("%s: got %q, want %s", cmd, l, want)
			}
			return
		}
	}
	expect("", "220")
	expect("LHLO client.example", "250")
	expect("MAIL FROM:<s@remote.example>", "250")
	expect("RCPT TO:<u@example.test>", "250")
	<-time.After(1500 * time.Millisecond) // past the pre-auth deadline
	expect("NOOP", "250")
	expect("RSET", "250")
}
