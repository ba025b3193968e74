package smtp_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/proxytest"
	"github.com/mailmig/mailmig/proxy/smtp"
)

// lateRouter lets a handler be built before proxytest has made the router.
type lateRouter struct{ proxy.Router }

func swaksOrSkip(t *testing.T) {
	if _, err := exec.LookPath("swaks"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("swaks is not installed")
		}
		t.Skip("swaks is not installed (testdata/peers/install.sh installs it)")
	}
}

func runSwaks(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "swaks", append([]string{"--hide-informational", "--timeout", "20"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestThroughProxyServer runs submission (implicit TLS) and LMTP as
// proxy.Server listeners (ServeConn), the way `mailmig proxy` does, with
// swaks and go-smtp's client against the real Dovecot.
func TestThroughProxyServer(t *testing.T) {
	swaksOrSkip(t)
	s := peers.Get(t)
	lr := &lateRouter{}
	sub, err := smtp.NewServer(&smtp.Options{Mode: smtp.ModeSubmission, Router: lr, Hostname: "proxy.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	lmtp, err := smtp.NewServer(&smtp.Options{Mode: smtp.ModeLMTP, Router: lr, Hostname: "proxy.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	p := proxytest.Start(t, s, &proxytest.Options{TLS: true, Extra: []proxy.ListenerConfig{
		{Protocol: proxy.Submission, TLS: proxy.TLSImplicit, Handler: sub},
		{Protocol: proxy.LMTP, TLS: proxy.TLSNone, Handler: lmtp},
	}})
	lr.Router = p.Router
	a := s.NewAccount(t) // "dovecot" is proxytest's default backend

	out, err := runSwaks(t, "--server", p.Extra[0], "--tls-on-connect", "--from", a.Email, "--to", "friend@remote.example",
		"--auth", "PLAIN", "--auth-user", a.Email, "--auth-password", a.Password, "--header", "Subject: via proxy.Server")
	if err != nil {
		t.Fatalf("swaks submission over implicit TLS: %v\n%s", err, out)
	}
	out, _ = runSwaks(t, "--server", p.Extra[0], "--tls-on-connect", "--from", a.Email, "--to", "friend@remote.example",
		"--auth", "PLAIN", "--auth-user", a.Email, "--auth-password", "wrong")
	if !strings.Contains(out, "535 5.7.8") {
		t.Errorf("wrong password: want 535 5.7.8:\n%s", out)
	}
	if n := p.Server.Metrics().Get(proxy.MetricAuthFailures, "proto", string(proxy.Submission)); n != 1 {
		t.Errorf("auth failures counted: %d, want 1", n)
	}

	c2 := gosmtp.NewClientLMTP(mustDial(t, p.Extra[1]))
	defer c2.Close()
	msg := "Subject: lmtp via proxy.Server\r\n\r\nhello\r\n"
	if err := c2.SendMail("s@remote.example", []string{a.Email}, strings.NewReader(msg)); err != nil {
		t.Fatalf("LMTP through proxy.Server: %v", err)
	}
	found := false
	proxytest.WaitFor(t, 5*time.Second, func() bool {
		for _, sub := range []string{"new", "cur"} {
			ents, _ := os.ReadDir(filepath.Join(s.Dovecot.MaildirPath(a.Email), sub))
			for _, e := range ents {
				b, _ := os.ReadFile(filepath.Join(s.Dovecot.MaildirPath(a.Email), sub, e.Name()))
				if strings.Contains(string(b), "lmtp via proxy.Server") {
					found = true
				}
			}
		}
		return found
	})
	if !found {
		t.Error("LMTP message not in the Maildir")
	}
}

func mustDial(t *testing.T, addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSTARTTLS: the submission front offers STARTTLS, refuses AUTH before
// it when insecure auth is off, and relays after it.
func TestSTARTTLS(t *testing.T) {
	swaksOrSkip(t)
	s := peers.Get(t)
	certFile, keyFile, _ := proxytest.SelfSigned(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := proxytest.Start(t, s, nil)
	sub, err := smtp.NewServer(&smtp.Options{Mode: smtp.ModeSubmission, Router: p.Router, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go sub.Serve(ln)
	t.Cleanup(func() { sub.Close() })
	a := s.NewAccount(t)

	out, err := runSwaks(t, "--server", ln.Addr().String(), "--tls", "--from", a.Email, "--to", "friend@remote.example",
		"--auth", "LOGIN", "--auth-user", a.Email, "--auth-password", a.Password)
	if err != nil || !strings.Contains(out, "STARTTLS") {
		t.Fatalf("swaks with STARTTLS: %v\n%s", err, out)
	}
	out, err = runSwaks(t, "--server", ln.Addr().String(), "--from", a.Email, "--to", "friend@remote.example",
		"--auth", "PLAIN", "--auth-user", a.Email, "--auth-password", a.Password)
	if err == nil {
		t.Errorf("AUTH without TLS accepted:\n%s", out)
	}
}
