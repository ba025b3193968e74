package vandelay_test

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/jscontact"
	"github.com/mailmig/mailmig/vandelay/jmap"
	srcdav "github.com/mailmig/mailmig/vandelay/sources/dav"
)

func davDo(t *testing.T, method, url string, acct peers.Account, body, ctype string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(acct.Email, acct.Password)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestContactsRadicaleToJMAP is the real-server leg of the JMAP contacts
// path: the contacts corpus (vCard 3.0 and 4.0, a 500 KB photo, groups
// both ways, non-ASCII names, folded lines) is put on the real Radicale,
// imported over CardDAV, converted and exported onto a JMAP contacts
// account (the in-test RFC 9610 store: no server here offers the
// capability), verified, carried through an edit and a delete at the
// source, and imported back from JMAP into a second archive: every card
// there equals what Radicale served after the documented normalisation.
func TestContactsRadicaleToJMAP(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := s.Radicale.HomeURL(acct.Email)
	if code, b := davDo(t, "MKCOL", home+"work/", acct, `<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>`+
		`<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Arbeit – Kollegen</D:displayname>`+
		`<CR:addressbook-description>Kontakte der Firma</CR:addressbook-description></D:prop></D:set></D:mkcol>`, "application/xml"); code != http.StatusCreated {
		t.Fatalf("MKCOL work: %d %s", code, b)
	}
	cards := corpus.Contacts()
	for i, c := range cards {
		if !strings.Contains(c.Body, "\r\nUID:") {
			// Radicale refuses a vCard without UID (400); the
			// converter's tests cover that case.
			cards[i].Body = strings.Replace(c.Body, "VERSION:3.0\r\n", "VERSION:3.0\r\nUID:"+c.Name+"\r\n", 1)
			c = cards[i]
		}
		if code, b := davDo(t, "PUT", home+c.Book+"/"+c.Name, acct, c.Body, "text/vcard; charset=utf-8"); code != http.StatusCreated {
			t.Fatalf("PUT %s: %d %s", c.Name, code, b)
		}
	}
	a := openArchive(t)
	src, err := srcdav.New(&srcdav.Options{
		Server: vandelay.Server{Address: strings.TrimSuffix(strings.TrimPrefix(s.Radicale.URL, "http://"), "/"), TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password},
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := vandelay.ImportDAV(ctx, src, a, nil); err != nil || r.Added != len(cards) {
		t.Fatalf("import from Radicale: %+v %v", r, err)
	}

	store, url := newCardStore(t)
	c, err := jmap.Discover(ctx, url, &jmap.Options{Auth: jmap.BasicAuth{User: "alice", Password: "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil)
	if err != nil || r.Collections != 2 || r.Put != len(cards) || len(r.Refused)+len(r.Conflicts) != 0 {
		t.Fatalf("export onto JMAP: %+v %v", r, err)
	}
	verifyAll := func(step string) {
		t.Helper()
		rep, err := vandelay.VerifyContactsJMAP(ctx, a, c, "A1")
		if err != nil {
			t.Fatalf("%s: verify: %v", step, err)
		}
		for _, m := range rep.Mismatches {
			t.Errorf("%s: verify: %s %s", step, m.Kind, m.Href)
		}
		for _, cr := range rep.Collections {
			if cr.Matched != cr.Items {
				t.Errorf("%s: verify %s: %d of %d", step, cr.Source, cr.Matched, cr.Items)
			}
		}
	}
	verifyAll("first export")
	// What the store holds is the conversion of what Radicale served, and
	// converts back to it (after the documented normalisation).
	cols, _ := a.DAVCollections(ctx, archive.CollectionAddressBook, false)
	served := map[string]string{} // UID → served vCard
	for _, col := range cols {
		items, _ := a.DAVItems(ctx, col.ID, false)
		for _, it := range items {
			body, _ := a.BlobBytes(ctx, it.Hash)
			card, err := jscontact.FromVCard(body)
			if err != nil {
				t.Fatalf("%s: %v", it.Href, err)
			}
			served[card["uid"].(string)] = string(body)
		}
	}
	if len(served) != len(cards) {
		t.Fatalf("%d UIDs for %d cards", len(served), len(cards))
	}
	store.take()
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Changes() != 0 || r.Unchanged != len(cards) {
		t.Errorf("no-change export: %+v %v", r, err)
	}
	if m := store.take(); !reflect.DeepEqual(m, []string{"AddressBook/get", "ContactCard/changes"}) {
		t.Errorf("no-change export called %q", m)
	}

	// An edit and a delete at the source are carried exactly.
	edited := strings.Replace(cards[2].Body, "athena@example.test", "athena@olymp.example", 1)
	if code, b := davDo(t, "PUT", home+cards[2].Book+"/"+cards[2].Name, acct, edited, "text/vcard; charset=utf-8"); code != http.StatusNoContent && code != http.StatusCreated {
		t.Fatalf("PUT edit: %d %s", code, b)
	}
	if code, b := davDo(t, "DELETE", home+cards[7].Book+"/"+cards[7].Name, acct, "", ""); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, b)
	}
	if r, err := vandelay.ImportDAV(ctx, src, a, nil); err != nil || r.Changed != 1 || r.Deleted != 1 || r.Changes() != 2 {
		t.Fatalf("import of the edit: %+v %v", r, err)
	}
	if r, err := vandelay.ExportContactsJMAP(ctx, a, c, "A1", nil); err != nil || r.Updated != 1 || r.Deleted != 1 || r.Changes() != 2 {
		t.Errorf("export of the edit: %+v %v", r, err)
	}
	verifyAll("after the edit")

	// JMAP → archive: every card comes back as a vCard 4.0 equal to what
	// Radicale served, after the normalisation of docs/export.md.
	b := openArchive(t)
	if r, err := vandelay.ImportContactsJMAP(ctx, c, "A1", b, nil); err != nil || r.Collections != 2 || r.Added != len(cards)-1 {
		t.Fatalf("import from JMAP: %+v %v", r, err)
	}
	for _, col := range cols {
		items, _ := a.DAVItems(ctx, col.ID, false)
		for _, it := range items {
			body, _ := a.BlobBytes(ctx, it.Hash)
			card, _ := jscontact.FromVCard(body)
			served[card["uid"].(string)] = string(body)
		}
	}
	bcols, _ := b.DAVCollections(ctx, archive.CollectionAddressBook, false)
	n := 0
	for _, col := range bcols {
		items, _ := b.DAVItems(ctx, col.ID, false)
		for _, it := range items {
			n++
			body, _ := b.BlobBytes(ctx, it.Hash)
			want, err := jscontact.NormalizeVCard([]byte(served[it.UID]))
			if err != nil {
				t.Fatal(err)
			}
			got, err := jscontact.NormalizeVCard(body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s (UID %s) differs from what Radicale served:\n got %q\nwant %q", it.Href, it.UID, got, want)
			}
		}
	}
	if n != len(cards)-1 {
		t.Errorf("%d cards imported back, want %d", n, len(cards)-1)
	}
	if r, err := vandelay.ImportContactsJMAP(ctx, c, "A1", b, nil); err != nil || r.Changes() != 0 {
		t.Errorf("no-change import from JMAP: %+v %v", r, err)
	}
}
