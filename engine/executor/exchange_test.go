package executor

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
)

// TestExchangeSteps runs the executor's steps for an account whose plan
// backend is an exchange endpoint (api = "graph"), served from the
// recorded Graph exchanges, onto the real Cyrus: import of mail,
// contacts, calendars and inbox rules (as Sieve), the plan's probe (one delta request per folder,
// no item), export (JMAP, CardDAV, CalDAV, ManageSieve) and verify.
// The recorded 429s ask for waits of their Retry-After (2 s and 3 s),
// recorded through vandelay.WithWaits rather than spent.
func TestExchangeSteps(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The recorded Retry-After waits are recorded, not spent.
	var mu sync.Mutex
	var waits []time.Duration
	ctx = vandelay.WithWaits(ctx, func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return ctx.Err()
	})
	const dir = "../../vandelay/sources/exchange/graph/testdata/"
	// Import order: mail, Sieve (the inbox rules), contacts, calendars.
	srv := recorded.New(t, dir+"graph-run1.txtar", dir+"graph-rules.txtar", dir+"graph-dav-run1.txtar")
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "m365", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoExchange, URL: srv.URL + "/v1.0"}},
			Exchange: &plan.Exchange{API: "graph", URL: srv.URL + "/v1.0", Authority: srv.URL, Tenant: "tenant-1", ClientID: "app-1",
				ClientSecret: plan.NewSecret("fixture-secret")}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()},
			{Protocol: plan.ProtoCardDAV, URL: "http://" + s.Cyrus.HTTP + "/"},
			{Protocol: plan.ProtoCalDAV, URL: "http://" + s.Cyrus.HTTP + "/"},
			{Protocol: plan.ProtoManageSieve, Address: s.Cyrus.ManageSieve, TLS: plan.TLSNone}}},
	}}
	// The fixtures' mailbox is alice@contoso.example; the target login is
	// the test account.
	pa := &plan.Account{Address: "alice@contoso.example", From: "m365", To: "cyrus", TargetLogin: acct.Email,
		Password: plan.NewSecret(acct.Password), Data: []plan.DataKind{plan.DataMail, plan.DataSieve, plan.DataContacts, plan.DataCalendars}}
	x := New(m, t.TempDir(), nil)
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("m365", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0)}
	c, err := x.Import(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	// Objects: 6 contacts and events, 1 script added + its activation.
	if c.Messages != 6 || c.Objects != 6+2 {
		t.Errorf("import: %d messages and %d objects, want 6 and 8", c.Messages, c.Objects)
	}
	mu.Lock()
	if want := []time.Duration{2 * time.Second, 3 * time.Second}; !slices.Equal(slices.Sorted(slices.Values(waits)), want) {
		t.Errorf("waits %v, want the recorded Retry-After values %v", waits, want)
	}
	mu.Unlock()
	if !MovesDAV(m, pa, plan.DataContacts) || !MovesDAV(m, pa, plan.DataCalendars) || !MovesSieve(m, pa) {
		t.Error("contacts, calendars or rules from an exchange backend are not moved")
	}
	srv.Load(dir + "graph-after-run1.txtar")
	d, err := x.Detect(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	if d.NotImported || d.New != 0 || d.Deleted != 0 || d.Mailboxes != 0 {
		t.Errorf("probe after the import: %+v, want no change", d)
	}
	if c, err := x.Export(ctx, job); err != nil || c.Objects != 6+3+2 {
		t.Fatalf("export: %+v, %v; want 6 items, 3 collections, 1 script put and activated", c, err)
	}
	c, err = x.Verify(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mismatches != 0 || c.Messages != 6 {
		t.Errorf("verify: %d messages, %d mismatches; want 6 and none", c.Messages, c.Mismatches)
	}
}
