package executor

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
)

func TestMovesDAV(t *testing.T) {
	cd := &plan.Endpoint{Protocol: plan.ProtoCardDAV, URL: "http://127.0.0.1:1/"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "a", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, cd}},
		{Name: "b", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}, cd}},
		{Name: "jmaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
		{Name: "imaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}}},
	}}
	pw := plan.NewSecret("pw")
	for name, tc := range map[string]struct {
		acct *plan.Account
		k    plan.DataKind
		want bool
	}{
		"both carddav":       {&plan.Account{From: "a", To: "b", Password: pw, Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, true},
		"no caldav":          {&plan.Account{From: "a", To: "b", Password: pw, Data: []plan.DataKind{plan.DataCalendars}}, plan.DataCalendars, false},
		"contacts not asked": {&plan.Account{From: "a", To: "b", Password: pw, Data: []plan.DataKind{plan.DataMail}}, plan.DataContacts, false},
		"no password":        {&plan.Account{From: "a", To: "b", Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, false},
		// Over the target's session when it offers RFC 9610 (decided at
		// the step), and without the password the DAV paths need.
		"target jmap only":               {&plan.Account{From: "a", To: "jmaponly", Password: pw, Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, true},
		"jmap to jmap":                   {&plan.Account{From: "jmaponly", To: "jmaponly", Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, true},
		"source without dav":             {&plan.Account{From: "imaponly", To: "b", Password: pw, Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, false},
		"dav source no password to jmap": {&plan.Account{From: "a", To: "jmaponly", Data: []plan.DataKind{plan.DataContacts}}, plan.DataContacts, false},
	} {
		if got := MovesDAV(m, tc.acct, tc.k); got != tc.want {
			t.Errorf("%s: MovesDAV = %v, want %v", name, got, tc.want)
		}
	}
}

// TestDAVSteps runs the executor's import, export and verify for an
// account whose data includes contacts and calendars, Radicale → Cyrus:
// the items arrive and are counted as objects, a re-run counts none, and
// verify finds no mismatch.
func TestDAVSteps(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for name, body := range map[string]string{
		"contacts/a.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a-1\r\nFN:Ärger\r\nN:Ärger;;;;\r\nEND:VCARD\r\n",
		"contacts/b.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b-1\r\nFN:B\r\nN:B;;;;\r\nEND:VCARD\r\n",
		"calendar/e.ics": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:e-1@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261210T100000Z\r\nDURATION:PT1H\r\nSUMMARY:Termin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
	} {
		req, _ := http.NewRequestWithContext(ctx, "PUT", s.Radicale.HomeURL(acct.Email)+name, strings.NewReader(body))
		req.SetBasicAuth(acct.Email, acct.Password)
		req.Header.Set("Content-Type", map[bool]string{true: "text/calendar", false: "text/vcard"}[strings.HasSuffix(name, ".ics")])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT %s at radicale: %s %s", name, resp.Status, b)
		}
	}
	cyrusDAV := "http://" + s.Cyrus.HTTP + "/"
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: s.Radicale.URL, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: s.Radicale.URL, TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: acct.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(acct.Password),
		Data: []plan.DataKind{plan.DataMail, plan.DataContacts, plan.DataCalendars}}
	x := New(m, t.TempDir(), nil)
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0)}
	// 3 items; the export also creates the two collections.
	for i, want := range [][2]int64{{3, 3 + 2}, {0, 0}} {
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
		if c.Objects != want[1] {
			t.Errorf("export %d: %d objects, want %d", i, c.Objects, want[1])
		}
	}
	c, err := x.Verify(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mismatches != 0 {
		t.Errorf("verify: %d mismatches", c.Mismatches)
	}
}
