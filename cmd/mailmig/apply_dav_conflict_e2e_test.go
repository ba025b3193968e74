package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailmig/mailmig/engine/state"
)

// TestApplyDAVConflict: a contact edited on the Cyrus target by its user
// between staging and the cut-over, and edited at the source (Radicale)
// too. The cut-over's final export keeps the user's version (If-Match
// fails: a conflict, not an overwrite), its verify counts a conflict and
// no mismatch, the cut-over ends ok with a warning in the account's log;
// the journal's finish records and `mailmig report` (CSV and Markdown)
// carry the conflict. The event beside it, edited at the source only,
// arrives. Real Dovecot, Radicale and Cyrus.
func TestApplyDAVConflict(t *testing.T) {
	s := needPeers(t)
	a := s.NewAccount(t)
	dir := t.TempDir()
	t.Setenv("MAILMIG_DAVCONFLICT_PW", a.Password)
	if err := os.WriteFile(filepath.Join(dir, "accounts.csv"),
		[]byte("address,source_login,target_login,password_ref\n"+a.Email+",,,env:MAILMIG_DAVCONFLICT_PW\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cyrusDAV := "http://" + s.Cyrus.HTTP + "/"
	planFile := filepath.Join(dir, "migration.hcl")
	if err := os.WriteFile(planFile, []byte(fmt.Sprintf(`state {
  path = "state/"
}
backend "legacy" {
  imap {
    address = %q
    tls     = "none"
  }
  caldav {
    url = %q
  }
  carddav {
    url = %q
  }
}
backend "cyrus" {
  imap {
    address = %q
    tls     = "none"
  }
  jmap {
    url = %q
  }
  caldav {
    url = %q
  }
  carddav {
    url = %q
  }
}
accounts "staff" {
  from = backend.legacy
  to   = backend.cyrus
  list = csv("accounts.csv")
  data = ["mail", "contacts", "calendars"]
}
wave "all" {
  accounts          = accounts.staff
  catchup_threshold = 100
}
`, s.Dovecot.IMAP, s.Radicale.URL, s.Radicale.URL, s.Cyrus.IMAP, s.Cyrus.JMAPURL(), cyrusDAV, cyrusDAV)), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"-f", planFile}, args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errb})
		if code != want {
			t.Fatalf("mailmig %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errb.String())
		}
		return out.String() + errb.String()
	}
	dav := func(method, u, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.SetBasicAuth(a.Email, a.Password)
		if strings.HasSuffix(u, ".ics") {
			req.Header.Set("Content-Type", "text/calendar; charset=utf-8")
		} else {
			req.Header.Set("Content-Type", "text/vcard; charset=utf-8")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	card := func(fn string) string {
		return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:conflict-1\r\nFN:" + fn + "\r\nN:" + fn + ";;;;\r\nEND:VCARD\r\n"
	}
	event := func(summary string) string {
		return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:conflict-e-1@example.test\r\nDTSTAMP:20261201T100000Z\r\n" +
			"DTSTART:20261210T100000Z\r\nDURATION:PT1H\r\nSUMMARY:" + summary + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	}
	srcCard, srcEvent := s.Radicale.HomeURL(a.Email)+"contacts/c.vcf", s.Radicale.HomeURL(a.Email)+"calendar/e.ics"
	dstCard, dstEvent := s.Cyrus.CardDAVURL(a.Email)+"contacts/c.vcf", s.Cyrus.CalDAVURL(a.Email)+"calendar/e.ics"
	for u, body := range map[string]string{srcCard: card("Source One"), srcEvent: event("Termin")} {
		if code, b := dav(http.MethodPut, u, body); code != http.StatusCreated {
			t.Fatalf("PUT %s at Radicale: %d %s", u, code, b)
		}
	}

	cli(exitOK, "routes", "default", "legacy")
	cli(exitOK, "routes", "domain", "add", "example.test")
	// Staging: import and export.
	cli(exitOK, "apply", "-auto-approve")
	if code, b := dav(http.MethodGet, dstCard, ""); code != http.StatusOK || !strings.Contains(b, "FN:Source One") {
		t.Fatalf("after staging, the contact on Cyrus: %d %q", code, b)
	}
	// The user edits the contact on the target; the source edits it too,
	// and the event.
	if code, b := dav(http.MethodPut, dstCard, card("Edited On Cyrus")); code/100 != 2 {
		t.Fatalf("the user's PUT on Cyrus: %d %s", code, b)
	}
	if code, b := dav(http.MethodPut, srcCard, card("Source Two")); code/100 != 2 {
		t.Fatalf("PUT at Radicale: %d %s", code, b)
	}
	if code, b := dav(http.MethodPut, srcEvent, event("Termin verschoben")); code/100 != 2 {
		t.Fatalf("PUT at Radicale: %d %s", code, b)
	}
	// The cut-over (its final catch-up carries both edits) ends ok.
	out := cli(exitOK, "apply", "-auto-approve")
	if !strings.Contains(out, a.Email+" cutover: done") {
		t.Fatalf("no cut-over done:\n%s", out)
	}
	cli(exitOK, "plan", "-detailed-exitcode")
	if code, b := dav(http.MethodGet, dstCard, ""); code != http.StatusOK || !strings.Contains(b, "FN:Edited On Cyrus") {
		t.Errorf("the user's own version of the contact was not kept on Cyrus: %d %q", code, b)
	}
	if code, b := dav(http.MethodGet, dstEvent, ""); code != http.StatusOK || !strings.Contains(b, "SUMMARY:Termin verschoben") {
		t.Errorf("the event edited at the source did not arrive: %d %q", code, b)
	}

	// The journal: the cut-over ok with the conflict and no mismatch.
	var cut *state.Record
	if err := state.ReadRecords(filepath.Join(dir, "state"), func(r *state.Record) bool {
		if r.Type == state.TypeFinish && r.Account == a.Email && r.Action == "cutover" {
			cut = r
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if cut == nil || cut.Outcome != state.OutcomeOK || cut.Counts == nil || cut.Counts.Conflicts != 1 || cut.Counts.Mismatches != 0 {
		t.Fatalf("the cut-over's finish record: %+v (counts %+v), want ok with 1 conflict and 0 mismatches", cut, cut.Counts)
	}
	log, err := os.ReadFile(filepath.Join(dir, "state", "logs", a.Email+".log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte(`"level":"WARN","msg":"dav item conflict`)) || !bytes.Contains(log, []byte("/contacts/c.vcf")) {
		t.Errorf("no conflict warning for the contact in the account's log:\n%s", log)
	}
	// The report: 1 conflict in the account's CSV row and the table.
	rows, err := csv.NewReader(strings.NewReader(cli(exitOK, "report", "-format", "csv"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := -1
	for i, h := range rows[0] {
		if h == "conflicts" {
			col = i
		}
	}
	found := false
	for _, r := range rows[1:] {
		if r[0] == "account" && r[1] == a.Email {
			found = true
			if col < 0 || r[col] != "1" {
				t.Errorf("report CSV: conflicts column %d in %q, want 1", col, r)
			}
		}
	}
	if !found {
		t.Errorf("report CSV has no row for %s: %q", a.Email, rows)
	}
	if md := cli(exitOK, "report"); !strings.Contains(md, "1 conflict kept at the target's version") {
		t.Errorf("report summary lacks the conflict:\n%s", md)
	}
}
