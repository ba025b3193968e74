package imap_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// tlsFront terminates implicit TLS on 127.0.0.1 with a throwaway
// certificate and relays to a plain backend (the test Dovecot has no TLS).
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

// serveFront accepts connections on ln until the test ends and serves
// each with handle on its own goroutine (the connection is closed after
// it). It returns the listener's address. The fronts below sit between
// the source and Dovecot to add TLS or misbehave.
func serveFront(t *testing.T, ln net.Listener, handle func(c net.Conn)) string {
	t.Helper()
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

func tlsFront(t *testing.T, backend string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", testCert(t))
	if err != nil {
		t.Fatal(err)
	}
	return serveFront(t, ln, func(c net.Conn) {
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		go io.Copy(b, c)
		io.Copy(c, b)
	})
}

func TestImplicitTLS(t *testing.T) {
	a := newAccount(t)
	a.load(t, 9, 20)
	front := tlsFront(t, a.addr)
	ar := vandelaytest.OpenArchive(t)
	src := a.factory(func(c *imapsrc.Options) {
		c.Address, c.TLS, c.AllowCleartext, c.ServerName, c.InsecureSkipVerify = front, vandelay.TLSImplicit, false, "localhost", true
	})(t)
	res := vandelaytest.Import(t, ar, src, nil)
	if res.MessagesAdded == 0 {
		t.Fatal("nothing imported over TLS")
	}
	// Without InsecureSkipVerify the self-signed certificate is refused.
	bad := a.factory(func(c *imapsrc.Options) {
		c.Address, c.TLS, c.AllowCleartext, c.ServerName = front, vandelay.TLSImplicit, false, "localhost"
	})(t)
	run, _ := vandelaytest.OpenArchive(t).BeginRun(t.Context(), bad.Describe(), nil)
	if err := bad.Sync(t.Context(), run, nil); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

// starttlsFront offers STARTTLS in its own greeting, upgrades, then relays
// to the plain backend, swallowing the backend's greeting (after STARTTLS
// the client expects none).
func starttlsFront(t *testing.T, backend string) string {
	t.Helper()
	cfg := testCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFront(t, ln, func(c net.Conn) {
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] front\r\n")
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
			if strings.EqualFold(cmd, "STARTTLS") {
				io.WriteString(c, tag+" OK begin TLS\r\n")
				break
			}
			if strings.EqualFold(cmd, "CAPABILITY") {
				io.WriteString(c, "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"+tag+" OK done\r\n")
				continue
			}
			io.WriteString(c, tag+" BAD STARTTLS first\r\n")
		}
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		bb := bufio.NewReader(b)
		if _, err := bb.ReadString('\n'); err != nil { // the backend's greeting
			return
		}
		go io.Copy(b, tc)
		io.Copy(tc, bb)
	})
}

func TestStartTLS(t *testing.T) {
	a := newAccount(t)
	a.load(t, 13, 20)
	front := starttlsFront(t, a.addr)
	src := a.factory(func(c *imapsrc.Options) {
		c.Address, c.TLS, c.AllowCleartext, c.ServerName, c.InsecureSkipVerify = front, vandelay.TLSStartTLS, false, "localhost", true
	})(t)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, src, nil)
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}

// limitFront relays to the backend but answers the first n body fetches
// itself with "NO [LIMIT]" (RFC 5530), as a server that throttles would.
func limitFront(t *testing.T, backend string, n int) (string, *atomic.Int32) {
	t.Helper()
	var refused atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFront(t, ln, func(c net.Conn) {
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		var wmu sync.Mutex // client writes: relayed responses and injected ones
		go func() {
			buf := make([]byte, 32<<10)
			for {
				k, err := b.Read(buf)
				if k > 0 {
					wmu.Lock()
					c.Write(buf[:k])
					wmu.Unlock()
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.Contains(line, "BODY.PEEK[]") && refused.Add(1) <= int32(n) {
				tag, _, _ := strings.Cut(line, " ")
				wmu.Lock()
				io.WriteString(c, tag+" NO [LIMIT] Too many requests, slow down\r\n")
				wmu.Unlock()
				continue
			}
			io.WriteString(b, line)
		}
	}), &refused
}

// TestLimitBackoff: a server answering NO [LIMIT] gets a backoff and a
// retry, and the import still completes.
func TestLimitBackoff(t *testing.T) {
	a := newAccount(t)
	a.load(t, 14, 30)
	front, refused := limitFront(t, a.addr, 2)
	src := a.factory(func(c *imapsrc.Options) { c.Address, c.Connections = front, 1 })(t)
	ar := vandelaytest.OpenArchive(t)
	vandelaytest.Import(t, ar, src, nil)
	if refused.Load() < 3 {
		t.Errorf("only %d body fetches seen", refused.Load())
	}
	vandelaytest.Check(t, ar, vandelaytest.SnapshotIMAP(t, a.addr, a.user, a.pass))
}
