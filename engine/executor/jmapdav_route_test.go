package executor

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
)

// TestDAVRoute: which path contacts and calendars take at the export
// and verify, from the target's session (recorded: one offering only
// urn:ietf:params:jmap:contacts, one only urn:ietf:params:jmap:calendars,
// one neither), the target's endpoints and the account's password: over
// JMAP when the session offers the kind (via set), else over the
// target's CardDAV/CalDAV endpoint, else the kind stays at the source
// with a warning in the export's log. Transports (plan output) names
// both possible paths.
func TestDAVRoute(t *testing.T) {
	ctx := context.Background()
	sessions := map[string]*jmap.Client{
		"contacts":  discover(t, recorded.New(t, contactsRec+"session.txtar").URL+"/jmap/session"),
		"calendars": discover(t, recorded.New(t, calRec+"session.txtar").URL+"/.well-known/jmap"),
		"neither":   discover(t, recorded.New(t, contactsRec+"session-nocap.txtar").URL+"/jmap/session"),
	}
	cd := &plan.Endpoint{Protocol: plan.ProtoCardDAV, URL: "http://127.0.0.1:1/"}
	cl := &plan.Endpoint{Protocol: plan.ProtoCalDAV, URL: "http://127.0.0.1:1/"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "dav", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, cd, cl}},
		{Name: "jmapsrc", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
		{Name: "jmapdav", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}, cd, cl}},
		{Name: "jmaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
	}}
	pw := plan.NewSecret("pw")
	const (
		viaCard  = "jmap (urn:ietf:params:jmap:contacts) or carddav"
		viaCal   = "jmap (urn:ietf:params:jmap:calendars) or caldav"
		jmapCard = "jmap (urn:ietf:params:jmap:contacts)"
		jmapCal  = "jmap (urn:ietf:params:jmap:calendars)"
	)
	for _, tc := range []struct {
		name, session, from, to string
		password                bool
		// route of contacts and calendars; "" stays.
		contacts, calendars plan.Protocol
		// Transports' Via of each ("" stays, with a note).
		planContacts, planCalendars string
		warn                        []string
	}{
		{"contacts over jmap beside dav", "contacts", "dav", "jmapdav", true, plan.ProtoJMAP, plan.ProtoCalDAV, viaCard, viaCal, nil},
		{"calendars over jmap beside dav", "calendars", "dav", "jmapdav", true, plan.ProtoCardDAV, plan.ProtoJMAP, viaCard, viaCal, nil},
		{"session offers neither: dav", "neither", "dav", "jmapdav", true, plan.ProtoCardDAV, plan.ProtoCalDAV, viaCard, viaCal, nil},
		{"session offers neither, no dav: both stay", "neither", "dav", "jmaponly", true, "", "", jmapCard, jmapCal, []string{"contacts", "calendars"}},
		{"contacts over jmap, no caldav: calendars stay", "contacts", "dav", "jmaponly", true, plan.ProtoJMAP, "", jmapCard, jmapCal, []string{"calendars"}},
		{"jmap source, target without the password for dav", "neither", "jmapsrc", "jmapdav", false, "", "", jmapCard, jmapCal, []string{"contacts", "calendars"}},
		{"jmap source, jmap target offering calendars", "calendars", "jmapsrc", "jmaponly", false, "", plan.ProtoJMAP, jmapCard, jmapCal, []string{"contacts"}},
		// A DAV source without the password moves neither, so neither
		// path is taken and nothing is warned at the step (plan output
		// says what is missing).
		{"dav source without password", "contacts", "dav", "jmapdav", false, "", "", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acct := &plan.Account{Address: "john@example.com", From: tc.from, To: tc.to,
				Data: []plan.DataKind{plan.DataMail, plan.DataContacts, plan.DataCalendars}}
			if tc.password {
				acct.Password = pw
			}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			x := &Executor{m: m}
			e := &jmapEnv{c: sessions[tc.session], accountID: "A13824", acct: acct, m: m}
			via := map[plan.DataKind]bool{}
			for _, k := range jmapKindsFor(ctx, e, log) {
				if k.data != "" {
					via[k.data] = true
				}
			}
			if got := davRoute(m, acct, plan.DataContacts, via); got != tc.contacts {
				t.Errorf("contacts route %q, want %q", got, tc.contacts)
			}
			if got := davRoute(m, acct, plan.DataCalendars, via); got != tc.calendars {
				t.Errorf("calendars route %q, want %q", got, tc.calendars)
			}
			for _, tr := range Transports(m, acct) {
				want := map[plan.DataKind]string{plan.DataContacts: tc.planContacts, plan.DataCalendars: tc.planCalendars, plan.DataMail: "jmap"}[tr.Kind]
				if tr.Via != want || (tr.Via == "") != (tr.Note != "") {
					t.Errorf("plan: %s via %q (note %q), want via %q", tr.Kind, tr.Via, tr.Note, want)
				}
			}
			if tc.contacts == plan.ProtoCardDAV || tc.calendars == plan.ProtoCalDAV {
				return // the DAV export would dial the target's endpoint
			}
			// The export's DAV part: nothing to open; a kind that stays
			// is warned about, with the capability and endpoint it lacks.
			a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			var cnt state.Counts
			if n, err := x.exportDAV(ctx, acct, a, log, &cnt, via); err != nil || n != 0 {
				t.Fatalf("DAV export: %d, %v", n, err)
			}
			var warned []string
			for _, l := range strings.Split(buf.String(), "\n") {
				if strings.Contains(l, "level=WARN") && strings.Contains(l, "not moved") {
					for _, k := range []string{"contacts", "calendars"} {
						if strings.Contains(l, "kind="+k) {
							warned = append(warned, k)
						}
					}
				}
			}
			if strings.Join(warned, ",") != strings.Join(tc.warn, ",") {
				t.Errorf("warned about %q, want %q\n%s", warned, tc.warn, buf.String())
			}
		})
	}
}
