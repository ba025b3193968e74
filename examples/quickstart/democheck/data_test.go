package main

import (
	"strings"
	"testing"
)

func TestDAVXML(t *testing.T) {
	prop := []byte(`<current-user-principal xmlns="DAV:"><href> /dav/principals/user/a@example.test/ </href></current-user-principal><C:calendar-home-set xmlns:C="urn:ietf:params:xml:ns:caldav"><href>/home/</href></C:calendar-home-set>`)
	if got := hrefIn(prop, "current-user-principal"); got != "/dav/principals/user/a@example.test/" {
		t.Errorf("principal: %q", got)
	}
	if got := hrefIn(prop, "calendar-home-set"); got != "/home/" {
		t.Errorf("home: %q", got)
	}
	if got := hrefIn(prop, "addressbook-home-set"); got != "" {
		t.Errorf("absent: %q", got)
	}
	rt := []byte(`<collection xmlns="DAV:"/><C:calendar xmlns:C="urn:ietf:params:xml:ns:caldav"/>`)
	if !hasElement(rt, "calendar") || hasElement(rt, "addressbook") {
		t.Errorf("resourcetype %s", rt)
	}
}

func TestSeedItems(t *testing.T) {
	for name, body := range seedEvents("alice@example.test") {
		if uid := uidOf([]byte(body)); !strings.HasSuffix(uid, "-alice@example.test") || !strings.HasSuffix(body, "END:VCALENDAR\r\n") {
			t.Errorf("%s: UID %q", name, uid)
		}
		// Only the meeting names people: the export must move it
		// without Cyrus scheduling it (docs/export.md).
		if people := strings.Contains(body, "ATTENDEE") || strings.Contains(body, "ORGANIZER"); people != (name == "meeting.ics") {
			t.Errorf("%s: ORGANIZER/ATTENDEE %v", name, people)
		}
	}
	if m := seedEvents("alice@example.test")["meeting.ics"]; !strings.Contains(m, "mailto:bob@example.test") || !strings.Contains(m, "ORGANIZER;CN=alice:mailto:alice@example.test") {
		t.Errorf("alice's meeting does not invite bob: %q", m)
	}
	seen := map[string]bool{}
	for name, body := range seedContacts("bob@example.test") {
		uid := uidOf([]byte(body))
		if !strings.Contains(uid, "bob") || seen[uid] {
			t.Errorf("%s: UID %q", name, uid)
		}
		seen[uid] = true
	}
	if d1, d2 := digest(map[string]davItem{"a": {hash: "1"}}), digest(map[string]davItem{"a": {hash: "2"}}); d1 == d2 || len(d1) != 12 {
		t.Errorf("digests %q %q", d1, d2)
	}
}
