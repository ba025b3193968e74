package executor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestDetectSourceSize: the refresh of an account never imported counts
// its messages and bytes at the Dovecot source (what plan shows on the
// import); after the import the refresh is a delta again, without size.
func TestDetectSourceSize(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, acct.Email, acct.Password)
	var size int64
	for i := range 4 {
		msg := fmt.Sprintf("Subject: size %d\r\nMessage-ID: <size-%d@example.test>\r\n\r\n%0*d\r\n", i, i, 100*(i+1), i)
		size += int64(len(msg))
		vandelaytest.AppendIMAP(t, cl, "INBOX", []byte(msg), time.Now())
	}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: acct.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(acct.Password)}
	x := New(m, t.TempDir(), nil)
	d, err := x.Detect(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.SourceSize{Messages: 4, Bytes: size, BytesFrom: "status-size", Approx: true}
	if !d.NotImported || d.Source == nil || *d.Source != want {
		t.Errorf("detect before the import: %+v (source %+v), want not imported with %+v", d, d.Source, want)
	}
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0)}
	c, err := x.Import(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Messages != 4 || c.Bytes != size {
		t.Errorf("import copied %d messages, %d bytes; the refresh counted 4, %d", c.Messages, c.Bytes, size)
	}
	if d, err := x.Detect(ctx, pa); err != nil || d.NotImported || d.Source != nil {
		t.Errorf("detect after the import: %+v %v, want a delta without size", d, err)
	}
}
