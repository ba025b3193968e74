package graph_test

import (
	"context"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/internal/recorded"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
	"github.com/mailmig/mailmig/vandelay/sources/exchange/graph"
	"github.com/mailmig/mailmig/vandelay/vandelaytest"
	"github.com/mailmig/mailmig/vandelay/verify"
)

func TestMain(m *testing.M) { peers.Main(m) }

// TestGraphToCyrus exports an archive filled from the Graph fixtures onto
// the real Cyrus, like any other source: after the first import and after
// the second (moves, re-flags, a deletion, a rename), verify finds every
// message hash-equal with the right mailboxes and keywords, and an export
// with nothing new uploads nothing.
func TestGraphToCyrus(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := recorded.New(t, "testdata/graph-run1.txtar")
	var sl sleeps
	a := vandelaytest.OpenArchive(t)
	vandelay.WarmUpIMAP(ctx, s.Cyrus.IMAP, acct.Email, acct.Password, nil, nil)
	export := func(step string) *vandelay.ExportResult {
		tgt, err := vandelay.OpenTarget(ctx, &vandelay.TargetOptions{URL: s.Cyrus.JMAPURL(), Auth: vandelay.BasicAuth{User: acct.Email, Password: acct.Password}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := vandelay.Export(ctx, a, tgt, nil)
		if err != nil {
			t.Fatalf("%s: export: %v", step, err)
		}
		rep, err := verify.Target(ctx, a, tgt.Client, tgt.AccountID, nil)
		if err != nil {
			t.Fatalf("%s: verify: %v", step, err)
		}
		if !rep.OK() || rep.HashEqual != rep.ArchiveEmails || rep.ArchiveEmails == 0 {
			t.Errorf("%s: archive and Cyrus differ: %d of %d hash-equal, mismatches %v", step, rep.HashEqual, rep.ArchiveEmails, rep.Mismatches)
		}
		return res
	}
	importOnce(t, a, options(srv, &sl))
	if res := export("first import"); res.EmailsImported != 6 {
		t.Errorf("first export imported %d emails, want 6", res.EmailsImported)
	}
	srv.Load("testdata/graph-run2.txtar")
	importOnce(t, a, options(srv, &sl))
	if res := export("second import"); res.Uploads != 2 || res.EmailsDestroyed != 1 {
		t.Errorf("second export: %d uploads, %d destroyed; want the 2 new messages and the deleted one", res.Uploads, res.EmailsDestroyed)
	}
	if res := export("no change"); res.Uploads != 0 || res.EmailsImported != 0 || res.EmailsUpdated != 0 {
		t.Errorf("export with nothing new did work: %+v", res)
	}

	// Contacts and calendars go onto Cyrus's CardDAV and CalDAV (the
	// fallback targets) and compare equal after Cyrus's own rewrites.
	srv.Load("testdata/graph-dav-run1.txtar")
	for _, k := range []struct {
		kind, target string
		mk           func(*graph.Options) (*graph.DAV, error)
		items        int
	}{{archive.CollectionAddressBook, "carddav", graph.NewContacts, 3}, {archive.CollectionCalendar, "caldav", graph.NewCalendars, 3}} {
		src, err := k.mk(options(srv, &sl))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := vandelay.ImportDAV(ctx, src, a, nil); err != nil {
			t.Fatal(err)
		}
		tgt, err := sources.DAVTargets[k.target](ctx, &sources.Spec{
			Server: vandelay.Server{Address: s.Cyrus.HTTP, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := vandelay.ExportDAV(ctx, a, k.kind, tgt, nil)
		if err != nil {
			t.Fatalf("%s export: %v", k.target, err)
		}
		if res.Put != k.items || len(res.Refused) > 0 {
			t.Errorf("%s export: %d put, refused %v; want %d", k.target, res.Put, res.Refused, k.items)
		}
		rep, err := vandelay.VerifyDAV(ctx, a, k.kind, tgt)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Mismatches) > 0 {
			t.Errorf("%s verify: %v", k.target, rep.Mismatches)
		}
		tgt.Close()
	}

	// The inbox rules' Sieve script is stored and activated by Cyrus's
	// ManageSieve, which checks its syntax and extensions.
	srv.Load("testdata/graph-rules.txtar")
	rules, err := graph.NewRules(options(srv, &sl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vandelay.ImportSieve(ctx, rules, a, nil); err != nil {
		t.Fatal(err)
	}
	st, err := sources.SieveTargets["managesieve"](ctx, &sources.Spec{
		Server: vandelay.Server{Address: s.Cyrus.ManageSieve, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: acct.Email, Password: acct.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sres, err := vandelay.ExportSieve(ctx, a, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sres.Put != 1 || sres.Activated != 1 || len(sres.Refused) > 0 {
		t.Errorf("sieve export: %+v; want the rules script stored and active", sres)
	}
}
