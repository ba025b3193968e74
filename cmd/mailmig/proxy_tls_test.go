package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/proxy/proxytest"
)

// writeTestCert writes a self-signed certificate for name as name.pem and
// name.key in dir (replacing earlier ones) and returns its serial number,
// which tells certificates of the same name apart.
func writeTestCert(t *testing.T, dir, name string) string {
	t.Helper()
	cert := proxytest.WriteCert(t, filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"), name, []string{name})
	return cert.SerialNumber.String()
}

// proxySerial connects to a proxy listener, runs the protocol's STARTTLS
// for imap and submission (imaps is implicit TLS), then a TLS handshake
// with serverName as SNI ("" sends none), and returns the serial number of
// the certificate served.
func proxySerial(t *testing.T, proto, addr, serverName string) (string, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	// until reads lines up to one that starts with prefix.
	until := func(prefix string) error {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return fmt.Errorf("%s: %w (waiting for %q)", proto, err, prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return nil
			}
		}
	}
	switch proto {
	case "imap":
		if err := until("* OK"); err != nil {
			return "", err
		}
		fmt.Fprintf(nc, "a STARTTLS\r\n")
		if err := until("a OK"); err != nil {
			return "", err
		}
	case "submission":
		if err := until("220 "); err != nil {
			return "", err
		}
		fmt.Fprintf(nc, "EHLO client.example.test\r\n")
		if err := until("250 "); err != nil {
			return "", err
		}
		fmt.Fprintf(nc, "STARTTLS\r\n")
		if err := until("220 "); err != nil {
			return "", err
		}
	}
	// Self-signed: the test checks which certificate is served.
	tc := tls.Client(nc, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return "", fmt.Errorf("%s handshake (SNI %q): %w", proto, serverName, err)
	}
	return tc.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// TestProxyTLSCertificates runs the real `mailmig proxy` process from a
// plan with two tls blocks: on an implicit-TLS IMAP listener and after
// STARTTLS on IMAP and submission, a client asking for each name (SNI)
// gets that name's certificate, a client without SNI or with an unknown
// name the first one; openssl s_client agrees. After the files are
// replaced, SIGHUP makes the process serve the new certificates.
func TestProxyTLSCertificates(t *testing.T) {
	s := needPeers(t)
	dir := t.TempDir()
	mail1 := writeTestCert(t, dir, "mail.example.test")
	imap1 := writeTestCert(t, dir, "imap.example.test")
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
  submission {
    address = %q
    tls     = "none"
  }
}
proxy {
  listen {
    imaps      = "127.0.0.1:0"
    imap       = "127.0.0.2:0"
    submission = "127.0.0.3:0"
  }
  tls {
    cert = "mail.example.test.pem"
    key  = "mail.example.test.key"
  }
  tls {
    cert = "imap.example.test.pem"
    key  = "imap.example.test.key"
  }
}
`, s.Dovecot.IMAP, s.Dovecot.Submission)
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}

	px := startProxyProcess(t, dir, planFile, 3, "-drain", "5s")
	addr := px.addr

	check := func(mail, imap string) {
		t.Helper()
		for _, proto := range []string{"imaps", "imap", "submission"} {
			for sni, want := range map[string]string{
				"mail.example.test": mail,
				"imap.example.test": imap,
				"":                  mail,
				"pop.example.test":  mail,
			} {
				got, err := proxySerial(t, proto, addr[proto], sni)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s with SNI %q: certificate %s, want %s", proto, sni, got, want)
				}
			}
		}
	}
	check(mail1, imap1)

	// A real client: openssl s_client, implicit TLS and IMAP STARTTLS.
	if _, err := exec.LookPath("openssl"); err == nil {
		cn := regexp.MustCompile(`subject=\s*CN\s*=\s*(\S+)`)
		for _, tc := range []struct {
			proto string
			args  []string
			want  string
		}{
			{"imaps", []string{"-servername", "imap.example.test"}, "imap.example.test"},
			{"imaps", []string{"-noservername"}, "mail.example.test"},
			{"imap", []string{"-starttls", "imap", "-servername", "imap.example.test"}, "imap.example.test"},
			{"imap", []string{"-starttls", "imap", "-servername", "mail.example.test"}, "mail.example.test"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			c := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", addr[tc.proto]}, tc.args...)...)
			c.Stdin = strings.NewReader("")
			out, _ := c.CombinedOutput()
			cancel()
			m := cn.FindSubmatch(out)
			if m == nil || string(m[1]) != tc.want {
				t.Errorf("openssl s_client %s %v: subject %q, want CN=%s\n%s", tc.proto, tc.args, m, tc.want, out)
			}
		}
	} else {
		t.Log("openssl not installed: s_client cases skipped")
	}

	// New files on disk, then SIGHUP: the process serves the new ones.
	mail2 := writeTestCert(t, dir, "mail.example.test")
	imap2 := writeTestCert(t, dir, "imap.example.test")
	if err := px.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloaded := time.Now().Add(10 * time.Second)
	for {
		got, err := proxySerial(t, "imaps", addr["imaps"], "imap.example.test")
		if err != nil {
			t.Fatal(err)
		}
		if got == imap2 {
			break
		}
		if time.Now().After(reloaded) {
			t.Fatalf("still the old certificate 10s after SIGHUP\n%s", px.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(mail2, imap2)

	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := px.wait(15 * time.Second); !ok {
		t.Error("mailmig proxy did not exit within 15s of SIGTERM")
	} else if err != nil {
		t.Errorf("mailmig proxy exited with %v\n%s", err, px.stderr)
	}
}
