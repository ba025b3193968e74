package executor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/plan"
)

// TestExchangePreflight runs the pre-flight (mailmig plan -check) for an
// account on a Graph backend against recorded answers, onto the real
// Cyrus: with the rights, the source is logged in and the missing
// Calendars.Read is listed; with an app lacking Mail.Read (403), the
// finding is a refused login naming the app and the plan's reference to
// its secret, never the secret.
func TestExchangePreflight(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const dir = "../../vandelay/sources/exchange/graph/testdata/"
	srv := recorded.New(t, dir+"graph-check.txtar")
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "m365", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoExchange, URL: srv.URL + "/v1.0"}},
			Exchange: &plan.Exchange{API: "graph", URL: srv.URL + "/v1.0", Authority: srv.URL, Tenant: "tenant-1", ClientID: "app-1",
				ClientSecret: plan.NewSecret("fixture-secret")}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: "alice@contoso.example", From: "m365", To: "cyrus", TargetLogin: acct.Email,
		Password: plan.NewSecret(acct.Password), Data: []plan.DataKind{plan.DataMail}}
	m.Accounts = []*plan.Account{pa}
	x := New(m, t.TempDir(), nil)

	r := engine.Preflight(ctx, m, x, nil)
	ac := r.Accounts[0]
	if ac.Failed() || !ac.Source.LoggedIn || !strings.Contains(strings.Join(ac.Source.Unknown, "; "), "Calendars.Read") {
		t.Errorf("with the rights: %+v", ac)
	}

	srv.Load(dir + "graph-check-denied.txtar")
	r = engine.Preflight(ctx, m, x, nil)
	ac = r.Accounts[0]
	if len(ac.Findings) != 1 {
		t.Fatalf("without Mail.Read: findings %+v", ac.Findings)
	}
	f := ac.Findings[0]
	if f.Problem != engine.CheckLoginRefused || f.Side != engine.SideSource || f.Login != "tenant-1/app-1" ||
		f.SecretRef != "backend.m365.exchange.client_secret" || !strings.Contains(f.Error, "Mail.Read") {
		t.Errorf("without Mail.Read: %+v", f)
	}
	b, _ := json.Marshal(r)
	if strings.Contains(string(b), "fixture-secret") {
		t.Error("the report shows the app's secret")
	}
}
