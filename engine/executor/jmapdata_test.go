package executor

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// TestExportJMAPData runs the executor's JMAP table against the recorded
// RFC 9661 exchanges of vandelay/targets/jmapdata (every request
// checked): a target whose session offers urn:ietf:params:jmap:sieve gets
// the account's scripts over JMAP (the ManageSieve path is marked
// skipped), identities and the vacation response send nothing when the
// archive has none (and the vacation read from a Sieve script is not sent:
// the script carries it), files are not asked for; a re-run changes
// nothing; a vacation response read from a JMAP source is set.
func TestExportJMAPData(t *testing.T) {
	ctx := context.Background()
	dir := "../../vandelay/targets/jmapdata/testdata/"
	srv := recorded.New(t, dir+"session.txtar")
	c, err := jmap.Discover(ctx, srv.URL+"/jmap/session", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	main := "require [\"fileinto\", \"vacation\"];\nif header :contains \"subject\" \"Rechnung\" {\n  fileinto \"Rechnungen\";\n}\nvacation :days 7 :subject \"Out of office\" \"I am away until Monday.\";\n"
	spam := "require \"fileinto\";\nif header :is \"X-Spam-Flag\" \"YES\" { fileinto \"Junk\"; }\n"
	if _, err := vandelay.ImportSieve(ctx, staticSieve{{Name: "main", Body: []byte(main), Active: true}, {Name: "spam", Body: []byte(spam)}}, a, nil); err != nil {
		t.Fatal(err)
	}
	ms := &plan.Endpoint{Protocol: plan.ProtoManageSieve, Address: "127.0.0.1:1"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "old", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, ms}},
		{Name: "new", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
	}}
	acct := &plan.Account{Address: "ken@example.com", From: "old", To: "new", Data: []plan.DataKind{plan.DataMail, plan.DataSieve}}
	x := &Executor{m: m}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	target := &vandelay.Target{Client: c, AccountID: "u1"}

	// The vacation read from the script travels in it: no
	// VacationResponse/set (the recording has none).
	if v, _ := a.Vacation(ctx); v == nil || v.SourceRef != "sieve:main" {
		t.Fatalf("vacation from the script: %+v", v)
	}
	srv.Load(dir + "sieve-first.txtar")
	var cnt state.Counts
	via := map[plan.DataKind]bool{}
	n, err := x.exportJMAPData(ctx, acct, a, target, log, &cnt, via)
	if err != nil || n != 3 || !via[plan.DataSieve] || via[plan.DataFiles] {
		t.Fatalf("first export: %d changes, via %v, %v", n, via, err)
	}
	srv.Load(dir + "sieve-rerun.txtar")
	if n, err = x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 0 {
		t.Fatalf("re-run: %d changes, %v", n, err)
	}

	// A vacation response read from a JMAP source is set with
	// VacationResponse/set (apply wires ExportVacationJMAP in).
	if _, err := a.SetVacation(ctx, &archive.Vacation{Enabled: true, From: time.Date(2014, 10, 30, 6, 12, 0, 0, time.UTC),
		To: time.Date(2014, 11, 3, 0, 0, 0, 0, time.UTC), Subject: "I am in Tahiti", TextBody: "I'm on holiday until November 3rd.",
		SourceRef: "jmap:VacationResponse"}, false); err != nil {
		t.Fatal(err)
	}
	srv.Load(dir+"sieve-rerun.txtar", "testdata/vacation-jmap.txtar")
	if n, err = x.exportJMAPData(ctx, acct, a, target, log, &cnt, via); err != nil || n != 1 {
		t.Fatalf("vacation: %d changes, %v", n, err)
	}
}

type staticSieve []archive.NewSieveScript

func (s staticSieve) Describe() archive.Source {
	return archive.Source{Kind: "managesieve", Endpoint: "127.0.0.1:1", Account: "ken@example.com", Login: "ken@example.com"}
}
func (s staticSieve) Scripts(context.Context) ([]archive.NewSieveScript, error) { return s, nil }
func (s staticSieve) Close() error                                              { return nil }
