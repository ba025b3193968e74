package dav_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/targets/dav"
)

// schedCorpus is what implicit scheduling (RFC 6638) acts on when Cyrus
// is given it: an event organized by the account with another Cyrus
// user and an outside address as attendees, one where the account is
// only an attendee of the other Cyrus user's meeting, and one where it
// is an attendee of an outside organizer's.
func schedCorpus(uid, alice, bob, outside string) map[string]string {
	ev := func(id, summary, people string) string {
		return cal("BEGIN:VEVENT\r\nUID:" + id + "-" + uid + "@example.test\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20270111T090000Z\r\nDTEND:20270111T100000Z\r\n" +
			"SEQUENCE:0\r\nSUMMARY:" + summary + "\r\n" + people + "END:VEVENT\r\n")
	}
	return map[string]string{
		"org.ics": ev("org", "Planung (organisiert)", "ORGANIZER;CN=Alice:mailto:"+alice+"\r\n"+
			"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:"+alice+"\r\n"+
			"ATTENDEE;CN=Bob;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:"+bob+"\r\n"+
			"ATTENDEE;CN=Carol;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:"+outside+"\r\n"),
		"att.ics": ev("att", "Bobs Besprechung", "ORGANIZER;CN=Bob:mailto:"+bob+"\r\n"+
			"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:"+bob+"\r\n"+
			"ATTENDEE;CN=Alice;PARTSTAT=ACCEPTED:mailto:"+alice+"\r\n"),
		"ext.ics": ev("ext", "Carols Einladung", "ORGANIZER;CN=Carol:mailto:"+outside+"\r\n"+
			"ATTENDEE;CN=Alice;PARTSTAT=TENTATIVE:mailto:"+alice+"\r\n"),
	}
}

// scheduled counts what scheduling left behind for the test's events
// (their UIDs contain uid): items in any calendar of bob's at Cyrus
// (his scheduling Inbox and the calendar Cyrus files invitations in) and
// iMIP messages the SMTP sink received.
func scheduled(t *testing.T, e *env, bob, bobPass, uid string) (bobItems, imip int) {
	t.Helper()
	tg, err := dav.Open(e.ctx, &dav.Options{
		Server: vandelay.Server{Address: e.s.Cyrus.HTTP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: bob, Password: bobPass},
		CalDAV: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	home := "/dav/calendars/user/" + bob + "/"
	// Inbox is not listed as a calendar collection, so it is named here.
	cols := []string{home + "Inbox/"}
	if cs, err := tg.Collections(e.ctx); err == nil {
		cols = append(cols, cs...)
	}
	for _, c := range cols {
		ms, err := tg.Members(e.ctx, c)
		if err != nil {
			t.Logf("bob's %s: %v", c, err)
			continue
		}
		for href := range ms {
			b, err := tg.Get(e.ctx, href, nil)
			if err == nil && strings.Contains(string(b), uid) {
				bobItems++
				if testing.Verbose() {
					t.Logf("in bob's %s:\n%s", href, b)
				}
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(e.s.Dovecot.SinkDir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), uid) {
			imip++
			if testing.Verbose() {
				t.Logf("iMIP in the sink %s:\n%.600s", f, b)
			}
		}
	}
	return bobItems, imip
}

// TestCalDAVSchedulingWithoutHeader shows what Cyrus does with such
// events when they are PUT as any client would, as the export did before
// it sent Scheduling-Enabled: F (Schedule-Reply: F, tried then, changes
// nothing): it mails invitations and replies, and it adds
// SCHEDULE-STATUS to the stored event, which verify then finds different.
func TestCalDAVSchedulingWithoutHeader(t *testing.T) {
	e := newKindEnv(t, archive.CollectionCalendar)
	bob := e.s.NewAccount(t)
	uid := "plain" + strings.TrimPrefix(strings.Split(e.acct.Email, "@")[0], "t")
	home := e.s.Cyrus.CalDAVURL(e.acct.Email) + "Default/"
	for name, body := range schedCorpus(uid, e.acct.Email, bob.Email, "carol-"+uid+"@elsewhere.test") {
		mustDo(t, http.StatusCreated, "PUT", home+name, e.acct.Email, e.acct.Password, body, "Content-Type", "text/calendar; charset=utf-8", "Schedule-Reply", "F")
		got := mustDo(t, http.StatusOK, "GET", home+name, e.acct.Email, e.acct.Password, "")
		if vandelay.Normalize(archive.CollectionCalendar, []byte(got)) == vandelay.Normalize(archive.CollectionCalendar, []byte(body)) || !strings.Contains(got, "SCHEDULE-STATUS=1.1") {
			t.Errorf("%s: stored unchanged; Cyrus no longer adds SCHEDULE-STATUS?\n%s", name, got)
		}
	}
	// Invitations to bob and carol, replies to bob and carol.
	if _, imip := scheduled(t, e, bob.Email, bob.Password, uid); imip != 4 {
		t.Errorf("%d iMIP messages, want 4 (Cyrus schedules differently now?)", imip)
	}
}

// TestCalDAVNoScheduling migrates the same events from Radicale onto
// Cyrus: nothing is mailed or delivered to anyone, Cyrus stores the bytes
// as sent (verify: 0 mismatches with the usual rules), a re-run changes
// nothing, and an edit and deletes at the source arrive without
// scheduling either. The account's own later edit at Cyrus schedules as
// usual: the export left nothing in the stored events that stops it.
func TestCalDAVNoScheduling(t *testing.T) {
	e := newKindEnv(t, archive.CollectionCalendar)
	bob := e.s.NewAccount(t)
	uid := "mig" + strings.TrimPrefix(strings.Split(e.acct.Email, "@")[0], "t")
	corpus := schedCorpus(uid, e.acct.Email, bob.Email, "carol-"+uid+"@elsewhere.test")
	for name, body := range corpus {
		e.put(t, "calendar", name, body)
	}
	if r := e.importOnce(t); r.Added != 3 {
		t.Fatalf("import: %+v, want 3 added", r)
	}
	if x := e.exportOnce(t); x.Put != 3 || len(x.Conflicts)+len(x.Refused) != 0 {
		t.Fatalf("export: %+v, want 3 put", x)
	}
	check := func(step string, wantItems int) {
		t.Helper()
		rep := e.verify(t, step)
		n := 0
		for _, c := range rep.Collections {
			n += c.Matched
		}
		if n != wantItems || len(rep.Mismatches) != 0 {
			t.Errorf("%s: verify matched %d, %d mismatches; want %d, 0", step, n, len(rep.Mismatches), wantItems)
		}
		// Equal without any rule but unfolding: nothing added.
		if d := e.differing(t, vandelay.ICalRules[:1]); d != 0 {
			t.Errorf("%s: %d items differ with unfolding only", step, d)
		}
		if b, m := scheduled(t, e, bob.Email, bob.Password, uid); b+m != 0 {
			t.Errorf("%s: scheduling happened: %d items in bob's calendars, %d iMIP messages", step, b, m)
		}
	}
	check("first export", 3)
	if x := e.exportOnce(t); x.Changes() != 0 || x.Unchanged != 3 {
		t.Errorf("no-change export: %+v", x)
	}
	check("no-change export", 3)

	e.put(t, "calendar", "org.ics", strings.Replace(strings.Replace(corpus["org.ics"], "SEQUENCE:0", "SEQUENCE:1", 1), "Planung (organisiert)", "Planung (verschoben)", 1))
	for _, name := range []string{"att.ics", "ext.ics"} {
		mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+"calendar/"+name, e.acct.Email, e.acct.Password, "")
	}
	if r := e.importOnce(t); r.Changed != 1 || r.Deleted != 2 {
		t.Errorf("import after changes: %+v, want 1 changed, 2 deleted", r)
	}
	if x := e.exportOnce(t); x.Updated != 1 || x.Deleted != 2 || x.Put != 0 || len(x.Conflicts) != 0 {
		t.Errorf("export after changes: %+v, want 1 updated, 2 deleted", x)
	}
	check("after an edit and two deletes", 1)
	if x := e.exportOnce(t); x.Changes() != 0 {
		t.Errorf("no-change export after changes: %+v", x)
	}

	// The user's own edit at the target, as their client sends it.
	href := e.s.Cyrus.CalDAVURL(e.acct.Email) + "calendar/org.ics"
	code, body := do(t, "GET", href, e.acct.Email, e.acct.Password, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d", href, code)
	}
	body = strings.Replace(strings.Replace(body, "SEQUENCE:1", "SEQUENCE:2", 1), "Planung (verschoben)", "Planung (abgesagt?)", 1)
	mustDo(t, http.StatusNoContent, "PUT", href, e.acct.Email, e.acct.Password, body, "Content-Type", "text/calendar; charset=utf-8")
	if _, m := scheduled(t, e, bob.Email, bob.Password, uid); m != 2 {
		t.Errorf("the user's edit after the migration: %d iMIP messages, want 2 (bob and carol)", m)
	}
}
