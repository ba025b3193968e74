package managesieve_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	srcms "github.com/mailmig/mailmig/vandelay/sources/managesieve"
)

// TestVacationFromDovecotSieve reads the vacation response out of the
// active script at Dovecot's ManageSieve, where a filter editor put it in
// an included script inside a date range (Roundcube's form): the archive
// holds it (subject, body, days, :from, :addresses, dates), a re-run
// changes nothing, an edit is one change, and activating a script without
// vacation disables it.
func TestVacationFromDovecotSieve(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := dialAs(t, s.Dovecot.ManageSieve, vandelay.Login{User: acct.Email, Password: acct.Password})
	urlaub := func(subject string) []byte {
		return []byte("require [\"vacation\", \"date\", \"relational\"];\r\n# rule:[Urlaub]\r\n" +
			"if allof (currentdate :zone \"+0100\" :value \"ge\" \"date\" \"2026-12-20\", currentdate :value \"le\" \"date\" \"2027-01-05\")\r\n{\r\n" +
			"\tvacation :days 3 :subject \"" + subject + "\" :from \"" + acct.Email + "\" :addresses [\"alias@example.test\"] text:\r\n" +
			"Ich bin bis zum 5. Januar nicht da.\r\n..und lese keine Mail.\r\n.\r\n;\r\n}\r\n")
	}
	for name, body := range map[string][]byte{
		"urlaub": urlaub("Abwesend – Urlaub"),
		"main":   []byte("require [\"include\", \"fileinto\"];\r\ninclude :personal \"urlaub\";\r\nif header :contains \"subject\" \"x\" { fileinto \"INBOX\"; }\r\n"),
		"plain":  []byte("keep;\r\n"),
	} {
		if err := src.PutScript(ctx, name, body); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	if err := src.SetActive(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	source, err := srcms.New(&srcms.Options{
		Server: vandelay.Server{Address: s.Dovecot.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
	})
	if err != nil {
		t.Fatal(err)
	}
	imp := func() *archive.SieveResult {
		t.Helper()
		r, err := vandelay.ImportSieve(ctx, source, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := imp(); !r.VacationChanged || r.Added != 3 {
		t.Fatalf("first import: %+v", r)
	}
	v, err := a.Vacation(ctx)
	if err != nil || v == nil {
		t.Fatalf("vacation: %+v %v", v, err)
	}
	if !v.Enabled || v.Subject != "Abwesend – Urlaub" || v.TextBody != "Ich bin bis zum 5. Januar nicht da.\r\n.und lese keine Mail.\r\n" ||
		v.Days != 3 || v.FromAddress != acct.Email || !slices.Equal(v.Addresses, []string{"alias@example.test"}) ||
		!v.From.Equal(time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)) || !v.To.Equal(time.Date(2027, 1, 5, 23, 59, 59, 0, time.UTC)) || v.SourceRef != "sieve:urlaub" {
		t.Errorf("vacation: %+v", v)
	}
	if r := imp(); r.VacationChanged || r.Changes() != 0 {
		t.Errorf("no-change import: %+v", r)
	}
	if err := src.PutScript(ctx, "urlaub", urlaub("Bis Januar weg")); err != nil {
		t.Fatal(err)
	}
	if r := imp(); !r.VacationChanged || r.Changed != 1 {
		t.Errorf("import after an edit: %+v", r)
	}
	if v, _ := a.Vacation(ctx); v.Subject != "Bis Januar weg" || !v.Enabled {
		t.Errorf("after the edit: %+v", v)
	}
	if err := src.SetActive(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if r := imp(); !r.VacationChanged {
		t.Errorf("import after switching to a script without vacation: %+v", r)
	}
	if v, _ := a.Vacation(ctx); v == nil || v.Enabled || v.Subject != "Bis Januar weg" {
		t.Errorf("after the switch: %+v, want the response kept but disabled", v)
	}
}
