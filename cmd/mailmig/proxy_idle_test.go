package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxySMTPIdleTimeout: the plan's idle_timeout reaches the SMTP,
// submission and LMTP listeners that startProxy builds (go-smtp's own
// 5-minute default applied before): a client that sends nothing after the
// greeting gets 421 and is disconnected once the timeout passed.
func TestProxySMTPIdleTimeout(t *testing.T) {
	s := needPeers(t)
	dir := t.TempDir()
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "legacy" {
  submission {
    address = %q
    tls     = "none"
  }
  lmtp {
    address = %q
  }
}
proxy {
  listen {
    smtp       = "127.0.0.1:0"
    submission = "127.0.0.2:0"
    lmtp       = "127.0.0.3:0"
  }
  idle_timeout = "1s"
}
`, s.Dovecot.Submission, s.Dovecot.LMTP)
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
	for _, a := range p.Addrs {
		proto, addr, _ := strings.Cut(a, " ")
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			// Far below the 5-minute default: only the plan's 1s can
			// end the session in time.
			nc.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(nc)
			if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "220 ") {
				t.Fatalf("greeting: %q %v", l, err)
			}
			start := time.Now()
			l, err := br.ReadString('\n')
			if err != nil || !strings.HasPrefix(l, "421 4.4.2 ") {
				t.Fatalf("idle client got %q %v, want 421 4.4.2", l, err)
			}
			if d := time.Since(start); d < 900*time.Millisecond {
				t.Errorf("421 after %v, before the 1s idle timeout", d)
			}
			if l, err := br.ReadString('\n'); err == nil {
				t.Errorf("connection still open after 421: %q", l)
			}
		})
	}
}
