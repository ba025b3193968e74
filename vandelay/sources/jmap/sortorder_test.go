package jmap_test

import (
	"context"
	"testing"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestSortOrder: a Mailbox sortOrder set on Cyrus account A is kept in the
// archive by the JMAP source (migration 0006) and set on Cyrus account B
// by the export; a changed order is carried at the next run, and a re-run
// changes nothing.
func TestSortOrder(t *testing.T) {
	s := peers.Get(t)
	ctx := context.Background()
	a, b := s.NewAccount(t), s.NewAccount(t)
	client := func(acct peers.Account) (*jc.Client, string) {
		tg, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: s.Cyrus.JMAPURL(), Auth: vandelay.BasicAuth{User: acct.Email, Password: acct.Password}})
		if err != nil {
			t.Fatal(err)
		}
		return tg.Client, tg.AccountID
	}
	ca, idA := client(a)
	set := func(args map[string]any) *jc.SetResponse {
		t.Helper()
		r, err := jc.Set(ctx, ca, jc.UsingMail, idA, "Mailbox", args)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.NotCreated)+len(r.NotUpdated) > 0 {
			t.Fatalf("Mailbox/set at A: %+v %+v", r.NotCreated, r.NotUpdated)
		}
		return r
	}
	r := set(map[string]any{"create": map[string]any{
		"w": map[string]any{"name": "Work", "sortOrder": 7},
		"p": map[string]any{"name": "Private", "sortOrder": 3},
	}})
	work := r.CreatedID("w")

	ar := vandelaytest.OpenArchive(t)
	src, err := jmapsrc.New(&jmapsrc.Options{URL: s.Cyrus.JMAPURL(), Login: vandelay.Login{User: a.Email, Password: a.Password}})
	if err != nil {
		t.Fatal(err)
	}
	importOnce(t, ar, src)
	orders, err := ar.MailboxSortOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]int{}
	mbs, _ := ar.Mailboxes(ctx, nil)
	for _, m := range mbs {
		if o, ok := orders[m.ID]; ok {
			byPath[m.Path] = o
		}
	}
	if byPath["Work"] != 7 || byPath["Private"] != 3 {
		t.Fatalf("archived sort orders %v", byPath)
	}

	cb, idB := client(b)
	atB := func() map[string]int {
		t.Helper()
		boxes, _, err := cb.Mailboxes(ctx, idB)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, m := range boxes {
			out[m.Name] = m.SortOrder
		}
		return out
	}
	exportTo(t, ar, s, b)
	if got := atB(); got["Work"] != 7 || got["Private"] != 3 {
		t.Fatalf("sort orders at B %v", got)
	}

	set(map[string]any{"update": map[string]any{work: map[string]any{"sortOrder": 1}}})
	importOnce(t, ar, src)
	exportTo(t, ar, s, b)
	if got := atB(); got["Work"] != 1 || got["Private"] != 3 {
		t.Fatalf("changed sort order at B %v", got)
	}
	tg, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: s.Cyrus.JMAPURL(), Auth: vandelay.BasicAuth{User: b.Email, Password: b.Password}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := vandelay.Export(ctx, ar, tg, nil)
	if err != nil || res.MailboxesUpdated != 0 || res.MailboxesCreated != 0 {
		t.Fatalf("re-run: %+v %v", res, err)
	}
}
