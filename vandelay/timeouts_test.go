package vandelay_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/sources/managesieve"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
)

// silent accepts connections on 127.0.0.1 and never answers.
func silent(t *testing.T) string {
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

// TestTimeoutsHungServer: the IMAP and POP3 dialers give up on a server
// that accepts and never greets within the configured timeouts (the
// defaults would wait a minute), with ErrConnect, in every TLS mode.
//
// ManageSieve (the Sieve source and target's client) follows the same
// timeouts.
func TestTimeoutsHungServer(t *testing.T) {
	addr := silent(t)
	to := vandelay.Timeouts{Connect: time.Second, TLSHandshake: 500 * time.Millisecond, ResponseHeader: 500 * time.Millisecond, Idle: time.Second}
	for _, mode := range []vandelay.TLSMode{vandelay.TLSNone, vandelay.TLSStartTLS, vandelay.TLSImplicit} {
		srv := vandelay.Server{Address: addr, TLS: mode, AllowCleartext: true, Timeouts: to}
		login := vandelay.Login{User: "u", Password: "p"}
		for name, probe := range map[string]func(context.Context) error{
			"imap": func(ctx context.Context) error {
				_, err := imap.Probe(ctx, &imap.Options{Server: srv, Login: login}, nil)
				return err
			},
			"pop3": func(ctx context.Context) error {
				_, err := pop3.Probe(ctx, &pop3.Options{Server: srv, Login: login}, nil)
				return err
			},
			"managesieve": func(ctx context.Context) error {
				src, err := managesieve.New(&managesieve.Options{Server: srv, Login: login})
				if err != nil {
					return err
				}
				_, err = src.Scripts(ctx)
				return err
			},
		} {
			start := time.Now()
			err := probe(context.Background())
			took := time.Since(start)
			if !errors.Is(err, vandelay.ErrConnect) {
				t.Errorf("%s %s: %v, want ErrConnect", name, mode, err)
			}
			// Generous against a loaded machine; the point is seconds, not
			// the minute of the defaults.
			if took > 20*time.Second {
				t.Errorf("%s %s: gave up after %v with 0.5 s timeouts", name, mode, took)
			}
		}
	}
}

// TestIdleTimeout: a session connection fails only when the server owes
// a reply for the idle timeout; a strict (HTTP) one on any silence.
func TestIdleTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The server answers "ok\n" to every line starting with "ping", and
	// nothing to any other.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if n >= 4 && string(buf[:4]) == "ping" {
						c.Write([]byte("ok\n"))
					}
				}
			}()
		}
	}()
	const idle = 300 * time.Millisecond
	to := &vandelay.Timeouts{Idle: idle}
	// readFor reads until the first error or until d passes (then it
	// closes the connection and reports nil).
	readFor := func(c net.Conn, d time.Duration) error {
		done := make(chan error, 1)
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := c.Read(buf); err != nil {
					done <- err
					return
				}
			}
		}()
		select {
		case err := <-done:
			return err
		case <-time.After(d):
			c.Close()
			<-done
			return nil
		}
	}
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	dial := func(session bool) net.Conn {
		t.Helper()
		var c net.Conn
		var err error
		if session {
			c, err = to.DialSession(context.Background(), "tcp", ln.Addr().String())
		} else {
			c, err = to.Dial(context.Background(), "tcp", ln.Addr().String())
		}
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// A quiet session that owes nothing stays open.
	c := dial(true)
	if err := readFor(c, 4*idle); err != nil {
		t.Fatalf("quiet session failed: %v", err)
	}
	// Answered commands, then quiet: stays open.
	c = dial(true)
	c.Write([]byte("ping\n"))
	if err := readFor(c, 4*idle); err != nil {
		t.Fatalf("answered session failed: %v", err)
	}
	// A command the server never answers: the read fails after idle.
	c = dial(true)
	start := time.Now()
	c.Write([]byte("hang\n"))
	if err := readFor(c, 20*idle); !isTimeout(err) {
		t.Fatalf("unanswered session: %v, want a timeout", err)
	}
	if d := time.Since(start); d < idle {
		t.Fatalf("unanswered session failed after %v, before the idle timeout", d)
	}
	c.Close()
	// Strict: any silence fails.
	c = dial(false)
	if err := readFor(c, 20*idle); !isTimeout(err) {
		t.Fatalf("strict: %v, want a timeout", err)
	}
	c.Close()
}
