package dav_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	srcdav "github.com/mailmig/mailmig/vandelay/sources/dav"
	"github.com/mailmig/mailmig/vandelay/targets/dav"
)

// fold folds a content line at 75 octets (RFC 6350 3.2), CRLF + space.
func fold(line string) string {
	var b strings.Builder
	for len(line) > 75 {
		b.WriteString(line[:75] + "\r\n ")
		line = line[75:]
	}
	b.WriteString(line)
	return b.String()
}

func photo() string {
	raw := make([]byte, 375<<10) // 500 KB of base64
	rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

// cardCorpus is the contacts corpus: vCard 3.0 and 4.0, a 500 KB
// inline photo, groups (KIND:group and Apple's X-ADDRESSBOOKSERVER-*),
// non-ASCII names and folded lines, in two address books.
func cardCorpus() map[string]map[string]string {
	return map[string]map[string]string{
		"contacts": {
			"mueller.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:mueller-1\r\nFN:Jürgen Müller-Lüdenscheidt\r\nN:Müller-Lüdenscheidt;Jürgen;;;\r\n" +
				"EMAIL;TYPE=INTERNET,HOME:juergen@example.test\r\nTEL;TYPE=CELL:+49 170 1234567\r\n" +
				fold("NOTE:Ein sehr langer Hinweis über mehrere Zeilen, damit die Zeile gefaltet werden muss – äöü ß €.") + "\r\nEND:VCARD\r\n",
			"photo.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:photo-1\r\nFN:Photo Person\r\nN:Person;Photo;;;\r\n" +
				fold("PHOTO;ENCODING=b;TYPE=JPEG:"+photo()) + "\r\nEND:VCARD\r\n",
			"v4.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4e6b7c1a-0000-4000-8000-000000000004\r\nFN:Ἀθηνᾶ Παλλάς\r\nN:Παλλάς;Ἀθηνᾶ;;;\r\n" +
				"EMAIL;TYPE=work:athena@example.test\r\nEND:VCARD\r\n",
		},
		"work": {
			"group.vcf": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4e6b7c1a-0000-4000-8000-0000000000aa\r\nKIND:group\r\nFN:Team 東京\r\nN:Team 東京;;;;\r\n" +
				"MEMBER:urn:uuid:4e6b7c1a-0000-4000-8000-000000000004\r\nEND:VCARD\r\n",
			"apple-group.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:apple-group-1\r\nFN:Familie\r\nN:Familie;;;;\r\nX-ADDRESSBOOKSERVER-KIND:group\r\n" +
				"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:mueller-1\r\nEND:VCARD\r\n",
			"zoe.vcf": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:zoe-1\r\nFN:Zoë Ñúñez\r\nN:Ñúñez;Zoë;;;\r\nORG:Ça va S.à r.l.\r\nEND:VCARD\r\n",
		},
	}
}

func do(t *testing.T, method, url, user, pass, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustDo(t *testing.T, want int, method, url, user, pass, body string, hdr ...string) string {
	t.Helper()
	code, b := do(t, method, url, user, pass, body, hdr...)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %.300s", method, url, code, want, b)
	}
	return b
}

const mkcolWork = `<?xml version="1.0"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
<D:displayname>Arbeit – Kollegen</D:displayname>
<CR:addressbook-description>Kontakte der Firma</CR:addressbook-description>
<A:calendar-color>#FF8800FF</A:calendar-color>
</D:prop></D:set></D:mkcol>`

type env struct {
	ctx    context.Context
	s      *peers.Set
	acct   peers.Account
	a      *archive.Archive
	source *srcdav.Source
	kind   string // archive.CollectionAddressBook or CollectionCalendar
}

func (e *env) importOnce(t *testing.T) *vandelay.DAVImportResult {
	t.Helper()
	r, err := vandelay.ImportDAV(e.ctx, e.source, e.a, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return r
}

func (e *env) target(t *testing.T) *dav.Target {
	t.Helper()
	tg, err := dav.Open(e.ctx, &dav.Options{
		Server: vandelay.Server{Address: e.s.Cyrus.HTTP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: e.acct.Email, Password: e.acct.Password},
		CalDAV: e.kind == archive.CollectionCalendar,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func (e *env) exportOnce(t *testing.T) *vandelay.DAVExportResult {
	t.Helper()
	r, err := vandelay.ExportDAV(e.ctx, e.a, e.kind, e.target(t), nil)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return r
}

func (e *env) verify(t *testing.T, step string) *vandelay.DAVVerifyReport {
	t.Helper()
	rep, err := vandelay.VerifyDAV(e.ctx, e.a, e.kind, e.target(t))
	if err != nil {
		t.Fatalf("%s: verify: %v", step, err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("%s: %s %s", step, m.Kind, m.Href)
	}
	return rep
}

func newEnv(t *testing.T) *env { return newKindEnv(t, archive.CollectionAddressBook) }

func newKindEnv(t *testing.T, kind string) *env {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	source, err := srcdav.New(&srcdav.Options{
		Server: vandelay.Server{Address: strings.TrimSuffix(strings.TrimPrefix(s.Radicale.URL, "http://"), "/"), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
		CalDAV: kind == archive.CollectionCalendar,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, s: s, acct: acct, a: a, source: source, kind: kind}
}

func (e *env) put(t *testing.T, book, name, body string) {
	t.Helper()
	ct := "text/vcard; charset=utf-8"
	if e.kind == archive.CollectionCalendar {
		ct = "text/calendar; charset=utf-8"
	}
	code, b := do(t, "PUT", e.s.Radicale.HomeURL(e.acct.Email)+book+"/"+name, e.acct.Email, e.acct.Password, body, "Content-Type", ct)
	if code != http.StatusCreated && code != http.StatusNoContent {
		t.Fatalf("PUT %s/%s at radicale: %d %.300s", book, name, code, b)
	}
}

// TestCardDAVRadicaleToCyrus moves two address books from Radicale through
// the archive onto Cyrus's CardDAV and compares, then carries exactly an
// add, an edit and a delete made at the source, and nothing on a re-run
// without changes.
func TestCardDAVRadicaleToCyrus(t *testing.T) {
	e := newEnv(t)
	mustDo(t, http.StatusCreated, "MKCOL", e.s.Radicale.HomeURL(e.acct.Email)+"work/", e.acct.Email, e.acct.Password, mkcolWork, "Content-Type", "application/xml")
	corpus := cardCorpus()
	for book, cards := range corpus {
		for name, body := range cards {
			e.put(t, book, name, body)
		}
	}
	r := e.importOnce(t)
	if r.Collections != 2 || r.Added != 6 || r.Changes() != 6 || len(r.Failed) != 0 {
		t.Fatalf("first import: %+v, want 2 collections, 6 added", r)
	}
	// The archive holds exactly what Radicale serves (not what was put).
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionAddressBook, false)
	for _, c := range cols {
		items, _ := e.a.DAVItems(e.ctx, c.ID, false)
		for _, it := range items {
			served := mustDo(t, 200, "GET", strings.TrimSuffix(e.s.Radicale.URL, "/")+it.Href, e.acct.Email, e.acct.Password, "")
			if archive.Hash([]byte(served)) != it.Hash {
				t.Errorf("archive %s: differs from what the source serves", it.Href)
			}
		}
		if strings.HasSuffix(c.Href, "/work/") && (c.DisplayName != "Arbeit – Kollegen" || c.Description != "Kontakte der Firma" || c.Color != "#FF8800FF") {
			t.Errorf("work collection properties: %+v", c)
		}
	}
	first := e.exportOnce(t)
	if first.Collections != 2 || first.Put != 6 || len(first.Conflicts)+len(first.Refused) != 0 {
		t.Fatalf("first export: %+v", first)
	}
	rep := e.verify(t, "first export")
	for _, c := range rep.Collections {
		if c.Items != c.Matched || c.Items != 3 {
			t.Errorf("verify %s: %d items, %d matched", c.Source, c.Items, c.Matched)
		}
	}
	// Each normalisation rule is necessary: without it, some item that
	// Cyrus stores differs from what Radicale served.
	for i, rule := range vandelay.VCardRules {
		others := append(append([]vandelay.VCardRule{}, vandelay.VCardRules[:i]...), vandelay.VCardRules[i+1:]...)
		if e.differing(t, others) == 0 {
			t.Errorf("rule %q: no item differs without it", rule.Name)
		}
	}
	if n := e.differing(t, vandelay.VCardRules); n != 0 {
		t.Errorf("%d items differ after all rules", n)
	}
	if n := e.exportOnce(t); n.Changes() != 0 || n.Unchanged != 6 {
		t.Errorf("no-change export: %+v", n)
	}
	if n := e.importOnce(t); n.Changes() != 0 {
		t.Errorf("no-change import: %+v", n)
	}

	// Add, edit, delete at the source.
	e.put(t, "contacts", "new.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:new-1\r\nFN:Neu Hinzugefügt\r\nN:Hinzugefügt;Neu;;;\r\nEND:VCARD\r\n")
	e.put(t, "work", "zoe.vcf", strings.Replace(corpus["work"]["zoe.vcf"], "ORG:Ça va S.à r.l.", "ORG:Nouvelle Société", 1))
	mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+"contacts/mueller.vcf", e.acct.Email, e.acct.Password, "")
	if r := e.importOnce(t); r.Added != 1 || r.Changed != 1 || r.Deleted != 1 || r.Unchanged > 1 {
		t.Errorf("import after changes: %+v, want exactly 1 added, 1 changed, 1 deleted", r)
	}
	if x := e.exportOnce(t); x.Put != 1 || x.Updated != 1 || x.Deleted != 1 || x.Collections != 0 || len(x.Conflicts) != 0 {
		t.Errorf("export after changes: %+v, want exactly 1 put, 1 updated, 1 deleted", x)
	}
	e.verify(t, "after changes")
	if code, _ := do(t, "GET", e.s.Cyrus.CardDAVURL(e.acct.Email)+"contacts/mueller.vcf", e.acct.Email, e.acct.Password, ""); code != http.StatusNotFound {
		t.Errorf("deleted contact at the target: %d, want 404", code)
	}
	if n := e.exportOnce(t); n.Changes() != 0 || len(n.Conflicts) != 0 {
		t.Errorf("no-change export after changes: %+v", n)
	}
}

// differing counts the archive's live address-book items whose bytes at
// Cyrus differ from the archived ones after rules.
func (e *env) differing(t *testing.T, rules []vandelay.VCardRule) int {
	t.Helper()
	tg := e.target(t)
	cols, _ := e.a.DAVCollections(e.ctx, e.kind, false)
	home := "/dav/addressbooks/user/"
	if e.kind == archive.CollectionCalendar {
		home = "/dav/calendars/user/"
	}
	n := 0
	for _, c := range cols {
		items, _ := e.a.DAVItems(e.ctx, c.ID, false)
		for _, it := range items {
			want, err := e.a.BlobBytes(e.ctx, it.Hash)
			if err != nil {
				t.Fatal(err)
			}
			book := strings.TrimSuffix(c.Href, "/")
			book = book[strings.LastIndex(book, "/")+1:]
			got, err := tg.Get(e.ctx, home+e.acct.Email+"/"+book+"/"+it.Href[strings.LastIndex(it.Href, "/")+1:], want)
			if err != nil {
				t.Fatal(err)
			}
			norm := func(b []byte) string {
				for _, r := range rules {
					b = r.Apply(b)
				}
				return string(b)
			}
			if norm(got) != norm(want) {
				n++
				if testing.Verbose() {
					t.Logf("%s differs:\n--- archive only\n%s\n--- target only\n%s", it.Href, clip(only(norm(want), norm(got))), clip(only(norm(got), norm(want))))
				}
			}
		}
	}
	return n
}

// TestCardDAVUnparsable exports an item that does not parse (as a source
// may serve one: Radicale itself refuses to store such bytes) as it is:
// Cyrus refuses it, the refusal is reported with Cyrus's text, the
// other item of the collection goes and a re-run does not try again
// differently.
func TestCardDAVUnparsable(t *testing.T) {
	e := newEnv(t)
	broken := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:broken-1\r\nFN:Abgeschnitten\r\n"
	good := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:good-1\r\nFN:Gut\r\nN:Gut;;;;\r\nEND:VCARD\r\n"
	src := archive.Source{Kind: "carddav", Endpoint: "http://example.test/", Account: e.acct.Email}
	r, err := e.a.SyncDAVCollection(e.ctx, archive.CollectionAddressBook, src, &archive.CollectionSync{
		Collection: archive.NewCollection{Href: "/u/imported/", DisplayName: "Imported"},
		Items: []archive.NewItem{
			{Href: "/u/imported/broken.vcf", MediaType: "text/vcard", Body: []byte(broken), ParseError: "vcard: no END field found"},
			{Href: "/u/imported/good.vcf", MediaType: "text/vcard", Body: []byte(good), UID: "good-1"},
		},
	}, false)
	if err != nil || r.Added != 2 {
		t.Fatalf("archive: %+v, %v", r, err)
	}
	x := e.exportOnce(t)
	href := "/dav/addressbooks/user/" + e.acct.Email + "/imported/broken.vcf"
	if x.Put != 1 || len(x.Refused) != 1 || x.Refused[href] == "" {
		t.Fatalf("export: %+v, want the good item put and the broken one refused", x)
	}
	t.Logf("Cyrus refused the unparsable vCard: %s", x.Refused[href])
	// The archive still holds the bytes, exactly.
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionAddressBook, false)
	items, _ := e.a.DAVItems(e.ctx, cols[0].ID, false)
	if len(items) != 2 || items[0].Hash != archive.Hash([]byte(broken)) || items[0].ParseError == "" {
		t.Errorf("archive items: %+v", items)
	}
	if y := e.exportOnce(t); y.Changes() != 0 || len(y.Refused) != 1 {
		t.Errorf("re-run: %+v, want no change and the same refusal", y)
	}
}

// phantom adds a collection that does not exist to what the source
// lists, as when an address book is deleted between discovery and sync.
type phantom struct {
	*srcdav.Source
	href string
}

func (p phantom) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	cols, err := p.Source.Collections(ctx)
	return append(cols, archive.NewCollection{Href: p.href}), err
}

// TestCardDAVFailedCollection: Radicale's 404 for one collection is
// reported and the other collections are synced.
func TestCardDAVFailedCollection(t *testing.T) {
	e := newEnv(t)
	e.put(t, "contacts", "a.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a-1\r\nFN:A\r\nN:A;;;;\r\nEND:VCARD\r\n")
	src := phantom{e.source, "/" + strings.ReplaceAll(e.acct.Email, "@", "%40") + "/gone/"}
	// A dry run counts and writes nothing.
	r, err := vandelay.ImportDAV(e.ctx, src, e.a, &vandelay.ImportOptions{DryRun: true})
	if err != nil || r.Added != 1 || !r.DryRun {
		t.Fatalf("dry run: %+v, %v", r, err)
	}
	if cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionAddressBook, true); len(cols) != 0 {
		t.Fatalf("dry run wrote %d collections", len(cols))
	}
	r, err = vandelay.ImportDAV(e.ctx, src, e.a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Collections != 1 || r.Added != 1 || len(r.Failed) != 1 || !strings.Contains(r.Failed[src.href], "404") {
		t.Errorf("import: %+v, want the contacts synced and %s failed with 404", r, src.href)
	}
}

func clip(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if len(l) > 120 {
			l = l[:120] + "…"
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// only returns the lines of a that b lacks.
func only(a, b string) string {
	in := map[string]bool{}
	for _, l := range strings.Split(b, "\n") {
		in[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !in[l] {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// killAfterPut cancels the export's context right after its n-th PUT
// succeeded, before the export records it: what a kill at that moment
// leaves behind.
type killAfterPut struct {
	vandelay.DAVTarget
	n      int
	cancel context.CancelFunc
}

func (k *killAfterPut) Put(ctx context.Context, href, mediaType string, body []byte, ifMatch string) (string, error) {
	etag, err := k.DAVTarget.Put(ctx, href, mediaType, body, ifMatch)
	if k.n--; k.n == 0 {
		k.cancel()
	}
	return etag, err
}

// TestCardDAVExportInterrupted: exports stopped right after a PUT (before
// its record), at each item in turn, then a full run: every contact at
// the target once, equal, none put twice; a contact deleted at the source
// afterwards is deleted at the target (the export still knows it created
// it).
func TestCardDAVExportInterrupted(t *testing.T) {
	e := newEnv(t)
	for i := range 4 {
		e.put(t, "contacts", fmt.Sprintf("c%d.vcf", i), fmt.Sprintf("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c%d\r\nFN:Kontakt %d\r\nN:%d;Kontakt;;;\r\nEND:VCARD\r\n", i, i, i))
	}
	if r := e.importOnce(t); r.Added != 4 {
		t.Fatalf("import: %+v", r)
	}
	for round := 1; round <= 3; round++ {
		ctx, cancel := context.WithCancel(e.ctx)
		k := &killAfterPut{DAVTarget: e.target(t), n: 1, cancel: cancel}
		r, err := vandelay.ExportDAV(ctx, e.a, archive.CollectionAddressBook, k, nil)
		cancel()
		if err == nil {
			t.Fatalf("round %d: the export was not interrupted: %+v", round, r)
		}
	}
	last := e.exportOnce(t)
	if last.Put != 1 || last.Updated != 0 || len(last.Conflicts) != 0 {
		t.Errorf("final run: %+v; want the one item never put put, the 3 interrupted ones not put again", last)
	}
	if rep := e.verify(t, "after interrupted exports"); len(rep.Collections) != 1 || rep.Collections[0].Matched != 4 {
		t.Errorf("verify: %+v", rep.Collections)
	}
	for i := range 3 {
		mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+fmt.Sprintf("contacts/c%d.vcf", i), e.acct.Email, e.acct.Password, "")
	}
	e.importOnce(t)
	if x := e.exportOnce(t); x.Deleted != 3 || len(x.Conflicts) != 0 {
		t.Errorf("export after deleting the interrupted ones at the source: %+v, want 3 deleted", x)
	}
}

// TestCardDAVConflict: contacts the user edited at the target after the
// export are conflicts when the source changes or deletes them: reported,
// the target's version kept.
func TestCardDAVConflict(t *testing.T) {
	e := newEnv(t)
	card := func(uid, fn string) string {
		return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\nFN:" + fn + "\r\nN:" + fn + ";;;;\r\nEND:VCARD\r\n"
	}
	e.put(t, "contacts", "edit.vcf", card("edit-1", "Quelle"))
	e.put(t, "contacts", "del.vcf", card("del-1", "Quelle"))
	e.importOnce(t)
	if x := e.exportOnce(t); x.Put != 2 {
		t.Fatalf("export: %+v", x)
	}
	target := e.s.Cyrus.CardDAVURL(e.acct.Email) + "contacts/"
	for _, n := range []string{"edit", "del"} {
		mustDo(t, http.StatusNoContent, "PUT", target+n+".vcf", e.acct.Email, e.acct.Password, card(n+"-1", "Am Ziel bearbeitet"), "Content-Type", "text/vcard")
	}
	e.put(t, "contacts", "edit.vcf", card("edit-1", "Quelle geändert"))
	mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+"contacts/del.vcf", e.acct.Email, e.acct.Password, "")
	e.importOnce(t)
	x := e.exportOnce(t)
	if len(x.Conflicts) != 2 || x.Changes() != 0 {
		t.Errorf("export: %+v, want 2 conflicts and no change", x)
	}
	for _, n := range []string{"edit", "del"} {
		if b := mustDo(t, http.StatusOK, "GET", target+n+".vcf", e.acct.Email, e.acct.Password, ""); !strings.Contains(b, "Am Ziel bearbeitet") {
			t.Errorf("%s at the target: %q, want the user's version kept", n, b)
		}
	}
	// Verify lists the kept version as a conflict, not a mismatch.
	if rep := e.verify(t, "after the conflicts"); len(rep.Conflicts) != 1 || !strings.HasSuffix(rep.Conflicts[0], "/edit.vcf") {
		t.Errorf("verify conflicts: %v, want edit.vcf", rep.Conflicts)
	}
}

// TestCardDAVStaleSyncToken: a sync-token Radicale no longer accepts
// makes the import start over with a full listing, which fetches only
// the items whose ETag changed and finds the deleted ones.
func TestCardDAVStaleSyncToken(t *testing.T) {
	e := newEnv(t)
	e.put(t, "contacts", "a.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a-1\r\nFN:A\r\nN:A;;;;\r\nEND:VCARD\r\n")
	e.put(t, "contacts", "b.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b-1\r\nFN:B\r\nN:B;;;;\r\nEND:VCARD\r\n")
	if r := e.importOnce(t); r.Added != 2 {
		t.Fatalf("import: %+v", r)
	}
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionAddressBook, false)
	cur, err := e.a.DAVCursor(e.ctx, archive.CollectionAddressBook, e.source.Describe(), cols[0].Href)
	if err != nil || cur.SyncToken == "" {
		t.Fatalf("cursor: %+v, %v (want a sync-token from Radicale)", cur, err)
	}
	// Replace the token with one the server never issued.
	if _, err := e.a.SyncDAVCollection(e.ctx, archive.CollectionAddressBook, e.source.Describe(), &archive.CollectionSync{
		Collection: archive.NewCollection{Href: cols[0].Href, DisplayName: cols[0].DisplayName}, SyncToken: "http://radicale.org/ns/sync/0000", CTag: cur.CTag,
	}, false); err != nil {
		t.Fatal(err)
	}
	mustDo(t, http.StatusOK, "DELETE", e.s.Radicale.HomeURL(e.acct.Email)+"contacts/b.vcf", e.acct.Email, e.acct.Password, "")
	r := e.importOnce(t)
	if r.Deleted != 1 || r.Added+r.Changed != 0 || len(r.Failed) != 0 {
		t.Errorf("import with a stale token: %+v, want 1 deleted, nothing else", r)
	}
	if cur, _ := e.a.DAVCursor(e.ctx, archive.CollectionAddressBook, e.source.Describe(), cols[0].Href); cur.SyncToken == "http://radicale.org/ns/sync/0000" {
		t.Errorf("the stale token was kept")
	}
}

// TestCardDAVCyrusAsSource reads Cyrus's CardDAV as a source (it differs
// from Radicale: its own sync-tokens, a Default address book): every
// item arrives, a re-run changes nothing, a deletion is one tombstone.
func TestCardDAVCyrusAsSource(t *testing.T) {
	e := newEnv(t)
	target := e.s.Cyrus.CardDAVURL(e.acct.Email) + "Default/"
	for _, n := range []string{"x", "y"} {
		mustDo(t, http.StatusCreated, "PUT", target+n+".vcf", e.acct.Email, e.acct.Password,
			"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:"+n+"-cy\r\nFN:Cyrus "+n+"\r\nN:"+n+";;;;\r\nEND:VCARD\r\n", "Content-Type", "text/vcard")
	}
	src, err := srcdav.New(&srcdav.Options{
		Server: vandelay.Server{Address: e.s.Cyrus.HTTP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: e.acct.Email, Password: e.acct.Password},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vandelay.ImportDAV(e.ctx, src, e.a, nil)
	if err != nil || r.Added != 2 || len(r.Failed) != 0 {
		t.Fatalf("import from Cyrus: %+v, %v", r, err)
	}
	cols, _ := e.a.DAVCollections(e.ctx, archive.CollectionAddressBook, false)
	for _, c := range cols {
		items, _ := e.a.DAVItems(e.ctx, c.ID, false)
		for _, it := range items {
			served := mustDo(t, 200, "GET", "http://"+e.s.Cyrus.HTTP+it.Href, e.acct.Email, e.acct.Password, "")
			if archive.Hash([]byte(served)) != it.Hash {
				b, _ := e.a.BlobBytes(e.ctx, it.Hash)
				t.Errorf("archive %s: differs from what Cyrus serves:\n%q\n%q", it.Href, b, served)
			}
		}
	}
	if r, err := vandelay.ImportDAV(e.ctx, src, e.a, nil); err != nil || r.Changes() != 0 {
		t.Errorf("no-change re-run: %+v, %v", r, err)
	}
	mustDo(t, http.StatusNoContent, "DELETE", target+"x.vcf", e.acct.Email, e.acct.Password, "")
	if r, err := vandelay.ImportDAV(e.ctx, src, e.a, nil); err != nil || r.Deleted != 1 || r.Changes() != 1 {
		t.Errorf("after a deletion at Cyrus: %+v, %v", r, err)
	}
}
