package sieveclient

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
)

func TestMain(m *testing.M) { peers.Main(m) }

func cleartext(addr string) vandelay.Server {
	return vandelay.Server{Address: addr, TLS: vandelay.TLSNone, AllowCleartext: true}
}

func tryLogin(t *testing.T, srv vandelay.Server, l vandelay.Login) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Dial(ctx, &Options{Server: srv, Login: l})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ListScripts(ctx); err != nil {
		t.Fatalf("LISTSCRIPTS after login: %v", err)
	}
	return c.Logout(ctx)
}

// TestLogin logs in with every mechanism and master form at Dovecot and
// Cyrus; a wrong password is vandelay.ErrAuth.
func TestLogin(t *testing.T) {
	s := peers.Get(t)
	s.RequireOAuth(t)
	a := s.NewAccount(t)
	dv, cy := cleartext(s.Dovecot.ManageSieve), cleartext(s.Cyrus.ManageSieve)
	for name, tc := range map[string]struct {
		srv   vandelay.Server
		login vandelay.Login
	}{
		"dovecot/auto":           {dv, vandelay.Login{User: a.Email, Password: a.Password}},
		"dovecot/login":          {dv, vandelay.Login{User: a.Email, Password: a.Password, Auth: vandelay.AuthLogin}},
		"dovecot/master-star":    {dv, vandelay.Login{User: a.Email, Password: s.Dovecot.MasterPassword, MasterUser: s.Dovecot.MasterUser}},
		"dovecot/master-authzid": {dv, vandelay.Login{User: a.Email, Password: s.Dovecot.MasterPassword, MasterUser: s.Dovecot.MasterUser, MasterForm: vandelay.MasterAuthzID}},
		"dovecot/xoauth2":        {dv, vandelay.Login{User: a.Email, Token: peers.Token(a.Email), Auth: vandelay.AuthXOAUTH2}},
		"dovecot/oauthbearer":    {dv, vandelay.Login{User: a.Email, Token: peers.Token(a.Email), Auth: vandelay.AuthOAuthBearer}},
		"cyrus/plain":            {cy, vandelay.Login{User: a.Email, Password: a.Password, Auth: vandelay.AuthPlain}},
		"cyrus/login":            {cy, vandelay.Login{User: a.Email, Password: a.Password, Auth: vandelay.AuthLogin}},
		"cyrus/admin-authzid":    {cy, vandelay.Login{User: a.Email, Password: s.Cyrus.AdminPassword, MasterUser: s.Cyrus.AdminUser, MasterForm: vandelay.MasterAuthzID}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tryLogin(t, tc.srv, tc.login); err != nil {
				t.Fatal(err)
			}
		})
	}
	for name, tc := range map[string]struct {
		srv   vandelay.Server
		login vandelay.Login
	}{
		"dovecot/plain":   {dv, vandelay.Login{User: a.Email, Password: "wrong"}},
		"dovecot/login":   {dv, vandelay.Login{User: a.Email, Password: "wrong", Auth: vandelay.AuthLogin}},
		"dovecot/xoauth2": {dv, vandelay.Login{User: a.Email, Token: "mmtok.bad", Auth: vandelay.AuthXOAUTH2}},
		"cyrus/plain":     {cy, vandelay.Login{User: a.Email, Password: "wrong"}},
	} {
		t.Run("bad/"+name, func(t *testing.T) {
			err := tryLogin(t, tc.srv, tc.login)
			if !errors.Is(err, vandelay.ErrAuth) {
				t.Fatalf("got %v, want ErrAuth", err)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func testCert(t *testing.T) *tls.Config {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// front serves connections on a new listener with handle until the test
// ends; the test Dovecot has no TLS, so the fronts below add it.
func front(t *testing.T, handle func(c net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func relay(a net.Conn, ar io.Reader, b net.Conn, br io.Reader) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, ar); done <- struct{}{} }()
	go func() { io.Copy(a, br); done <- struct{}{} }()
	<-done
}

// TestTLS reads scripts through an implicit-TLS front and a STARTTLS
// front (which adds "STARTTLS" to Dovecot's greeting, answers the command
// and, after the handshake, relays Dovecot's CAPABILITY as the post-TLS
// capability block RFC 5804 2.2 requires).
func TestTLS(t *testing.T) {
	s := peers.Get(t)
	a := s.NewAccount(t)
	cfg := testCert(t)
	implicit := front(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		b, err := net.Dial("tcp", s.Dovecot.ManageSieve)
		if err != nil {
			return
		}
		defer b.Close()
		relay(tc, tc, b, b)
	})
	starttls := front(t, func(c net.Conn) {
		b, err := net.Dial("tcp", s.Dovecot.ManageSieve)
		if err != nil {
			return
		}
		defer b.Close()
		br := bufio.NewReader(b)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.HasPrefix(l, "OK") {
				io.WriteString(c, "\"STARTTLS\"\r\n"+l)
				break
			}
			io.WriteString(c, l)
		}
		cmd, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.EqualFold(strings.TrimSpace(cmd), "STARTTLS") {
			io.WriteString(c, "NO \"STARTTLS first\"\r\n")
			return
		}
		io.WriteString(c, "OK \"Begin TLS negotiation now\"\r\n")
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		io.WriteString(b, "CAPABILITY\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(tc, l)
			if strings.HasPrefix(l, "OK") {
				break
			}
		}
		relay(tc, tc, b, br)
	})
	login := vandelay.Login{User: a.Email, Password: a.Password}
	for name, srv := range map[string]vandelay.Server{
		"implicit": {Address: implicit, TLS: vandelay.TLSImplicit, InsecureSkipVerify: true},
		"starttls": {Address: starttls, TLS: vandelay.TLSStartTLS, InsecureSkipVerify: true},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tryLogin(t, srv, login); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("unverified certificate refused", func(t *testing.T) {
		err := tryLogin(t, vandelay.Server{Address: implicit, ServerName: "localhost"}, login)
		if !errors.Is(err, vandelay.ErrConnect) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("got %v, want a certificate error", err)
		}
	})
	t.Run("cleartext refused", func(t *testing.T) {
		err := tryLogin(t, vandelay.Server{Address: s.Dovecot.ManageSieve, TLS: vandelay.TLSNone}, login)
		if !errors.Is(err, vandelay.ErrUsage) {
			t.Fatalf("got %v, want ErrUsage", err)
		}
	})
}
