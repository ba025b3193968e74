package executor

import (
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
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
		{Name: "m365", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoExchange, URL: "https://graph.microsoft.com/v1.0"}},
			Exchange: &plan.Exchange{API: "graph", URL: "https://graph.microsoft.com/v1.0", Tenant: "contoso", ClientID: "app", ClientSecret: plan.NewSecret("appsecret")}},
		{Name: "ex2016", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoExchange, URL: "https://ex.example.test/EWS/Exchange.asmx"}},
			Exchange: &plan.Exchange{API: "ews", URL: "https://ex.example.test/EWS/Exchange.asmx"},
			Login:    plan.LoginMaster, Master: &plan.Master{User: "svc", Password: plan.NewSecret("svcpw")}},
		{Name: "davonly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoCalDAV, URL: "https://dav.example.test/"}}},
	}}
	x := New(m, "archives", nil)
	lim := engine.NewLimiter("master", 2, 10, 0)
	tests := map[string]struct {
		acct    *plan.Account
		kind    string
		check   func(*sources.Spec) bool
		wantErr string
	}{
		"master login": {
			acct: &plan.Account{Address: "Alice@example.test", From: "master", SourceLogin: "alice"},
			kind: "imap",
			check: func(c *sources.Spec) bool {
				return c.User == "alice" && c.MasterUser == "admin" && c.Password == "masterpw" && c.AllowCleartext && c.TLS == vandelay.TLSNone &&
					c.Connections == 1 && c.Throttle == lim.Throttle()
			},
		},
		"passthrough": {
			acct: &plan.Account{Address: "bob@example.test", From: "pass", Password: plan.NewSecret("bobpw")},
			kind: "imap",
			check: func(c *sources.Spec) bool {
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
			check: func(c *sources.Spec) bool { return c.Path == "/srv/mail/example.test/dave/Maildir" },
		},
		"exchange graph": {
			acct: &plan.Account{Address: "gina@example.test", From: "m365"},
			kind: "exchange-graph",
			check: func(c *sources.Spec) bool {
				return c.User == "gina@example.test" && c.URL == "https://graph.microsoft.com/v1.0" && c.OAuth.Tenant == "contoso" &&
					c.OAuth.ClientID == "app" && c.OAuth.ClientSecret == "appsecret" && !c.AllowCleartext
			},
		},
		"exchange ews impersonation": {
			acct: &plan.Account{Address: "hank@example.test", From: "ex2016"},
			kind: "exchange-ews",
			check: func(c *sources.Spec) bool {
				return c.User == "hank@example.test" && c.URL == "https://ex.example.test/EWS/Exchange.asmx" && c.MasterUser == "svc" && c.Password == "svcpw"
			},
		},
		"jmap source": {
			acct: &plan.Account{Address: "erin@example.test", From: "jmaponly", Password: plan.NewSecret("erinpw")},
			kind: "jmap",
			check: func(c *sources.Spec) bool {
				return c.URL == "https://x.example.test/" && c.User == "erin@example.test" && c.Password == "erinpw"
			},
		},
		"no mail source": {
			acct:    &plan.Account{Address: "erin@example.test", From: "davonly"},
			wantErr: "has no mail source endpoint",
		},
		"unknown backend": {
			acct:    &plan.Account{Address: "frank@example.test", From: "nope"},
			wantErr: `source backend "nope" is not in the plan`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kind, cfg, err := x.sourceSpec(tc.acct, lim, nil)
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
