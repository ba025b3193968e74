package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// TestProxyCommand runs the proxy the way `mailmig proxy` does (plan →
// listeners), logs in through it, flips the account with
// `mailmig routes set` and checks that the session ends and the next login
// lands on the other Dovecot. It needs a running peer set
// (MAILMIG_PEERS_ROOT, as `just test` exports): this package's TestMain
// belongs to testscript, so it cannot start one itself.
func TestProxyCommand(t *testing.T) {
	s := needPeers(t)
	a := s.NewAccount(t)
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
  pop3 {
    address = %q
    tls     = "none"
  }
  managesieve {
    address = %q
    tls     = "none"
  }
}
backend "legacy2" {
  imap {
    address = %q
    tls     = "none"
  }
}
proxy {
  listen {
    imap        = "127.0.0.1:0"
    pop3        = "127.0.0.2:0"
    managesieve = "127.0.0.3:0"
  }
  hold_logins = "1s"
}
`, s.Dovecot.IMAP, s.Dovecot.POP3, s.Dovecot.ManageSieve, s.Dovecot2.IMAP)
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"-f", planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != exitOK {
			t.Fatalf("mailmig %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	cli("routes", "default", "legacy")

	m, diags := loadMigration(&globals{PlanPath: planFile}, "", nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	p, err := startProxy(ctx, m, &proxyRun{Admin: "127.0.0.1:0", PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(c)
	})
	addr := map[string]string{}
	for _, a := range p.Addrs {
		proto, ad, _ := strings.Cut(a, " ")
		addr[proto] = ad
	}
	if len(addr) != 4 {
		t.Fatalf("listeners: %v", p.Addrs)
	}

	// A marker message only on the second Dovecot.
	d2, err := imapclient.DialInsecure(s.Dovecot2.IMAP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	msg := "Subject: marker\r\n\r\nx\r\n"
	ac := d2.Append("INBOX", int64(len(msg)), nil)
	ac.Write([]byte(msg))
	ac.Close()
	if _, err := ac.Wait(); err != nil {
		t.Fatal(err)
	}

	c, err := imapclient.DialInsecure(addr["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 0 {
		t.Fatalf("before the flip: %+v %v", sel, err)
	}
	out := cli("routes", "set", a.Email, "legacy2")
	if !strings.Contains(out, "→ legacy2") {
		t.Errorf("routes set printed %q", out)
	}
	select {
	case <-c.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("session not ended within 5s of `routes set`")
	}
	c2, err := imapclient.DialInsecure(addr["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	if sel, err := c2.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 1 {
		t.Fatalf("after the flip: %+v %v (want the marker on legacy2)", sel, err)
	}

	resp, err := http.Get("http://" + addr["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `mailmig_proxy_sessions_total{proto="imap",backend="legacy2"} 1`) {
		t.Errorf("metrics:\n%s", body)
	}
}
