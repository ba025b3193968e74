package smtp

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/routes"
)

// TestLMTPSlowDataAcrossFreeze (issue 15): a slow LMTP client has begun
// DATA when the account is frozen and sends the rest in pieces for longer
// than the old settle delay (1.5 s). The proxy counts the delivery as in
// flight and does not acknowledge the freeze until the backend answered
// the final dot; the engine's wait (routes.Store.AwaitFreeze) returns only
// then. So the message is on the source before the cut-over's final sync
// starts — exactly once — and nothing lands on the new backend; a second
// transaction during the freeze gets 451 4.2.0.
func TestLMTPSlowDataAcrossFreeze(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	acker := proxy.NewFreezeAcker(e.router, e.w, e.store, "proxy-under-test", "test", nil)
	stop, err := acker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	mark := marker()

	conn, err := net.Dial("tcp", e.lmtp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(conn)
	expect := func(prefix string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", prefix, err)
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("got %q, want %q", strings.TrimSpace(line), prefix)
			}
			return
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := fmt.Fprint(conn, s); err != nil {
			t.Fatal(err)
		}
	}
	expect("220")
	send("LHLO client.example\r\n")
	expect("250")
	send("MAIL FROM:<sender@remote.example>\r\n")
	expect("250")
	send("RCPT TO:<" + a.Email + ">\r\n")
	expect("250")
	send("DATA\r\n")
	expect("354")
	send("From: <sender@remote.example>\r\nTo: <" + a.Email + ">\r\nSubject: slow " + mark + "\r\n")
	proxytest.WaitFor(t, 10*time.Second, func() bool { return e.router.InFlight(a.Email) == 1 })

	// The cut-over freezes the account and waits for the acknowledgement.
	if _, err := e.store.Freeze(ctx, a.Email); err != nil {
		t.Fatal(err)
	}
	e.refresh()
	type waited struct {
		w   routes.FreezeWait
		err error
	}
	acked := make(chan waited, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		w, err := e.store.AwaitFreeze(wctx, a.Email, 0)
		acked <- waited{w, err}
	}()

	// Another delivery during the freeze is refused temporarily.
	rcptErr, _ := lmtpSend(t, e.lmtp, []string{a.Email}, message("sender@remote.example", a.Email, marker()))
	if se := smtpErr(rcptErr[a.Email]); se == nil || se.Code != 451 || se.EnhancedCode != (gosmtp.EnhancedCode{4, 2, 0}) {
		t.Fatalf("RCPT during freeze: %v, want 451 4.2.0", rcptErr[a.Email])
	}

	// The rest of the message, in pieces, across more than the old
	// settle delay. The freeze stays unacknowledged meanwhile.
	pieces := []string{"Message-ID: <" + mark + "@example.test>\r\n\r\n", "first line " + mark + "\r\n", "second line\r\n", "last line\r\n"}
	for _, p := range pieces {
		time.Sleep(500 * time.Millisecond)
		select {
		case w := <-acked:
			t.Fatalf("freeze acknowledged while the delivery was in flight: %+v %v", w.w, w.err)
		default:
		}
		send(p)
	}
	send(".\r\n")
	expect("250")
	w := <-acked
	if w.err != nil {
		t.Fatalf("freeze not acknowledged after the delivery ended: %v", w.err)
	}
	if len(w.w.Proxies) != 1 || w.w.Proxies[0] != "proxy-under-test" {
		t.Errorf("acknowledged by %v, want the one proxy", w.w.Proxies)
	}
	// The message is on the source when the final sync would start.
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(a.Email), mark); n != 1 {
		t.Fatalf("source has %d copies when the freeze is acknowledged, want 1", n)
	}

	// Flip and unfreeze: nothing more arrives anywhere.
	e.route(a.Email, "dovecot2")
	e.freeze(a.Email, false)
	send("QUIT\r\n")
	if n := maildirCount(t, e.set.Dovecot2.MaildirPath(a.Email), mark); n != 0 {
		t.Errorf("new backend has %d copies, want 0", n)
	}
	if n := maildirCount(t, e.set.Dovecot.MaildirPath(a.Email), mark); n != 1 {
		t.Errorf("source has %d copies, want 1", n)
	}
}

// TestFreezeAckWithoutDeliveries: with nothing in flight the freeze is
// acknowledged as soon as the proxy sees it; a stopped proxy is not waited
// for; AwaitFreeze of an active route is an error.
func TestFreezeAckWithoutDeliveries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.set.NewAccount(t)
	e.route(a.Email, "dovecot")
	if _, err := e.store.AwaitFreeze(ctx, a.Email, 0); err == nil {
		t.Fatal("AwaitFreeze of an active route succeeded")
	}
	acker := proxy.NewFreezeAcker(e.router, e.w, e.store, "p1", "test", nil)
	stop, err := acker.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.freeze(a.Email, true)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	w, err := e.store.AwaitFreeze(wctx, a.Email, 0)
	if err != nil || len(w.Proxies) != 1 {
		t.Fatalf("AwaitFreeze: %+v %v", w, err)
	}
	stop()
	e.freeze(a.Email, false)
	e.freeze(a.Email, true)
	if w, err := e.store.AwaitFreeze(wctx, a.Email, 0); err != nil || len(w.Proxies) != 0 {
		t.Fatalf("AwaitFreeze without proxies: %+v %v", w, err)
	}
}
