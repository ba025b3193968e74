package imap_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// tlsFront terminates implicit TLS on 127.0.0.1 with a throwaway
// certificate and relays to a plain backend (the test Dovecot has no TLS).
func tlsFront(t *testing.T, backend string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
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
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				go io.Copy(b, c)
				io.Copy(c, b)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestImplicitTLS(t *testing.T) {
	a := newAccount(t)
	a.load(t, 9, 20)
	front := tlsFront(t, a.addr)
	ar := vandelaytest.OpenArchive(t)
	src := a.factory(func(c *vandelay.Config) {
		c.Address, c.TLS, c.AllowCleartext, c.ServerName, c.InsecureSkipVerify = front, vandelay.TLSImplicit, false, "localhost", true
	})(t)
	res := vandelaytest.Import(t, ar, src, nil)
	if res.MessagesAdded == 0 {
		t.Fatal("nothing imported over TLS")
	}
	// Without InsecureSkipVerify the self-signed certificate is refused.
	bad := a.factory(func(c *vandelay.Config) {
		c.Address, c.TLS, c.AllowCleartext, c.ServerName = front, vandelay.TLSImplicit, false, "localhost"
	})(t)
	run, _ := vandelaytest.OpenArchive(t).BeginRun(t.Context(), bad.Describe(), nil)
	if err := bad.Sync(t.Context(), run); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}
