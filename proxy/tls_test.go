package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for name (and, for the
// default one, 127.0.0.1) as name.pem and name.key in dir and returns the
// files and the certificate's serial number, which tells certificates of
// the same name apart.
func writeCert(t *testing.T, dir, name string) (CertFiles, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := CertFiles{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(f.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, serial.String()
}

// servedSerial runs a TLS handshake against addr, with serverName as SNI
// ("" sends none), after a STARTTLS exchange when startTLS is set, and
// returns the serial number of the certificate the server presented.
func servedSerial(t *testing.T, addr, serverName string, startTLS bool) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if startTLS {
		br := bufio.NewReader(nc)
		if l, err := br.ReadString('\n'); err != nil || l != "hello\n" {
			t.Fatalf("greeting: %q %v", l, err)
		}
		io.WriteString(nc, "STARTTLS\n")
		if l, err := br.ReadString('\n'); err != nil || l != "go ahead\n" {
			t.Fatalf("STARTTLS: %q %v", l, err)
		}
	}
	// The certificates are self-signed: the test checks which one is
	// served, not whether it is trusted.
	tc := tls.Client(nc, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	if l, err := bufio.NewReader(tc).ReadString('\n'); err != nil || (!startTLS && l != "hello\n") {
		t.Fatalf("after the handshake: %q %v", l, err)
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// tlsTestHandler greets and, on STARTTLS, upgrades the connection; then it
// waits for the client to go.
var tlsTestHandler = HandlerFunc(func(ctx context.Context, c *Conn) {
	io.WriteString(c.Conn, "hello\n")
	if !c.IsTLS() {
		l, err := bufio.NewReader(c.Conn).ReadString('\n')
		if err != nil || l != "STARTTLS\n" || !c.CanStartTLS() {
			return
		}
		io.WriteString(c.Conn, "go ahead\n")
		if c.StartTLS(ctx) != nil {
			return
		}
		io.WriteString(c.Conn, "ready\n")
	}
	io.Copy(io.Discard, c.Conn)
})

// TestCertStoreSNI: with two certificates, each name gets its own on an
// implicit-TLS listener and after STARTTLS, names match case-insensitively,
// a client without SNI or with an unknown name gets the first (default)
// one, ReloadTLS after the files were replaced serves the new ones, and a
// reload with a broken file keeps all the previous certificates.
func TestCertStoreSNI(t *testing.T) {
	dir := t.TempDir()
	mailF, mail1 := writeCert(t, dir, "mail.example.test")
	imapF, imap1 := writeCert(t, dir, "imap.example.test")
	cs, err := NewCertStore([]CertFiles{mailF, imapF})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(&Options{Certs: cs})
	implicit, err := srv.Listen(ListenerConfig{Protocol: IMAP, Address: "127.0.0.1:0", TLS: TLSImplicit, Handler: tlsTestHandler})
	if err != nil {
		t.Fatal(err)
	}
	starttls, err := srv.Listen(ListenerConfig{Protocol: IMAP, Address: "127.0.0.1:0", TLS: TLSStartTLS, Handler: tlsTestHandler})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	check := func(t *testing.T, mail, imap string) {
		t.Helper()
		tests := map[string]struct {
			sni  string
			want string
		}{
			"mail":        {"mail.example.test", mail},
			"imap":        {"imap.example.test", imap},
			"imap-upper":  {"IMAP.Example.Test", imap},
			"no-sni":      {"", mail},
			"unknown-sni": {"pop.example.test", mail},
		}
		for name, tc := range tests {
			for _, mode := range []struct {
				name     string
				addr     string
				startTLS bool
			}{{"implicit", implicit.String(), false}, {"starttls", starttls.String(), true}} {
				if got := servedSerial(t, mode.addr, tc.sni, mode.startTLS); got != tc.want {
					t.Errorf("%s %s: served certificate %s, want %s", mode.name, name, got, tc.want)
				}
			}
		}
	}
	check(t, mail1, imap1)

	// New files on disk: the old certificates are served until ReloadTLS.
	_, mail2 := writeCert(t, dir, "mail.example.test")
	_, imap2 := writeCert(t, dir, "imap.example.test")
	check(t, mail1, imap1)
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	check(t, mail2, imap2)

	// One broken file: the reload fails and both previous certificates
	// stay (none is dropped, the default does not move).
	if err := os.WriteFile(imapF.Key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), imapF.Cert) {
		t.Errorf("ReloadTLS with a broken key: %v, want an error naming %s", err, imapF.Cert)
	}
	check(t, mail2, imap2)
	if cs.Len() != 2 || len(cs.Certificates()) != 2 || cs.Certificate().Leaf.Subject.CommonName != "mail.example.test" {
		t.Errorf("store after a failed reload: %d certificates, default %v", len(cs.Certificates()), cs.Certificate().Leaf.Subject)
	}
}

func TestNewCertStoreErrors(t *testing.T) {
	if _, err := NewCertStore(nil); err == nil {
		t.Error("NewCertStore without certificates succeeded")
	}
	dir := t.TempDir()
	f, _ := writeCert(t, dir, "mail.example.test")
	if _, err := NewCertStore([]CertFiles{f, {Cert: filepath.Join(dir, "missing.pem"), Key: f.Key}}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("NewCertStore with a missing file: %v", err)
	}
	cs, err := LoadCertStore(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if first, second := cs.Config(), cs.Config(); first != second {
		t.Error("Config returns a new configuration per call; session tickets would not resume across connections")
	}
}
