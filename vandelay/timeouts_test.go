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
