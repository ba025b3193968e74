package jmap_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	jmapsrc "github.com/mailmig/mailmig/vandelay/sources/jmap"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
)

// TestChain is the upgrade path of the issue: a legacy Dovecot account is
// migrated onto Cyrus account A (IMAP source → archive → JMAP export),
// then A, read by the JMAP source, onto Cyrus account B. Every message is
// hash-equal at each step, with the same keywords, roles, subscriptions
// and hierarchy.
func TestChain(t *testing.T) {
	s := peers.Get(t)
	ctx := context.Background()
	legacy := s.NewAccount(t) // its Dovecot mailbox is the source, its Cyrus one is A
	accountB := s.NewAccount(t)

	c := vandelaytest.DialIMAP(t, s.Dovecot.IMAP, legacy.Email, legacy.Password)
	folders := []string{"INBOX", "Sent", "Archive", "Work", "Work/Reports 2024", "Entwürfe", "日本語"}
	for _, f := range folders[3:] {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		if f != "Entwürfe" {
			if err := c.Subscribe(f).Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	flagSets := [][]imap.Flag{nil, {imap.FlagSeen}, {imap.FlagSeen, imap.FlagFlagged}, {imap.FlagAnswered}, {"$Forwarded"}, {imap.FlagSeen, "projekt-x"}}
	for i := range 40 {
		date := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(20000)) * time.Hour)
		body := message(5, i, 300+rng.IntN(9000))
		vandelaytest.AppendIMAP(t, c, folders[rng.IntN(len(folders))], body, date, flagSets[rng.IntN(len(flagSets))]...)
		if i == 4 {
			vandelaytest.AppendIMAP(t, c, "Archive", body, date, imap.FlagSeen)
		}
	}

	// Dovecot → archive 1 → Cyrus A.
	a1 := vandelaytest.OpenArchive(t)
	isrc, err := imapsrc.New(&imapsrc.Options{Server: vandelay.Server{Address: s.Dovecot.IMAP, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: legacy.Email, Password: legacy.Password}})
	if err != nil {
		t.Fatal(err)
	}
	importOnce(t, a1, isrc)
	exportTo(t, a1, s, legacy)

	// Cyrus A → (JMAP source) archive 2 → Cyrus B.
	a2 := vandelaytest.OpenArchive(t)
	jsrc, err := jmapsrc.New(&jmapsrc.Options{URL: s.Cyrus.JMAPURL(), Login: vandelay.Login{User: legacy.Email, Password: legacy.Password}})
	if err != nil {
		t.Fatal(err)
	}
	importOnce(t, a2, jsrc)
	wantA := vandelaytest.SnapshotIMAP(t, s.Cyrus.IMAP, legacy.Email, legacy.Password)
	vandelaytest.Check(t, a2, wantA)
	if d := diffArchives(t, a1, a2); len(d) > 0 {
		t.Errorf("archive of Dovecot and archive of Cyrus A differ:\n%s", strings.Join(d, "\n"))
	}
	exportTo(t, a2, s, accountB)
	wantB := vandelaytest.SnapshotIMAP(t, s.Cyrus.IMAP, accountB.Email, accountB.Password)
	if d := diffWants(wantA, wantB); len(d) > 0 {
		t.Errorf("Cyrus A and Cyrus B differ:\n%s", strings.Join(d, "\n"))
	}
	if n := wantB.Count(); n != 40 {
		t.Errorf("Cyrus B holds %d messages, want 40", n)
	}
	_ = ctx
}

func exportTo(t *testing.T, a *archive.Archive, s *peers.Set, acct peers.Account) {
	t.Helper()
	ctx := context.Background()
	tg, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: s.Cyrus.JMAPURL(), Auth: vandelay.BasicAuth{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := vandelay.Export(ctx, a, tg, nil)
	if err != nil || res.Partial() {
		t.Fatalf("export to %s: %v %+v", acct.Email, err, res)
	}
}

// diffArchives compares two archives message by message: hash, keywords
// and mailbox paths.
func diffArchives(t *testing.T, a, b *archive.Archive) []string {
	t.Helper()
	view := func(x *archive.Archive) map[string]string {
		ctx := context.Background()
		mbs, err := x.Mailboxes(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		path := map[int64]string{}
		for _, m := range mbs {
			path[m.ID] = m.Path
		}
		out := map[string]string{}
		for m, err := range x.Messages(ctx, nil) {
			if err != nil {
				t.Fatal(err)
			}
			var ps []string
			for _, id := range m.MailboxIDs {
				ps = append(ps, path[id])
			}
			sort.Strings(ps)
			out[m.Blob] = fmt.Sprintf("%q in %q at %s", m.Keywords, ps, m.ReceivedAt.UTC().Format(time.RFC3339))
		}
		return out
	}
	va, vb := view(a), view(b)
	var d []string
	for h, x := range va {
		if y, ok := vb[h]; !ok {
			d = append(d, "missing "+h[:12])
		} else if x != y {
			d = append(d, fmt.Sprintf("%s: %s, want %s", h[:12], y, x))
		}
	}
	for h := range vb {
		if _, ok := va[h]; !ok {
			d = append(d, "extra "+h[:12])
		}
	}
	sort.Strings(d)
	return d
}

// diffWants compares two IMAP views of accounts: mailboxes, roles,
// subscriptions, and per mailbox the messages' hashes and keywords.
func diffWants(a, b *vandelaytest.Want) []string {
	var d []string
	for p, x := range a.Mailboxes {
		y, ok := b.Mailboxes[p]
		if !ok {
			d = append(d, "missing mailbox "+p)
			continue
		}
		if x.Role != y.Role || x.Subscribed != y.Subscribed {
			d = append(d, fmt.Sprintf("mailbox %s: role %q subscribed %v, want %q %v", p, y.Role, y.Subscribed, x.Role, x.Subscribed))
		}
		for h, m := range x.Messages {
			n, ok := y.Messages[h]
			if !ok {
				d = append(d, fmt.Sprintf("%s: missing %s", p, h[:12]))
			} else if strings.Join(m.Keywords, " ") != strings.Join(n.Keywords, " ") || !m.ReceivedAt.Equal(n.ReceivedAt) {
				d = append(d, fmt.Sprintf("%s: %s has %q %v, want %q %v", p, h[:12], n.Keywords, n.ReceivedAt, m.Keywords, m.ReceivedAt))
			}
		}
		for h := range y.Messages {
			if _, ok := x.Messages[h]; !ok {
				d = append(d, fmt.Sprintf("%s: extra %s", p, h[:12]))
			}
		}
	}
	for p := range b.Mailboxes {
		if _, ok := a.Mailboxes[p]; !ok {
			d = append(d, "extra mailbox "+p)
		}
	}
	sort.Strings(d)
	return d
}
