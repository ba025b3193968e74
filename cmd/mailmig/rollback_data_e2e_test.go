package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// httpDo sends one request with the account's Basic credentials and
// returns the status and body.
func httpDo(t *testing.T, a peers.Account, method, url, ctype, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.SetBasicAuth(a.Email, a.Password)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRollbackCopiesBackData cuts over an account whose data includes
// Sieve scripts and contacts (Dovecot and Radicale → Cyrus), then, as its
// user would on the target, stores a new Sieve script and a new contact
// there, and rolls back with "mailmig rollback": the prompt's change
// counts them per kind, the script is on Dovecot and the contact on
// Radicale with the target's bytes, the journal counts 2 objects copied
// back, and after the release a second cut-over succeeds (its verify
// finds nothing to object to).
func TestRollbackCopiesBackData(t *testing.T) {
	x := newE2EWith(t, 1, e2eOptions{Data: true})
	a := x.accts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src, err := openSieve(ctx, x.s.Dovecot.ManageSieve, a.Email, a.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := src.Put(ctx, "main", []byte("keep;\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := src.SetActive(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	if code, b := httpDo(t, a, "PUT", x.s.Radicale.HomeURL(a.Email)+"contacts/a.vcf", "text/vcard",
		"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:a-1\r\nFN:Anna\r\nN:Anna;;;;\r\nEND:VCARD\r\n"); code != http.StatusCreated {
		t.Fatalf("PUT at Radicale: %d %s", code, b)
	}
	x.cutOverAll()

	tgt, err := openSieve(ctx, x.s.Cyrus.ManageSieve, a.Email, a.Password)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	script := []byte("# made on cyrus\r\nkeep;\r\n")
	if err := tgt.Put(ctx, "neu", script); err != nil {
		t.Fatal(err)
	}
	card := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:n-1\r\nFN:Neu\r\nN:Neu;;;;\r\nEND:VCARD\r\n"
	if code, b := httpDo(t, a, "PUT", x.s.Cyrus.CardDAVURL(a.Email)+"contacts/n.vcf", "text/vcard", card); code != http.StatusCreated {
		t.Fatalf("PUT at Cyrus: %d %s", code, b)
	}

	out := x.cli(exitOK, "rollback", "-auto-approve", a.Email)
	if !strings.Contains(out, "copies back 1 Sieve script and 1 contact created or changed on cyrus after the cut-over to legacy first") {
		t.Errorf("the rollback does not count what it copies back per kind:\n%s", out)
	}
	got, err := src.Get(ctx, "neu")
	if err != nil || archive.Hash(got) != archive.Hash(script) {
		t.Errorf("the script on Dovecot: %q %v", got, err)
	}
	code, body := httpDo(t, a, "GET", x.s.Radicale.HomeURL(a.Email)+"contacts/n.vcf", "", "")
	if code != http.StatusOK || !strings.Contains(body, "UID:n-1") || !strings.Contains(body, "FN:Neu") {
		t.Errorf("the contact on Radicale: %d %q", code, body)
	}
	if j := readJournal(t, x.dir); !regexp.MustCompile(`"action":"rollback","outcome":"ok"[^\n]*"copied_back_objects":2`).MatchString(j) {
		t.Errorf("the journal does not record 2 objects copied back:\n%s", j)
	}
	x.cli(exitOK, "state", "release", a.Email)
	x.cutOverAll()
}
