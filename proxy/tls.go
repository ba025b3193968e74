package proxy

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// CertStore holds the server certificate loaded from a cert and a key file
// and swaps it atomically on Reload, so that new handshakes use the new
// certificate while open connections keep theirs.
type CertStore struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCertStore loads a PEM certificate chain and key.
func LoadCertStore(certFile, keyFile string) (*CertStore, error) {
	cs := &CertStore{certFile: certFile, keyFile: keyFile}
	if err := cs.Reload(); err != nil {
		return nil, err
	}
	return cs, nil
}

// Reload reads the files again. On error the previous certificate stays in
// use.
func (cs *CertStore) Reload() error {
	c, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return fmt.Errorf("load tls certificate %s: %w", cs.certFile, err)
	}
	cs.cert.Store(&c)
	return nil
}

// Certificate returns the current certificate.
func (cs *CertStore) Certificate() *tls.Certificate { return cs.cert.Load() }

// Config returns a server TLS configuration that always uses the current
// certificate.
func (cs *CertStore) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return cs.cert.Load(), nil
		},
	}
}
