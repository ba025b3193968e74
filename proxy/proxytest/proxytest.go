package proxytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/proxy"
	"github.com/mailmig/mailmig/proxy/imap"
	"github.com/mailmig/mailmig/proxy/pop3"
	"github.com/mailmig/mailmig/proxy/routes"
	"github.com/mailmig/mailmig/proxy/sieve"
)

// Options configure Start. A nil *Options means defaults.
type Options struct {
	// TLS gives the proxy a self-signed certificate: STARTTLS on every
	// listener (so plaintext logins are refused before it) and an
	// implicit-TLS IMAP listener (Proxy.IMAPS).
	TLS bool
	// FrozenHold is the router's hold time for frozen accounts.
	// Default: 2s (tests must not wait 30 s).
	FrozenHold time.Duration
	// ClientAddress says how backends learn the client address:
	// "id" (IMAP ID; default), "proxy" (HAProxy PROXY v2 to Dovecot's
	// haproxy listeners) or "none".
	ClientAddress string
	// Login is the login mode of every backend. Default: passthrough.
	Login proxy.LoginMode
	// AuthFailures overrides the failed-auth limit per client IP.
	AuthFailures int
	// AuthFailureDelay is the server's failed-login delay. Default:
	// 100ms, so that tests of failures do not wait 2 s each; a negative
	// value means none.
	AuthFailureDelay time.Duration
	// IdleTimeout and PreAuthTimeout override the server's timeouts.
	IdleTimeout, PreAuthTimeout time.Duration
	// Listener, when set, adjusts the configuration of the standard IMAP,
	// IMAPS, POP3 and ManageSieve listeners (e.g. the PROXY protocol)
	// before they are opened.
	Listener func(*proxy.ListenerConfig)
	// Extra listeners (other protocols) opened on the same server.
	Extra []proxy.ListenerConfig
	// ExtraBackends are added to the standard backends.
	ExtraBackends []*proxy.Backend
	// Logger for the proxy. Default: discard (set MAILMIG_PROXY_LOG=1 to
	// log to stderr at debug level).
	Logger *slog.Logger
}

// Proxy is a running proxy.
type Proxy struct {
	Server   *proxy.Server
	Store    *routes.Store
	Watcher  *routes.Watcher
	Router   *proxy.TableRouter
	Backends []*proxy.Backend
	// Client addresses ("127.0.0.1:port") of the listeners.
	IMAP, IMAPS, POP3, ManageSieve string
	// Extra holds the addresses of Options.Extra, in order.
	Extra []string
	// CertFile and KeyFile hold the self-signed certificate with TLS.
	CertFile, KeyFile string
	// RootCAs trusts the certificate (with TLS).
	RootCAs *x509.CertPool
}

// Backends returns the backends "dovecot", "dovecot2" and "cyrus" of a peer
// set, all with plaintext allowed (loopback).
func Backends(s *peers.Set, login proxy.LoginMode, clientAddr string) []*proxy.Backend {
	if login == "" {
		login = proxy.LoginPassthrough
	}
	dove := func(name string, d *peers.Dovecot) *proxy.Backend {
		imapEP := proxy.Endpoint{Address: d.IMAP, AllowPlaintext: true}
		pop3EP := proxy.Endpoint{Address: d.POP3, AllowPlaintext: true}
		sieveEP := proxy.Endpoint{Address: d.ManageSieve, AllowPlaintext: true}
		switch clientAddr {
		case "proxy":
			imapEP = proxy.Endpoint{Address: d.IMAPHAProxy, AllowPlaintext: true, ProxyProtocol: true}
			pop3EP = proxy.Endpoint{Address: d.POP3HAProxy, AllowPlaintext: true, ProxyProtocol: true}
		case "none":
		default:
			imapEP.ForwardID = true
			pop3EP.XCLIENT = true
			sieveEP.XCLIENT = true
		}
		return &proxy.Backend{
			Name: name,
			Endpoints: map[proxy.Protocol]proxy.Endpoint{
				proxy.IMAP:        imapEP,
				proxy.POP3:        pop3EP,
				proxy.ManageSieve: sieveEP,
				proxy.Submission:  {Address: d.Submission, AllowPlaintext: true, XCLIENT: true},
				proxy.LMTP:        {Address: d.LMTP, AllowPlaintext: true},
			},
			Login:          login,
			MasterUser:     d.MasterUser,
			MasterPassword: d.MasterPassword,
		}
	}
	cy := &proxy.Backend{
		Name: "cyrus",
		Endpoints: map[proxy.Protocol]proxy.Endpoint{
			proxy.IMAP:        {Address: s.Cyrus.IMAP, AllowPlaintext: true},
			proxy.POP3:        {Address: s.Cyrus.POP3, AllowPlaintext: true},
			proxy.ManageSieve: {Address: s.Cyrus.ManageSieve, AllowPlaintext: true},
			proxy.LMTP:        {Address: s.Cyrus.LMTP, AllowPlaintext: true},
			proxy.HTTP:        {URL: "http://" + s.Cyrus.HTTP + "/", AllowPlaintext: true},
		},
		Login:          login,
		MasterUser:     s.Cyrus.AdminUser,
		MasterPassword: s.Cyrus.AdminPassword,
		MasterStyle:    proxy.MasterAuthzid,
	}
	// "down" refuses connections: port 1 on loopback has no listener.
	down := &proxy.Backend{Name: "down", Endpoints: map[proxy.Protocol]proxy.Endpoint{}}
	for _, p := range []proxy.Protocol{proxy.IMAP, proxy.POP3, proxy.ManageSieve, proxy.Submission, proxy.SMTP, proxy.LMTP} {
		down.Endpoints[p] = proxy.Endpoint{Address: "127.0.0.1:1", AllowPlaintext: true}
	}
	down.Endpoints[proxy.HTTP] = proxy.Endpoint{URL: "http://127.0.0.1:1/", AllowPlaintext: true}
	return []*proxy.Backend{dove("dovecot", s.Dovecot), dove("dovecot2", s.Dovecot2), cy, down}
}

// Main is TestMain for the proxy packages: it runs the tests (inside
// peers.Wrap, so a peer set started for them is stopped afterwards) and
// fails the run when the proxy recovered a panic anywhere (proxy.Panics),
// also in tests that did not check for one themselves.
func Main(m *testing.M) {
	os.Exit(peers.Wrap(func() int { return CheckPanics(m.Run(), 0) }))
}

// CheckPanics returns code, or 1 with a message when proxy.Panics is not
// expected (the number of panics the tests caused on purpose).
func CheckPanics(code int, expected int64) int {
	if n := proxy.Panics(); n != expected {
		fmt.Fprintf(os.Stderr, "FAIL: the proxy recovered %d panics (%d expected); see the logs above\n", n, expected)
		return 1
	}
	return code
}

// Start starts a proxy in front of the set and stops it when the test
// ends.
func Start(t testing.TB, s *peers.Set, opts *Options) *Proxy {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	st, err := routes.Open(ctx, filepath.Join(dir, "routes.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetDefault(ctx, "dovecot"); err != nil {
		t.Fatal(err)
	}
	if err := st.AddDomains(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := routes.NewWatcher(ctx, st, &routes.WatchOptions{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(ctx)
	hold := opts.FrozenHold
	if hold == 0 {
		hold = 2 * time.Second
	}
	p := &Proxy{Store: st, Watcher: w, Backends: append(Backends(s, opts.Login, opts.ClientAddress), opts.ExtraBackends...)}
	p.Router = proxy.NewRouter(w, p.Backends, &proxy.RouterOptions{FrozenHold: hold})
	log := opts.Logger
	if log == nil && os.Getenv("MAILMIG_PROXY_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	delay := opts.AuthFailureDelay
	if delay == 0 {
		delay = 100 * time.Millisecond
	}
	so := &proxy.Options{Router: p.Router, Logger: log, AuthFailures: opts.AuthFailures, IdleTimeout: opts.IdleTimeout, PreAuthTimeout: opts.PreAuthTimeout, AuthFailureDelay: delay}
	if opts.TLS {
		p.CertFile, p.KeyFile, p.RootCAs = SelfSigned(t, dir)
		so.Certs, err = proxy.LoadCertStore(p.CertFile, p.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
	}
	p.Server = proxy.NewServer(so)
	listen := func(cfg proxy.ListenerConfig, std bool) string {
		cfg.Address = "127.0.0.1:0"
		if std && opts.Listener != nil {
			opts.Listener(&cfg)
		}
		a, err := p.Server.Listen(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return a.String()
	}
	p.IMAP = listen(proxy.ListenerConfig{Protocol: proxy.IMAP, Handler: imap.New(nil)}, true)
	if opts.TLS {
		p.IMAPS = listen(proxy.ListenerConfig{Protocol: proxy.IMAP, TLS: proxy.TLSImplicit, Handler: imap.New(nil)}, true)
	}
	p.POP3 = listen(proxy.ListenerConfig{Protocol: proxy.POP3, Handler: pop3.New(nil)}, true)
	p.ManageSieve = listen(proxy.ListenerConfig{Protocol: proxy.ManageSieve, Handler: sieve.New(nil)}, true)
	for _, cfg := range opts.Extra {
		p.Extra = append(p.Extra, listen(cfg, false))
	}
	p.Server.Start()
	t.Cleanup(func() {
		if n := proxy.Panics(); n != 0 {
			t.Errorf("the proxy recovered %d panics (see the log)", n)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		p.Server.Shutdown(sctx)
		p.Router.Close()
		cancel()
		st.Close()
	})
	return p
}

// Route points an account at a backend and waits until the proxy saw it.
func (p *Proxy) Route(t testing.TB, account, backend string) {
	t.Helper()
	r, err := p.Store.Set(context.Background(), account, backend)
	if err != nil {
		t.Fatal(err)
	}
	p.waitGen(t, r)
}

// Freeze freezes an account (creating its route on "dovecot" first when
// missing) and waits until the proxy saw it.
func (p *Proxy) Freeze(t testing.TB, account string) {
	t.Helper()
	r, err := p.Store.Update(context.Background(), account, func(r *routes.Route, ok bool) error {
		if !ok {
			r.Backend = "dovecot"
		}
		r.State = routes.Frozen
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.waitGen(t, r)
}

// Unfreeze makes an account active again.
func (p *Proxy) Unfreeze(t testing.TB, account string) {
	t.Helper()
	r, err := p.Store.Unfreeze(context.Background(), account)
	if err != nil {
		t.Fatal(err)
	}
	p.waitGen(t, r)
}

func (p *Proxy) waitGen(t testing.TB, r routes.Route) {
	t.Helper()
	WaitFor(t, 2*time.Second, func() bool {
		cur, ok := p.Watcher.Table().Account(r.Account)
		return ok && cur.Generation >= r.Generation
	})
}

// WaitFor polls cond until it is true or the timeout passes (then the test
// fails).
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SelfSigned writes a self-signed certificate for 127.0.0.1 and localhost
// into dir and returns the file names and a pool that trusts it.
func SelfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert := WriteCert(t, certFile, keyFile, "mailmig proxy test", []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// WriteCert writes a new self-signed certificate (its own CA, a random
// serial number, valid from an hour ago for a day) for the DNS names and
// addresses to certFile and its key to keyFile (PKCS #8), replacing
// earlier files, and returns it.
func WriteCert(t testing.TB, certFile, keyFile, commonName string, dnsNames []string, ips ...net.IP) *x509.Certificate {
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
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           ips,
		DNSNames:              dnsNames,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// ClientTLS returns a client TLS configuration trusting the proxy.
func (p *Proxy) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.RootCAs, ServerName: "127.0.0.1"}
}

// DialFrom connects to addr from the loopback address from (e.g.
// "127.0.0.2"), so that tests can check which client address a backend
// saw.
func DialFrom(t testing.TB, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// WaitLogin waits until Dovecot's log has a login line of user from the
// client address rip ("… Login: user=<user>, … rip=<rip>, …") and fails the
// test after 5 s.
func WaitLogin(t testing.TB, d *peers.Dovecot, service, user, rip string) {
	t.Helper()
	path := filepath.Join(d.Base, "log", "dovecot.log")
	WaitFor(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, service+"-login: Info: Login: user=<"+user+">") && strings.Contains(l, "rip="+rip+",") {
				return true
			}
		}
		return false
	})
}
