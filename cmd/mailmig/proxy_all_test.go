package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// TestProxyAllProtocols runs the real `mailmig proxy` process (main with
// its signal handling) from a plan that serves all seven protocols, all
// through the proxy.Server framework, against the real Dovecot and
// Radicale: a login or delivery on each, per-protocol counters on
// /metrics, then SIGTERM drains (the IDLE client gets its BYE, the process
// exits 0).
func TestProxyAllProtocols(t *testing.T) {
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
  submission {
    address = %q
    tls     = "none"
  }
  lmtp {
    address = %q
  }
  caldav {
    url = %q
  }
}
proxy {
  listen {
    imap        = "127.0.0.1:0"
    pop3        = "127.0.0.2:0"
    managesieve = "127.0.0.3:0"
    submission  = "127.0.0.4:0"
    smtp        = "127.0.0.5:0"
    lmtp        = "127.0.0.6:0"
    http        = "127.0.0.7:0"
  }
}
`, s.Dovecot.IMAP, s.Dovecot.POP3, s.Dovecot.ManageSieve, s.Dovecot.Submission, s.Dovecot.LMTP, s.Radicale.URL)
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-f", planFile, "routes", "set", a.Email, "legacy"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != exitOK {
		t.Fatalf("routes set: %d\n%s%s", code, out.String(), errb.String())
	}

	px := startProxyProcess(t, dir, planFile, 8, "-admin", "127.0.0.1:0", "-drain", "10s")
	addr := px.addr
	if len(addr) != 8 {
		t.Fatalf("listeners: %v", addr)
	}

	// IMAP: a login; the session stays in IDLE for the drain below.
	ic, err := imapclient.DialInsecure(addr["imap"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(a.Email, a.Password).Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := ic.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	// POP3 and ManageSieve: the dialogue up to a login.
	raw := func(proto string, send []string, want ...string) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr[proto], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		for i, w := range want {
			if i > 0 {
				fmt.Fprintf(nc, "%s\r\n", send[i-1])
			}
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("%s: %v (want %q)", proto, err, w)
				}
				if strings.HasPrefix(l, w) {
					break
				}
				if proto == "pop3" || !strings.HasPrefix(l, `"`) {
					t.Fatalf("%s: got %q, want %q", proto, l, w)
				}
			}
		}
	}
	raw("pop3", []string{"USER " + a.Email, "PASS " + a.Password, "QUIT"}, "+OK", "+OK", "+OK", "+OK")
	raw("managesieve", []string{"LOGOUT"}, "OK", "OK")

	// Submission: a wrong password (counted per client IP), then a relay
	// through Dovecot's submission service.
	sub, err := gosmtp.Dial(addr["submission"])
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Auth(sasl.NewPlainClient("", a.Email, "wrong")); err == nil {
		t.Error("submission AUTH with a wrong password accepted")
	}
	if err := sub.Auth(sasl.NewPlainClient("", a.Email, a.Password)); err != nil {
		t.Fatalf("submission AUTH: %v", err)
	}
	if err := sub.SendMail(a.Email, []string{"friend@remote.example"}, strings.NewReader("Subject: submitted\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("submission: %v", err)
	}
	sub.Quit()

	// Port 25 and LMTP: deliveries to the account's Dovecot.
	mx, err := gosmtp.Dial(addr["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if err := mx.SendMail("s@remote.example", []string{a.Email}, strings.NewReader("Subject: via port 25\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("SMTP delivery: %v", err)
	}
	mx.Quit()
	lc, err := net.Dial("tcp", addr["lmtp"])
	if err != nil {
		t.Fatal(err)
	}
	lm := gosmtp.NewClientLMTP(lc)
	if err := lm.SendMail("s@remote.example", []string{a.Email}, strings.NewReader("Subject: via lmtp\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("LMTP delivery: %v", err)
	}
	lm.Quit()

	// HTTP: a CalDAV PROPFIND to Radicale.
	req, _ := http.NewRequest("PROPFIND", "http://"+addr["http"]+"/"+a.Email+"/", strings.NewReader(`<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>`))
	req.SetBasicAuth(a.Email, a.Password)
	req.Header.Set("Depth", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMultiStatus {
		t.Errorf("PROPFIND through the proxy: %s", resp.Status)
	}

	resp, err = http.Get("http://" + addr["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := []string{`mailmig_proxy_auth_failures_total{proto="submission"} 1`, `mailmig_proxy_sessions_total{proto="http",backend="legacy"} 1`}
	for _, p := range []string{"imap", "pop3", "managesieve", "submission", "smtp", "lmtp", "http"} {
		want = append(want, `mailmig_proxy_connections_total{proto="`+p+`"}`)
	}
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %s:\n%s", w, body)
		}
	}

	// SIGTERM: the IDLE session is told to end and the process exits 0.
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ic.Closed():
	case <-time.After(5 * time.Second):
		t.Fatal("IMAP session not ended within 5s of SIGTERM")
	}
	if err, ok := px.wait(10 * time.Second); !ok {
		t.Fatal("mailmig proxy still running 10s after SIGTERM")
	} else if err != nil {
		t.Fatalf("mailmig proxy after SIGTERM: %v\n%s", err, px.stderr)
	}
	var rest []string
	for l := range px.lines {
		rest = append(rest, l)
	}
	if !strings.Contains(strings.Join(rest, "\n"), "draining") {
		t.Errorf("no drain message after SIGTERM: %q", rest)
	}
}
