package dav_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/corpus"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/takeout"
	"github.com/mailmig/mailmig/vandelay/targets/dav"
	"github.com/mailmig/mailmig/vandelay/targets/webdav"
)

// TestTakeoutToCyrus carries a Takeout's calendars and contacts onto
// Cyrus's CalDAV and CardDAV and its Drive onto an Apache WebDAV folder:
// every object and file arrives and verifies (calendars and contacts
// after the documented Cyrus normalisation, files by SHA-256), and a
// second export changes nothing.
func TestTakeoutToCyrus(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var b bytes.Buffer
	if err := corpus.WriteTakeoutData(&b, "", ""); err != nil {
		t.Fatal(err)
	}
	zipPath := filepath.Join(dir, "takeout.zip")
	if err := os.WriteFile(zipPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, filepath.Join(dir, "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	o := &takeout.DataOptions{Path: zipPath, User: acct.Email}
	cal, _ := takeout.NewCalendars(o)
	cards, _ := takeout.NewContacts(o)
	drive, _ := takeout.NewDrive(o)
	for _, src := range []vandelay.DAVSource{cal, cards} {
		if r, err := vandelay.ImportDAV(ctx, src, a, nil); err != nil || r.Added == 0 {
			t.Fatalf("import %s: %+v %v", src.Kind(), r, err)
		}
	}
	if r, err := vandelay.ImportFiles(ctx, drive, a, nil); err != nil || r.Added != 10 {
		t.Fatalf("import drive: %+v %v", r, err)
	}
	for _, kind := range []string{archive.CollectionCalendar, archive.CollectionAddressBook} {
		tg, err := dav.Open(ctx, &dav.Options{
			Server: vandelay.Server{Address: s.Cyrus.HTTP, TLS: vandelay.TLSNone, AllowCleartext: true},
			Login:  vandelay.Login{User: acct.Email, Password: acct.Password}, CalDAV: kind == archive.CollectionCalendar,
		})
		if err != nil {
			t.Fatal(err)
		}
		x, err := vandelay.ExportDAV(ctx, a, kind, tg, nil)
		if err != nil || len(x.Refused) != 0 || len(x.Conflicts) != 0 || x.Put == 0 {
			t.Fatalf("export %s: %+v %v", kind, x, err)
		}
		rep, err := vandelay.VerifyDAV(ctx, a, kind, tg)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rep.Mismatches {
			t.Errorf("verify %s: %s %s", kind, m.Kind, m.Href)
		}
		if x, err := vandelay.ExportDAV(ctx, a, kind, tg, nil); err != nil || x.Changes() != 0 {
			t.Errorf("second export %s: %+v %v", kind, x, err)
		}
	}
	u, _ := url.Parse(s.WebDAV.URL)
	ft, err := webdav.Open(ctx, &webdav.Options{Server: vandelay.Server{Address: u.Host, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login: vandelay.Login{User: acct.Email, Password: acct.Password}, Path: "/files/{user}/Drive/"})
	if err != nil {
		t.Fatal(err)
	}
	if x, err := vandelay.ExportFiles(ctx, a, ft, nil); err != nil || x.Put != 5 || x.Folders != 5 {
		t.Fatalf("export drive: %+v %v", x, err)
	}
	rep, err := vandelay.VerifyFiles(ctx, a, ft)
	if err != nil || len(rep.Mismatches) != 0 || rep.Matched != 10 {
		t.Errorf("verify drive: %+v %v", rep, err)
	}
}
