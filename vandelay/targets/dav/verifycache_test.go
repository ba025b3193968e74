package dav_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
)

// countingTarget counts the items a verify downloads from the real target.
type countingTarget struct {
	vandelay.DAVTarget
	gets atomic.Int64
}

func (c *countingTarget) Get(ctx context.Context, href string, like []byte) ([]byte, error) {
	c.gets.Add(1)
	return c.DAVTarget.Get(ctx, href, like)
}

// TestVerifyDAVRemembersEqual: the first verify downloads every item; a
// second, with nothing changed, downloads none (the target lists the
// same strong ETags); an item the user then edits on Cyrus changes its
// ETag and is downloaded again, and found different; a contact changed
// at the source and exported is downloaded again and found equal.
func TestVerifyDAVRemembersEqual(t *testing.T) {
	e := newEnv(t)
	card := func(uid, fn string) string {
		return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\nFN:" + fn + "\r\nN:" + fn + ";;;;\r\nEND:VCARD\r\n"
	}
	for _, n := range []string{"a", "b", "c"} {
		e.put(t, "contacts", n+".vcf", card(n+"-1", "Quelle "+n))
	}
	e.importOnce(t)
	if x := e.exportOnce(t); x.Put != 3 {
		t.Fatalf("export: %+v", x)
	}
	verify := func(step string, wantGets, wantMismatches int) {
		t.Helper()
		tg := &countingTarget{DAVTarget: e.target(t)}
		rep, err := vandelay.VerifyDAV(e.ctx, e.a, e.kind, tg)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if int(tg.gets.Load()) != wantGets || len(rep.Mismatches) != wantMismatches {
			t.Errorf("%s: %d items downloaded, %d mismatches %+v; want %d and %d", step, tg.gets.Load(), len(rep.Mismatches), rep.Mismatches, wantGets, wantMismatches)
		}
	}
	verify("first verify", 3, 0)
	verify("no change", 0, 0)
	target := e.s.Cyrus.CardDAVURL(e.acct.Email) + "contacts/"
	mustDo(t, http.StatusNoContent, "PUT", target+"b.vcf", e.acct.Email, e.acct.Password, card("b-1", "Am Ziel bearbeitet"), "Content-Type", "text/vcard")
	verify("b edited on the target", 1, 1)
	// b is not remembered as equal: asked again, it is downloaded again.
	verify("b still edited", 1, 1)
	mustDo(t, http.StatusNoContent, "PUT", target+"b.vcf", e.acct.Email, e.acct.Password, card("b-1", "Quelle b"), "Content-Type", "text/vcard")
	verify("b put back as it was", 1, 0)
	e.put(t, "contacts", "c.vcf", card("c-1", "Quelle c geändert"))
	e.importOnce(t)
	if x := e.exportOnce(t); x.Updated != 1 {
		t.Fatalf("export of the edit: %+v", x)
	}
	verify("c edited at the source and exported", 1, 0)
	verify("no change again", 0, 0)
}
