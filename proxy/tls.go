package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// CertFiles names the PEM files of one certificate: the chain, the
// server's own certificate first, and its private key.
type CertFiles struct {
	Cert, Key string
}

// CertStore holds the server certificates loaded from cert and key files
// and swaps them atomically on Reload, so that new handshakes use the new
// certificates while open connections keep theirs.
//
// With several certificates, each handshake gets the first one that
// covers the name the client asks for (SNI) and that the client can use;
// the first certificate is the default, for clients that send no name or
// one no certificate covers (crypto/tls's own rule for
// Config.Certificates).
type CertStore struct {
	files []CertFiles
	certs atomic.Pointer[[]*tls.Certificate]
	cfg   *tls.Config
}

// LoadCertStore loads one PEM certificate chain and its key.
func LoadCertStore(certFile, keyFile string) (*CertStore, error) {
	return NewCertStore([]CertFiles{{Cert: certFile, Key: keyFile}})
}

// NewCertStore loads several certificates; the first is the default. It
// needs at least one.
func NewCertStore(files []CertFiles) (*CertStore, error) {
	if len(files) == 0 {
		return nil, errors.New("load tls certificates: no certificate given")
	}
	cs := &CertStore{files: append([]CertFiles(nil), files...)}
	if err := cs.Reload(); err != nil {
		return nil, err
	}
	cs.cfg = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cs.certificate,
	}
	return cs, nil
}

// Reload reads every file again. The new set replaces the old one only
// when all of them load: on error the previous certificates all stay in
// use.
func (cs *CertStore) Reload() error {
	certs := make([]*tls.Certificate, 0, len(cs.files))
	var errs []error
	for _, f := range cs.files {
		// LoadX509KeyPair fills Leaf, which the SNI match reads.
		c, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("load tls certificate %s: %w", f.Cert, err))
			continue
		}
		certs = append(certs, &c)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	cs.certs.Store(&certs)
	return nil
}

// Len returns the number of certificates.
func (cs *CertStore) Len() int { return len(cs.files) }

// Certificate returns the current default (first) certificate.
func (cs *CertStore) Certificate() *tls.Certificate { return (*cs.certs.Load())[0] }

// Certificates returns the current certificates in order. The caller must
// not modify them.
func (cs *CertStore) Certificates() []*tls.Certificate { return *cs.certs.Load() }

// certificate picks the certificate for a handshake: the first one the
// client supports (name, when it sent one, and algorithms), else the
// default.
func (cs *CertStore) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *cs.certs.Load()
	if len(certs) > 1 {
		for _, c := range certs {
			if hello.SupportsCertificate(c) == nil {
				return c, nil
			}
		}
	}
	return certs[0], nil
}

// Config returns the server TLS configuration, which always uses the
// current certificates. Every call returns the same configuration (so
// that session tickets work across connections); callers must not modify
// it (Clone it first).
func (cs *CertStore) Config() *tls.Config { return cs.cfg }
