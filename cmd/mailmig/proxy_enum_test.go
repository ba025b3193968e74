package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestProxyNoEnumeration runs the real `mailmig proxy` in front of the real
// Dovecot and Cyrus, with the default auth_failure_delay, and checks on
// every login protocol that an unknown account, a wrong password for a
// real account (at Dovecot and at Cyrus, which pause differently before
// they refuse) and an account whose backend has no endpoint for the
// protocol get the same reply bytes, and replies that take about the same
// time (issue 10, finding 3). Timing compares medians of 8 tries per case
// with a generous margin, so a loaded machine does not flake it.
func TestProxyNoEnumeration(t *testing.T) {
	s := needPeers(t)
	dove := s.NewAccount(t) // on "dovecot": no HTTP endpoint
	cy := s.NewAccount(t)   // on "cyrus": no submission endpoint
	dav := s.NewAccount(t)  // on "davonly": HTTP only
	dir := t.TempDir()
	planFile := filepath.Join(dir, "migration.hcl")
	planText := fmt.Sprintf(`state {
  path = "state/"
}
backend "dovecot" {
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
}
backend "cyrus" {
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
  jmap {
    url = %q
  }
}
backend "davonly" {
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
    http        = "127.0.0.5:0"
  }
}
`, s.Dovecot.IMAP, s.Dovecot.POP3, s.Dovecot.ManageSieve, s.Dovecot.Submission,
		s.Cyrus.IMAP, s.Cyrus.POP3, s.Cyrus.ManageSieve, s.Cyrus.JMAPURL(), s.Radicale.URL)
	if err := os.WriteFile(planFile, []byte(planText), 0o600); err != nil {
		t.Fatal(err)
	}
	for acct, backend := range map[string]string{dove.Email: "dovecot", cy.Email: "cyrus", dav.Email: "davonly"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"-f", planFile, "routes", "set", acct, backend}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != exitOK {
			t.Fatalf("routes set: %d\n%s%s", code, out.String(), errb.String())
		}
	}
	px := startProxyProcess(t, dir, planFile, 5)
	unknown := "nobody-" + strings.ToLower(dove.Password[:8]) + "@example.test" // no route, no default backend

	type cred struct{ user, pass string }
	type protoCase struct {
		cases map[string]cred
		// try logs in once from local and returns the reply that
		// refused it.
		try func(t *testing.T, local net.Addr, c cred) string
	}
	plain := func(c cred) string {
		return base64.StdEncoding.EncodeToString([]byte("\x00" + c.user + "\x00" + c.pass))
	}
	line := func(t *testing.T, proto string, local net.Addr, greet func(*bufio.Reader) error, send []string) string {
		t.Helper()
		d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
		nc, err := d.Dial("tcp", px.addr[proto])
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(nc)
		if err := greet(br); err != nil {
			t.Fatalf("%s greeting: %v", proto, err)
		}
		var last string
		for _, cmd := range send {
			fmt.Fprintf(nc, "%s\r\n", cmd)
			for {
				last, err = br.ReadString('\n')
				if err != nil {
					t.Fatalf("%s %q: %v", proto, cmd, err)
				}
				// Skip untagged IMAP responses and SMTP continuation
				// lines: the final reply line is compared.
				if !strings.HasPrefix(last, "* ") && !(proto == "submission" && len(last) > 3 && last[3] == '-') {
					break
				}
			}
		}
		return last
	}
	upTo := func(prefix string) func(*bufio.Reader) error {
		return func(br *bufio.Reader) error {
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return err
				}
				if strings.HasPrefix(l, prefix) {
					return nil
				}
			}
		}
	}
	protos := map[string]protoCase{
		"imap": {
			cases: map[string]cred{"unknown": {unknown, "x"}, "wrong at dovecot": {dove.Email, "wrong"}, "wrong at cyrus": {cy.Email, "wrong"}, "no endpoint": {dav.Email, dav.Password}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				return line(t, "imap", local, upTo("* OK"), []string{fmt.Sprintf("a LOGIN %q %q", c.user, c.pass)})
			},
		},
		"pop3": {
			cases: map[string]cred{"unknown": {unknown, "x"}, "wrong at dovecot": {dove.Email, "wrong"}, "wrong at cyrus": {cy.Email, "wrong"}, "no endpoint": {dav.Email, dav.Password}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				return line(t, "pop3", local, upTo("+OK"), []string{"USER " + c.user, "PASS " + c.pass})
			},
		},
		"managesieve": {
			cases: map[string]cred{"unknown": {unknown, "x"}, "wrong at dovecot": {dove.Email, "wrong"}, "wrong at cyrus": {cy.Email, "wrong"}, "no endpoint": {dav.Email, dav.Password}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				return line(t, "managesieve", local, upTo("OK"), []string{`AUTHENTICATE "PLAIN" "` + plain(c) + `"`})
			},
		},
		"submission": {
			cases: map[string]cred{"unknown": {unknown, "x"}, "wrong at dovecot": {dove.Email, "wrong"}, "no endpoint": {cy.Email, cy.Password}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				return line(t, "submission", local, upTo("220 "), []string{"EHLO client.example", "AUTH PLAIN " + plain(c)})
			},
		},
		"http": {
			cases: map[string]cred{"unknown": {unknown, "x"}, "wrong at cyrus": {cy.Email, "wrong"}, "no endpoint": {dove.Email, dove.Password}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				return httpTry(t, local, px.addr["http"], func(r *http.Request) { r.SetBasicAuth(c.user, c.pass) })
			},
		},
		// A forged Stalwart-style bearer token ("sw1.", the account in
		// its last segment) routes without any check by the proxy.
		"http bearer": {
			cases: map[string]cred{"unknown": {user: unknown}, "forged at cyrus": {user: cy.Email}, "no endpoint": {user: dove.Email}},
			try: func(t *testing.T, local net.Addr, c cred) string {
				tok := "sw1.forged." + base64.RawURLEncoding.EncodeToString([]byte(c.user))
				return httpTry(t, local, px.addr["http"], func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
			},
		},
	}
	var lineMu sync.Mutex
	// The protocols run at once: the tries mostly wait for the failure
	// delay, and t.Parallel would be held to -parallel (GOMAXPROCS).
	// t.Run may be called from several goroutines.
	var wg sync.WaitGroup
	defer wg.Wait()
	for pi, name := range []string{"imap", "pop3", "managesieve", "submission", "http", "http bearer"} {
		pc := protos[name]
		wg.Add(1)
		go t.Run(name, func(t *testing.T) {
			defer wg.Done()
			names := make([]string, 0, len(pc.cases))
			for n := range pc.cases {
				names = append(names, n)
			}
			sort.Strings(names)
			replies := map[string]map[string]bool{}
			took := map[string][]time.Duration{}
			// Each case has its own client address, so no case reaches
			// the failed-login limit (20 a minute per address).
			const tries = 8
			for i := 0; i < tries; i++ {
				for ci, n := range names {
					local := &net.TCPAddr{IP: net.IPv4(127, 0, byte(pi+1), byte(ci+1))}
					start := time.Now()
					got := pc.try(t, local, pc.cases[n])
					took[n] = append(took[n], time.Since(start))
					if replies[n] == nil {
						replies[n] = map[string]bool{}
					}
					replies[n][got] = true
				}
			}
			// The same bytes for every case, every time.
			all := map[string]bool{}
			for _, n := range names {
				for r := range replies[n] {
					all[r] = true
				}
			}
			if len(all) != 1 {
				lineMu.Lock()
				defer lineMu.Unlock()
				for _, n := range names {
					for r := range replies[n] {
						t.Errorf("%s: %s: %q", name, n, r)
					}
				}
				t.Fatalf("%s: %d different failure replies, want 1", name, len(all))
			}
			// About the same time: no case's median is shorter than 60%
			// of another's (the failure delay pads everything to at least
			// 2 s, and to the slowest backend refusal, Cyrus's 3 s).
			med := map[string]time.Duration{}
			for _, n := range names {
				d := slices.Clone(took[n])
				slices.Sort(d)
				med[n] = (d[tries/2-1] + d[tries/2]) / 2
			}
			t.Logf("%s medians: %v", name, med)
			for _, a := range names {
				for _, b := range names {
					if float64(med[a]) < 0.6*float64(med[b]) {
						t.Errorf("%s: %s answered in %v, %s in %v: the time tells them apart", name, a, med[a], b, med[b])
					}
				}
			}
		})
	}
}

// httpTry sends GET /jmap/ with the credentials set by auth and returns
// the response's status, headers (without Date) and body.
func httpTry(t *testing.T, local net.Addr, addr string, auth func(*http.Request)) string {
	t.Helper()
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addr+"/jmap/", nil)
	auth(req)
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	resp.Header.Del("Date")
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	resp.Header.Write(&b)
	b.Write(body)
	return b.String()
}
