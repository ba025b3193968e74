package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyProtocolFromPlan: accept_proxy_protocol with the plan's trusted
// networks reaches the listeners startProxy builds: the trusted balancer
// (127.0.0.1) sends a header and gets the greeting, a direct client
// (127.0.0.2) is refused unread (proxy_protocol_untrusted's default).
func TestProxyProtocolFromPlan(t *testing.T) {
	s := needPeers(t)
	dir := t.TempDir()
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
}
proxy {
  listen {
    imap = "127.0.0.1:0"
  }
  accept_proxy_protocol           = true
  proxy_protocol_trusted_networks = ["127.0.0.1"]
}
`, s.Dovecot.IMAP)
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	m, diags := loadMigration(&globals{PlanPath: planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	p, err := startProxy(context.Background(), m, &proxyRun{PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(c)
	})
	var addr string
	for _, a := range p.Addrs {
		if proto, ad, _ := strings.Cut(a, " "); proto == "imap" {
			addr = ad
		}
	}
	ap := netip.MustParseAddrPort(addr)
	header := fmt.Sprintf("PROXY TCP4 192.0.2.10 %s 40001 %d\r\n", ap.Addr(), ap.Port())
	greeting := func(from string) (string, error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		nc, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		nc.Write([]byte(header))
		return bufio.NewReader(nc).ReadString('\n')
	}
	if l, err := greeting("127.0.0.1"); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Errorf("balancer: %q %v, want the greeting", l, err)
	}
	if l, err := greeting("127.0.0.2"); err == nil || l != "" {
		t.Errorf("direct client with a header: %q %v, want the connection closed", l, err)
	}
}
