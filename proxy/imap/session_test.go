package imap_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
)

// TestIdleTimeout: with a 1 s idle timeout, a client that says nothing
// before login is disconnected; a logged-in IDLE client stays connected
// while the backend reports new messages (traffic either way counts) and
// gets "* BYE Autologout" once nothing moves for the timeout.
func TestIdleTimeout(t *testing.T) {
	const idle = time.Second
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{IdleTimeout: idle})
	a := s.NewAccount(t)

	// Before login: silence after the greeting closes the connection.
	pre := dialRaw(t, p.IMAP)
	pre.expect("* OK")
	start := time.Now()
	if rest, err := io.ReadAll(pre.br); err != nil || string(rest) != "* BYE Autologout; idle for too long\r\n" {
		t.Fatalf("silent client before login: %q, %v; want the autologout BYE", rest, err)
	}
	if d := time.Since(start); d < idle-100*time.Millisecond || d > 3*idle {
		t.Errorf("silent client before login closed after %v, want about %v", d, idle)
	}

	// After login: IDLE with backend traffic for three timeouts.
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a OK")
	r.send("b SELECT INBOX\r\n")
	r.expect("b OK")
	r.send("c IDLE\r\n")
	r.expect("+ ")
	direct := login(t, s.Dovecot.IMAP, a.Email, a.Password)
	busyUntil := time.Now().Add(3 * idle)
	appended := 0
	for time.Now().Before(busyUntil) {
		appendMsg(t, direct, fmt.Sprintf("keep-alive %d", appended))
		appended++
		// Each append reaches the IDLE client as "* n EXISTS".
		r.expect(fmt.Sprintf("* %d EXISTS", appended))
	}
	quiet := time.Now()
	l := r.line()
	for strings.HasPrefix(l, "* ") && !strings.HasPrefix(l, "* BYE") {
		l = r.line() // late RECENT/EXISTS updates
	}
	if l != "* BYE Autologout; idle for too long" {
		t.Fatalf("after the backend went quiet: %q, want the autologout BYE", l)
	}
	if d := time.Since(quiet); d < idle-100*time.Millisecond || d > 3*idle {
		t.Errorf("BYE %v after the last traffic, want between %v and %v", d, idle, 3*idle)
	}
	if rest, err := io.ReadAll(r.br); err != nil || len(rest) != 0 {
		t.Errorf("after BYE: %q, %v; want the connection closed", rest, err)
	}
	// Counted when the bridge returned, just after the client saw EOF.
	proxytest.WaitFor(t, 2*time.Second, func() bool {
		return p.Server.Metrics().Get(proxy.MetricIdleTimeouts, "proto", "imap") == 1
	})
	t.Logf("%d appends kept the IDLE session open for %v (idle timeout %v)", appended, 3*idle, idle)
}

// TestAliasRepoint: a session logged in under an alias ends with BYE when
// the alias is re-pointed to an account on another backend, and the next
// login lands there. The login is the user's address (which both Dovecots
// know); the alias maps it to an account key whose route names the
// backend.
func TestAliasRepoint(t *testing.T) {
	s := peers.Get(t)
	p := proxytest.Start(t, s, nil)
	a := s.NewAccount(t)
	ctx := t.Context()
	k1, k2 := "k1-"+a.Email, "k2-"+a.Email
	p.Route(t, k1, "dovecot")
	p.Route(t, k2, "dovecot2")
	d2 := login(t, s.Dovecot2.IMAP, a.Email, a.Password)
	appendMsg(t, d2, "on dovecot2")
	d2.Logout().Wait()
	alias := func(acct string) {
		t.Helper()
		if err := p.Store.AddAlias(ctx, a.Email, acct); err != nil {
			t.Fatal(err)
		}
		proxytest.WaitFor(t, 2*time.Second, func() bool {
			r, ok := p.Watcher.Table().Resolve(a.Email)
			return ok && r.Account == acct
		})
	}
	alias(k1)

	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	r.send(fmt.Sprintf("a LOGIN %s %s\r\n", a.Email, a.Password))
	r.expect("a OK")
	r.send("b SELECT INBOX\r\n")
	r.expect("* 0 EXISTS")
	r.expect("b OK")
	r.send("c IDLE\r\n")
	r.expect("+ ")
	start := time.Now()
	alias(k2)
	if l := r.expect("* BYE"); !strings.Contains(l, "moved") {
		t.Errorf("BYE = %q", l)
	}
	t.Logf("session under the alias ended %v after the alias write", time.Since(start))

	c := login(t, p.IMAP, a.Email, a.Password)
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("after re-pointing the alias: %+v %v, want the message on dovecot2", sel, err)
	}
}

// TestPreAuthTimeout: a client that keeps talking but never logs in is
// disconnected after the pre-auth timeout.
func TestPreAuthTimeout(t *testing.T) {
	const preAuth = time.Second
	s := peers.Get(t)
	p := proxytest.Start(t, s, &proxytest.Options{PreAuthTimeout: preAuth})
	r := dialRaw(t, p.IMAP)
	r.expect("* OK")
	start := time.Now()
	pace := time.NewTicker(100 * time.Millisecond) // a client's rhythm, not a wait
	defer pace.Stop()
	for i := 0; ; i++ {
		r.send(fmt.Sprintf("n%d NOOP\r\n", i))
		l := r.line()
		if l == "* BYE Autologout; idle for too long" {
			break
		}
		if !strings.HasPrefix(l, fmt.Sprintf("n%d OK", i)) {
			t.Fatalf("NOOP %d: %q", i, l)
		}
		if time.Since(start) > 3*preAuth {
			t.Fatal("still connected after three pre-auth timeouts")
		}
		<-pace.C
	}
	if d := time.Since(start); d < preAuth-100*time.Millisecond {
		t.Errorf("disconnected after %v, before the pre-auth timeout %v", d, preAuth)
	}
}
