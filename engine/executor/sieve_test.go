package executor

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/sources"
)

func TestMain(m *testing.M) { os.Exit(peers.Wrap(m.Run)) }

func TestMovesSieve(t *testing.T) {
	ms := &plan.Endpoint{Protocol: plan.ProtoManageSieve, Address: "127.0.0.1:4190"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "a", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, ms}},
		{Name: "b", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}, ms}},
		{Name: "jmaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
		{Name: "imapjmap", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, {Protocol: plan.ProtoJMAP}}},
	}}
	for name, tc := range map[string]struct {
		acct *plan.Account
		want bool
	}{
		"both managesieve": {&plan.Account{From: "a", To: "b", Data: []plan.DataKind{plan.DataMail, plan.DataSieve}}, true},
		"sieve not asked":  {&plan.Account{From: "a", To: "b", Data: []plan.DataKind{plan.DataMail}}, false},
		// Over RFC 9661 when the target's session offers it (at the step).
		"target jmap only": {&plan.Account{From: "a", To: "jmaponly", Data: []plan.DataKind{plan.DataSieve}}, true},
		// A JMAP mail source gives its scripts over its session.
		"jmap source": {&plan.Account{From: "jmaponly", To: "b", Data: []plan.DataKind{plan.DataSieve}}, true},
		// Mail over IMAP: the source's jmap endpoint is not asked.
		"imap source with jmap": {&plan.Account{From: "imapjmap", To: "b", Data: []plan.DataKind{plan.DataSieve}}, false},
		"unknown backend":       {&plan.Account{From: "a", To: "nope", Data: []plan.DataKind{plan.DataSieve}}, false},
	} {
		if got := MovesSieve(m, tc.acct); got != tc.want {
			t.Errorf("%s: MovesSieve = %v, want %v", name, got, tc.want)
		}
	}
}

// TestSieveSteps runs the executor's import, export and verify for an
// account whose data includes sieve, Dovecot → Cyrus over ManageSieve:
// the scripts arrive, are counted as objects, a re-run counts none, and
// verify finds no mismatch.
func TestSieveSteps(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src, err := sources.SieveTargets["managesieve"](ctx, &sources.Spec{
		Server: vandelay.Server{Address: s.Dovecot.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := src.Put(ctx, n, []byte("# "+n+"\r\nkeep;\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.SetActive(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// "mine" is also at the target with the user's own bytes: a conflict
	// the export keeps, verify lists (not a mismatch) and both count.
	if err := src.Put(ctx, "mine", []byte("discard;\r\n")); err != nil {
		t.Fatal(err)
	}
	src.Close()
	tgt, err := sources.SieveTargets["managesieve"](ctx, &sources.Spec{
		Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tgt.Put(ctx, "mine", []byte("keep;\r\n")); err != nil {
		t.Fatal(err)
	}
	tgt.Close()

	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoManageSieve, Address: s.Dovecot.ManageSieve, TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoManageSieve, Address: s.Cyrus.ManageSieve, TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: acct.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(acct.Password),
		Data: []plan.DataKind{plan.DataMail, plan.DataSieve}}
	x := New(m, t.TempDir(), nil)
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0)}
	// Import: 3 added + the active one; export: 2 put (not the
	// conflict) + the activation; then nothing. The conflict is found
	// again by every export while it lasts.
	for i, want := range [][2]int64{{3 + 1, 2 + 1}, {0, 0}} {
		c, err := x.Import(ctx, job)
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
		if c.Objects != want[0] {
			t.Errorf("import %d: %d objects, want %d", i, c.Objects, want[0])
		}
		c, err = x.Export(ctx, job)
		if err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		if c.Objects != want[1] || c.Conflicts != 1 {
			t.Errorf("export %d: %d objects, %d conflicts, want %d and 1", i, c.Objects, c.Conflicts, want[1])
		}
	}
	c, err := x.Verify(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mismatches != 0 || c.Conflicts != 1 {
		t.Errorf("verify: %d mismatches, %d conflicts, want 0 and 1", c.Mismatches, c.Conflicts)
	}
}
