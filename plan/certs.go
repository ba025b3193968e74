package plan

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// checkCertificate reads a proxy tls block's files (WithCertificateCheck)
// and reports what would stop the proxy from loading them, at the cert or
// key attribute.
func (l *loader) checkCertificate(t *ProxyTLS, certRng, keyRng hcl.Range) {
	certPEM, cerr := readLimited(t.Cert, MaxFileSize)
	if cerr != nil {
		l.errorf(certRng, "Unreadable certificate file",
			"The proxy certificate file %s cannot be read: %v. Paths are relative to the plan's directory; check the name and the permissions.", t.Cert, unwrapPathErr(cerr))
	}
	keyPEM, kerr := readLimited(t.Key, MaxFileSize)
	if kerr != nil {
		l.errorf(keyRng, "Unreadable key file",
			"The proxy key file %s cannot be read: %v. Paths are relative to the plan's directory; check the name and the permissions (the user running mailmig proxy must be able to read it).", t.Key, unwrapPathErr(kerr))
	}
	if cerr != nil || kerr != nil {
		return
	}
	leaf, err := leafCertificate(certPEM)
	if err != nil {
		l.errorf(certRng, "Invalid certificate file",
			"The file %s holds no usable certificate: %v. Give the certificate chain in PEM form (-----BEGIN CERTIFICATE-----), the server's own certificate first.", t.Cert, err)
		return
	}
	key, err := privateKey(keyPEM)
	if err != nil {
		l.errorf(keyRng, "Invalid key file",
			"The file %s holds no usable private key: %v. Give the certificate's unencrypted private key in PEM form (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY).", t.Key, err)
		return
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		l.errorf(keyRng, "Certificate and key do not match",
			"The key in %s does not belong to the certificate in %s. Give the key the certificate was issued for, or the certificate issued for this key.", t.Key, t.Cert)
		return
	}
	// What the proxy itself will run; catches what the checks above
	// do not look at (unsupported key types).
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		l.errorf(keyRng, "Unusable certificate and key",
			"The certificate %s and key %s cannot be used together: %v.", t.Cert, t.Key, err)
		return
	}
	if time.Now().After(leaf.NotAfter) {
		l.warnf(certRng, "Expired proxy certificate",
			"The certificate in %s expired on %s; clients will refuse it. Renew it and send the proxy SIGHUP to reload.", t.Cert, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
}

// leafCertificate returns the first certificate of a PEM file (other
// blocks, such as a key kept in the same file, are skipped).
func leafCertificate(b []byte) (*x509.Certificate, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}

// privateKey returns the first private key of a PEM file.
func privateKey(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key block")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, errors.New("unsupported key type")
		}
		return s, nil
	}
}
