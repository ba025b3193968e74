package managesieve_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/sieveclient"
	srcms "github.com/mailmig/mailmig/vandelay/sources/managesieve"
	"github.com/mailmig/mailmig/vandelay/targets/managesieve"
)

// The corpus of issue 12: several scripts, one active, with include,
// vacation and fileinto to a non-ASCII folder; CRLF and LF line endings
// and trailing blanks, which the target must keep byte for byte.
var corpus = map[string]string{
	"main": "require [\"include\", \"fileinto\", \"vacation\", \"mailbox\"];\r\n" +
		"include :personal \"spam\";\r\n" +
		"if header :contains \"subject\" \"Rechnung\" {\r\n  fileinto :create \"Rechnungen/Müller & Söhne\";\r\n  stop;\r\n}\r\n" +
		"vacation :days 7 :subject \"Abwesend — Urlaub\" \"Ich bin bis Montag weg. Grüße, Jürgen\";\r\n",
	"spam":             "require \"fileinto\";\nif header :contains \"X-Spam-Flag\" \"YES\" { fileinto \"Junk\"; }\n",
	"old":              "# not used any more   \r\nkeep;\r\n",
	"Filter für Ämter": "require [\"fileinto\"];\r\nif address :domain \"from\" \"finanzamt.de\" { fileinto \"Ämter\"; }\r\n",
	// Dovecot's Pigeonhole has mime and foreverypart (RFC 5703); Cyrus
	// 3.6 does not, so Cyrus refuses this script at PUTSCRIPT.
	"mime-only": "require [\"mime\", \"foreverypart\"];\nforeverypart { if header :mime :type \"Content-Type\" \"application\" { keep; } }\n",
}

func dialAs(t *testing.T, addr string, login vandelay.Login) *sieveclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sieveclient.Dial(ctx, &sieveclient.Options{Server: vandelay.Server{Address: addr, TLS: vandelay.TLSNone, AllowCleartext: true}, Login: login})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scriptsAt returns every script at a ManageSieve server with its SHA-256
// and the active one.
func scriptsAt(t *testing.T, c *sieveclient.Client) (map[string][32]byte, string) {
	t.Helper()
	ctx := context.Background()
	l, err := c.ListScripts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, active := map[string][32]byte{}, ""
	for _, s := range l {
		b, err := c.GetScript(ctx, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[s.Name] = sha256.Sum256(b)
		if s.Active {
			active = s.Name
		}
	}
	return out, active
}

// TestSieveDovecotToCyrus moves a script set from Dovecot's ManageSieve
// (read with the Dovecot master login) through the archive onto Cyrus's
// (written with Cyrus's admin as SASL authzid), then carries exactly the
// changes made at the source, and nothing on a re-run without changes.
func TestSieveDovecotToCyrus(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := dialAs(t, s.Dovecot.ManageSieve, vandelay.Login{User: acct.Email, Password: acct.Password})
	for _, name := range []string{"spam", "main", "old", "Filter für Ämter", "mime-only"} {
		if err := src.PutScript(ctx, name, []byte(corpus[name])); err != nil {
			t.Fatalf("put %q at the source: %v", name, err)
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
		Login:  vandelay.Login{User: acct.Email, Password: s.Dovecot.MasterPassword, MasterUser: s.Dovecot.MasterUser, MasterForm: vandelay.MasterStar},
	})
	if err != nil {
		t.Fatal(err)
	}
	importOnce := func() archive.SieveResult {
		t.Helper()
		r, err := vandelay.ImportSieve(ctx, source, a, nil)
		if err != nil {
			t.Fatalf("import: %v", err)
		}
		return *r
	}
	exportOnce := func() vandelay.SieveExportResult {
		t.Helper()
		tg, err := managesieve.Open(ctx, &managesieve.Options{
			Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: s.Cyrus.AdminPassword, MasterUser: s.Cyrus.AdminUser, MasterForm: vandelay.MasterAuthzID},
		})
		if err != nil {
			t.Fatalf("open target: %v", err)
		}
		defer tg.Close()
		r, err := vandelay.ExportSieve(ctx, a, tg, nil)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		return *r
	}
	// Cyrus's timsieved serves one session per user at a time (a second
	// one waits for the first to end), so the checks use short sessions.
	withTarget := func(f func(c *sieveclient.Client)) {
		t.Helper()
		c := dialAs(t, s.Cyrus.ManageSieve, vandelay.Login{User: acct.Email, Password: acct.Password})
		f(c)
		c.Logout(ctx)
	}
	// compare checks that the target holds every script of the source
	// byte-equal (but the refused one) and the same active script.
	compare := func(step string) {
		t.Helper()
		want, wantActive := scriptsAt(t, src)
		delete(want, "mime-only")
		delete(want, "Filter für Ämter")
		var got map[string][32]byte
		var gotActive string
		withTarget(func(tgt *sieveclient.Client) { got, gotActive = scriptsAt(t, tgt) })
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: target scripts by SHA-256 (-source +target):\n%s", step, d)
		}
		if gotActive != wantActive {
			t.Errorf("%s: active at the target %q, at the source %q", step, gotActive, wantActive)
		}
	}

	if got, want := importOnce(), (archive.SieveResult{Added: 5, Activated: 1, VacationChanged: true}); got != want {
		t.Errorf("first import: %+v, want %+v", got, want)
	}
	// The archive holds the source's bytes exactly.
	ss, _ := a.SieveScripts(ctx, false)
	for _, sc := range ss {
		if sc.Hash != archive.Hash([]byte(corpus[sc.Name])) {
			t.Errorf("archive %q: hash differs from the bytes put at the source", sc.Name)
		}
	}
	// A dry run counts what the export will do and writes nothing.
	func() {
		tg, err := managesieve.Open(ctx, &managesieve.Options{
			Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		r, err := vandelay.ExportSieve(ctx, a, tg, &vandelay.SieveExportOptions{DryRun: true})
		if err != nil || !r.DryRun || r.Put != 5 || r.Activated != 1 {
			t.Errorf("dry run: %+v, %v; want 5 to put (refusals are not known before), 1 activation", r, err)
		}
		if l, err := tg.List(ctx); err != nil || len(l) != 0 {
			t.Errorf("dry run wrote to the target: %v, %v", l, err)
		}
	}()
	first := exportOnce()
	if first.Put != 3 || first.Activated != 1 || first.Updated+first.Deleted != 0 {
		t.Errorf("first export: %+v, want 3 put, 1 activated", first)
	}
	// Cyrus's Sieve compiler refuses mime-only with its own words; the
	// non-ASCII name is refused before it is sent (see cyrusNames).
	if txt := first.Refused["mime-only"]; !strings.Contains(txt, "Unsupported feature") || len(first.Refused) != 2 ||
		!strings.Contains(first.Refused["Filter für Ämter"], "non-ASCII") {
		t.Errorf("refused: %q, want Cyrus's error for mime-only and the non-ASCII name", first.Refused)
	} else {
		t.Logf("Cyrus refused mime-only: %s", txt)
	}
	compare("first export")
	// VerifySieve finds the two refused scripts missing, nothing else.
	func() {
		tg, err := managesieve.Open(ctx, &managesieve.Options{
			Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		rep, err := vandelay.VerifySieve(ctx, a, tg)
		if err != nil {
			t.Fatal(err)
		}
		want := []vandelay.SieveMismatch{{Name: "Filter für Ämter", Kind: "missing"}, {Name: "mime-only", Kind: "missing"}}
		if rep.Scripts != 5 || !cmp.Equal(rep.Mismatches, want) {
			t.Errorf("verify: %+v, want 5 scripts and %v", rep, want)
		}
	}()

	// Convergence: add, edit and delete a script and switch the active one.
	if err := src.PutScript(ctx, "extra", []byte("require \"vacation\";\nvacation \"Neu: ich bin weg\";\n")); err != nil {
		t.Fatal(err)
	}
	if err := src.PutScript(ctx, "spam", []byte(corpus["spam"]+"# edited\n")); err != nil {
		t.Fatal(err)
	}
	if err := src.DeleteScript(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if err := src.SetActive(ctx, "extra"); err != nil {
		t.Fatal(err)
	}
	if got, want := importOnce(), (archive.SieveResult{Added: 1, Changed: 1, Deleted: 1, Activated: 1, Unchanged: 3, VacationChanged: true}); got != want {
		t.Errorf("second import: %+v, want %+v", got, want)
	}
	second := exportOnce()
	second.Refused = nil
	if want := (vandelay.SieveExportResult{Put: 1, Updated: 1, Deleted: 1, Activated: 1, Unchanged: 1}); !cmp.Equal(second, want) {
		t.Errorf("second export: %+v, want %+v", second, want)
	}
	compare("second export")

	// A re-run without changes changes nothing.
	if got := importOnce(); got.Changes() != 0 {
		t.Errorf("no-change import: %+v", got)
	}
	third := exportOnce()
	if third.Changes() != 0 || len(third.Refused) != 2 {
		t.Errorf("no-change export: %+v", third)
	}
	compare("no-change export")

	// A script deleted at the target is put back (not active: deleting
	// the active one is refused).
	withTarget(func(tgt *sieveclient.Client) {
		if err := tgt.DeleteScript(ctx, "spam"); err != nil {
			t.Fatal(err)
		}
	})
	if r := exportOnce(); r.Put != 1 || r.Changes() != 1 {
		t.Errorf("after a deletion at the target: %+v, want 1 put", r)
	}
	compare("put back")

	// An export killed between PUTSCRIPT and its record: the re-run
	// neither puts the script again nor forgets that it created it, so
	// its deletion at the source still deletes it at the target.
	if err := src.PutScript(ctx, "late", []byte("keep;\n")); err != nil {
		t.Fatal(err)
	}
	importOnce()
	func() {
		tg, err := managesieve.Open(ctx, &managesieve.Options{
			Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		if _, err := vandelay.ExportSieve(ctx, a, killAfterPut{tg}, nil); err == nil {
			t.Fatal("export through killAfterPut succeeded")
		}
	}()
	if r := exportOnce(); r.Put+r.Updated != 0 || r.Unchanged != 4 {
		t.Errorf("re-run after a kill: %+v, want nothing put and 4 unchanged", r)
	}
	if err := src.DeleteScript(ctx, "late"); err != nil {
		t.Fatal(err)
	}
	importOnce()
	if r := exportOnce(); r.Deleted != 1 || r.Changes() != 1 {
		t.Errorf("delete after a kill: %+v, want 1 deleted", r)
	}
	compare("after a kill")

	// A script the user put at the target is never deleted, and the
	// export does not overwrite a same-named script it did not create.
	withTarget(func(tgt *sieveclient.Client) {
		if err := tgt.PutScript(ctx, "mine", []byte("keep;\n")); err != nil {
			t.Fatal(err)
		}
	})
	if err := src.PutScript(ctx, "mine", []byte("discard;\n")); err != nil {
		t.Fatal(err)
	}
	importOnce()
	fourth := exportOnce()
	if !cmp.Equal(fourth.Conflicts, []string{"mine"}) || fourth.Changes() != 0 {
		t.Errorf("conflict export: %+v", fourth)
	}
	withTarget(func(tgt *sieveclient.Client) {
		if b, err := tgt.GetScript(ctx, "mine"); err != nil || string(b) != "keep;\n" {
			t.Errorf("user's own script at the target: %q, %v", b, err)
		}
		if !strings.Contains(strings.Join(names(t, tgt), ","), "mine") {
			t.Error("user's script deleted")
		}
	})
	// Verify lists the kept script as a conflict, not a mismatch: the
	// cut-over proceeds with a warning, like for DAV items and files.
	func() {
		tg, err := managesieve.Open(ctx, &managesieve.Options{
			Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		rep, err := vandelay.VerifySieve(ctx, a, tg)
		if err != nil {
			t.Fatal(err)
		}
		for _, mm := range rep.Mismatches {
			if mm.Name == "mine" {
				t.Errorf("conflict counted as a mismatch: %+v", rep)
			}
		}
		if !cmp.Equal(rep.Conflicts, []string{"mine"}) {
			t.Errorf("verify conflicts: %v, want [mine]", rep.Conflicts)
		}
	}()
}

func names(t *testing.T, c *sieveclient.Client) []string {
	l, err := c.ListScripts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range l {
		out = append(out, s.Name)
	}
	return out
}

// killAfterPut stands for an export killed right after a PUTSCRIPT: the
// script is stored, the export never learns it.
type killAfterPut struct{ vandelay.SieveTarget }

func (k killAfterPut) Put(ctx context.Context, name string, body []byte) error {
	if err := k.SieveTarget.Put(ctx, name, body); err != nil {
		return err
	}
	return errors.New("killed")
}
