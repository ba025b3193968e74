package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// TestSourceConfig checks how the plan's backends and accounts become
// vandelay source configurations (no servers involved).
func TestSourceConfig(t *testing.T) {
	imapEP := &plan.Endpoint{Protocol: plan.ProtoIMAP, Address: "127.0.0.1:143", TLS: plan.TLSNone}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "master", Endpoints: []*plan.Endpoint{imapEP}, Login: plan.LoginMaster, Master: &plan.Master{User: "admin", Password: plan.NewSecret("masterpw")}},
		{Name: "pass", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP, Address: "mail.example.test:993", TLS: plan.TLSImplicit, ServerName: "imap.example.test"}}, Login: plan.LoginPassthrough},
		{Name: "files", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoMaildir}}, Maildir: &plan.Maildir{Path: "/srv/mail/%d/%n/Maildir"}},
		{Name: "jmaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP, URL: "https://x.example.test/"}}},
	}}
	x := newExecutor(m, nil).(*vandelayExec)
	lim := engine.NewLimiter("master", 2, 10, 0)
	tests := map[string]struct {
		acct    *plan.Account
		kind    string
		check   func(*vandelay.Config) bool
		wantErr string
	}{
		"master login": {
			acct: &plan.Account{Address: "Alice@example.test", From: "master", SourceLogin: "alice"},
			kind: "imap",
			check: func(c *vandelay.Config) bool {
				return c.User == "alice" && c.MasterUser == "admin" && c.Password == "masterpw" && c.AllowCleartext && c.TLS == vandelay.TLSNone &&
					c.Connections == 1 && c.Throttle == lim.Throttle()
			},
		},
		"passthrough": {
			acct: &plan.Account{Address: "bob@example.test", From: "pass", Password: plan.NewSecret("bobpw")},
			kind: "imap",
			check: func(c *vandelay.Config) bool {
				return c.User == "bob@example.test" && c.MasterUser == "" && c.Password == "bobpw" && !c.AllowCleartext &&
					c.TLS == vandelay.TLSImplicit && c.ServerName == "imap.example.test"
			},
		},
		"passthrough without password": {
			acct:    &plan.Account{Address: "carol@example.test", From: "pass"},
			wantErr: "no password for carol@example.test",
		},
		"maildir path": {
			acct:  &plan.Account{Address: "dave@example.test", From: "files"},
			kind:  "maildir",
			check: func(c *vandelay.Config) bool { return c.Path == "/srv/mail/example.test/dave/Maildir" },
		},
		"no mail source": {
			acct:    &plan.Account{Address: "erin@example.test", From: "jmaponly"},
			wantErr: "has no mail source endpoint",
		},
		"unknown backend": {
			acct:    &plan.Account{Address: "frank@example.test", From: "nope"},
			wantErr: `source backend "nope" is not in the plan`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kind, cfg, err := x.sourceConfig(tc.acct, lim, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.kind || !tc.check(cfg) {
				t.Fatalf("kind %s, config %+v", kind, cfg)
			}
		})
	}
	if got := x.archivePath(&plan.Account{Address: "../Evil@Example.test"}); strings.Contains(got, "..") || !strings.HasSuffix(got, "_evil@example.test.db") {
		t.Fatalf("archive path %s", got)
	}
}

func TestRedactor(t *testing.T) {
	m := &plan.Migration{
		Backends: []*plan.Backend{{Name: "b", Master: &plan.Master{User: "admin", Password: plan.NewSecret("s3cret-master")}}},
		Accounts: []*plan.Account{{Address: "a@example.test", Password: plan.NewSecret("hunter2")}},
	}
	r := redactor(m)
	if got := r("login admin/s3cret-master then a with hunter2"); got != "login admin/(sensitive) then a with (sensitive)" {
		t.Fatalf("got %q", got)
	}
	if redactor(&plan.Migration{}) != nil {
		t.Fatal("redactor without secrets")
	}
}

// TestThrottledTransport checks that requests to a target wait on the
// backend's shared buckets: 4 uploads at 2 messages/s (burst 1) take
// about 1.5 s; JSON API calls do not count as messages.
func TestThrottledTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	defer srv.Close()
	post := func(c *http.Client, ct string) {
		resp, err := c.Post(srv.URL, ct, strings.NewReader("data"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// At 0.2 messages/s, three throttled calls would take 10 s.
	slow := targetHTTPClient(engine.NewLimiter("target", 4, 0.2, 0))
	start := time.Now()
	for i := 0; i < 3; i++ {
		post(slow, "application/json")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("JSON calls were throttled as messages: %v", d)
	}
	c := targetHTTPClient(engine.NewLimiter("target", 4, 2, 0))
	start = time.Now()
	for i := 0; i < 4; i++ {
		post(c, "message/rfc822")
	}
	if d := time.Since(start); d < 1200*time.Millisecond {
		t.Fatalf("4 uploads at 2/s took only %v", d)
	}
}
