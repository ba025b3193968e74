package executor

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
)

// davDo sends one HTTP request with the account's Basic credentials and
// fails the test unless the status is one of ok.
func davDo(t *testing.T, ctx context.Context, a peers.Account, method, url, ctype, body string, ok ...int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	req.SetBasicAuth(a.Email, a.Password)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range ok {
		if resp.StatusCode == c {
			return
		}
	}
	t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
}

func vcard(uid, name string) string {
	return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\nFN:" + name + "\r\nN:" + name + ";;;;\r\nEND:VCARD\r\n"
}

func vevent(uid, summary string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:" + uid + "\r\nDTSTAMP:20261201T100000Z\r\nDTSTART:20261210T100000Z\r\nDURATION:PT1H\r\nSUMMARY:" + summary + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
}

// dataBackends is Dovecot + Radicale + Apache (src/) → Cyrus (its own
// ManageSieve, CalDAV and CardDAV) + Apache (dst/).
func dataBackends(s *peers.Set) *plan.Migration {
	base := strings.TrimSuffix(s.WebDAV.URL, "/")
	cyrusDAV := "http://" + s.Cyrus.HTTP + "/"
	return &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoManageSieve, Address: s.Dovecot.ManageSieve, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: s.Radicale.URL, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: s.Radicale.URL, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/src/", TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoManageSieve, Address: s.Cyrus.ManageSieve, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCardDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoCalDAV, URL: cyrusDAV, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/dst/", TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
}

// sieveAt logs in to a ManageSieve server as the account.
func sieveAt(t *testing.T, ctx context.Context, addr string, a peers.Account) vandelay.SieveTarget {
	t.Helper()
	st, err := sources.SieveTargets["managesieve"](ctx, &sources.Spec{
		Server: vandelay.Server{Address: addr, TLS: vandelay.TLSNone, AllowCleartext: true},
		Login:  vandelay.Login{User: a.Email, Password: a.Password}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// sieveHashes returns every script's SHA-256 and the active one.
func sieveHashes(t *testing.T, ctx context.Context, st vandelay.SieveTarget) (map[string]string, string) {
	t.Helper()
	l, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, active := map[string]string{}, ""
	for _, r := range l {
		b, err := st.Get(ctx, r.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[r.Name] = archive.Hash(b)
		if r.Active {
			active = r.Name
		}
	}
	return out, active
}

// davHashes returns, per item name (the last path segment, unescaped),
// the SHA-256 after vandelay.Normalize of every item in the account's
// collections of kind at a backend of m; the collections' names too.
func davHashes(t *testing.T, ctx context.Context, x *Executor, acct *plan.Account, backend string, k plan.DataKind) map[string]string {
	t.Helper()
	dk := davKinds[k]
	login := acct.TargetLogin
	if backend == acct.From {
		login = acct.SourceLogin
	}
	spec, err := davSpec(x.m.Backend(backend), dk.proto, login, acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := sources.DAVTargets[dk.kind](ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := dt.Collections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cols {
		ms, err := dt.Members(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		cname := lastSegment(c)
		out[cname+"/"] = ""
		for h := range ms {
			b, err := dt.Get(ctx, h, nil)
			if err != nil {
				t.Fatal(err)
			}
			out[cname+"/"+lastSegment(h)] = archive.Hash([]byte(sortedLines(vandelay.Normalize(dk.coll, b))))
		}
	}
	return out
}

// sortedLines returns the item's content lines sorted: Radicale
// re-serialises what it stores (an event's DTSTART moves before its
// DTSTAMP), so the same item compares equal only line by line.
func sortedLines(s string) string {
	l := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	sort.Strings(l)
	return strings.Join(l, "\n")
}

func lastSegment(h string) string {
	h = strings.TrimSuffix(h, "/")
	return h[strings.LastIndex(h, "/")+1:]
}

// fileHashes returns the SHA-256 of every file (and "" for every folder)
// of the account's tree at a backend of m.
func fileHashes(t *testing.T, ctx context.Context, x *Executor, acct *plan.Account, backend string) map[string]string {
	t.Helper()
	spec, err := filesSpec(x.m.Backend(backend), "", acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := sources.FileTargets["webdav"](ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ft.Walk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range l {
		if f.IsDir {
			out[f.Path+"/"] = ""
			continue
		}
		r, err := ft.Open(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		out[f.Path] = archive.Hash(b)
	}
	return out
}

// fileCount is the number of files and folders in the account's tree at
// a backend (one PROPFIND).
func fileCount(t *testing.T, ctx context.Context, x *Executor, acct *plan.Account, backend string) int {
	t.Helper()
	spec, err := filesSpec(x.m.Backend(backend), "", acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := sources.FileTargets["webdav"](ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ft.Walk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

// copyBackFixture migrates an account with Sieve, contacts, calendars and
// files Dovecot/Radicale/Apache → Cyrus/Apache (import and export), for
// the copy-back tests.
type copyBackFixture struct {
	s    *peers.Set
	a    peers.Account
	x    *Executor
	acct *plan.Account
	job  *engine.Job
}

func newCopyBackFixture(t *testing.T, ctx context.Context, dir string) *copyBackFixture {
	s := peers.Get(t)
	a := s.NewAccount(t)
	src := sieveAt(t, ctx, s.Dovecot.ManageSieve, a)
	if err := src.Put(ctx, "main", []byte("# main\r\nkeep;\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := src.SetActive(ctx, "main"); err != nil {
		t.Fatal(err)
	}
	home := s.Radicale.HomeURL(a.Email)
	davDo(t, ctx, a, "PUT", home+"contacts/a.vcf", "text/vcard", vcard("a-1", "Anna"), http.StatusCreated)
	davDo(t, ctx, a, "PUT", home+"calendar/e.ics", "text/calendar", vevent("e-1@example.test", "Termin"), http.StatusCreated)
	fhome := s.WebDAV.HomeURL(a.Email)
	davDo(t, ctx, a, "MKCOL", fhome+"src/", "", "", http.StatusCreated)
	davDo(t, ctx, a, "MKCOL", fhome+"dst/", "", "", http.StatusCreated)
	davDo(t, ctx, a, "PUT", fhome+"src/x.txt", "", "x eins", http.StatusCreated)

	acct := &plan.Account{Address: a.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(a.Password),
		Data: []plan.DataKind{plan.DataMail, plan.DataSieve, plan.DataContacts, plan.DataCalendars, plan.DataFiles}}
	x := New(dataBackends(s), dir, nil)
	job := &engine.Job{Account: acct, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0),
		Change: &engine.Change{Account: a.Email, Action: engine.Rollback, Phase: state.PhaseDone, Source: "legacy", Target: "cyrus"}}
	if _, err := x.Import(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Export(ctx, job); err != nil {
		t.Fatal(err)
	}
	return &copyBackFixture{s: s, a: a, x: x, acct: acct, job: job}
}

// TestCopyBackData cuts an account with Sieve scripts, contacts,
// calendars and files over (import and export), then changes things on
// the target as its user would: a new Sieve script made active and the
// old one edited (Cyrus's ManageSieve), a new contact and an edited event
// (Cyrus's CardDAV and CalDAV), a new address book with one contact, a
// new file, an edited file and a new folder with a file (Apache). The
// rollback's count names each kind; the copy-back writes each item to the
// source (Dovecot's ManageSieve, Radicale, Apache) hash-equal with the
// target, the new script active; a second copy-back copies nothing; and
// a later catch-up (import, export) and verify converge with 0
// mismatches and 0 conflicts, every item once on each side.
func TestCopyBackData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := newCopyBackFixture(t, ctx, t.TempDir())
	s, a, x, acct := f.s, f.a, f.x, f.acct

	// The user's changes on the target after the cut-over.
	tgt := sieveAt(t, ctx, s.Cyrus.ManageSieve, a)
	if err := tgt.Put(ctx, "main", []byte("# main, edited on cyrus\r\nkeep;\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := tgt.Put(ctx, "vacation", []byte("require \"vacation\";\r\nvacation \"away\";\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := tgt.SetActive(ctx, "vacation"); err != nil {
		t.Fatal(err)
	}
	books := s.Cyrus.CardDAVURL(a.Email)
	cals := s.Cyrus.CalDAVURL(a.Email)
	davDo(t, ctx, a, "PUT", books+"contacts/n.vcf", "text/vcard", vcard("n-1", "Neu"), http.StatusCreated)
	davDo(t, ctx, a, "PUT", cals+"calendar/e.ics", "text/calendar", vevent("e-1@example.test", "Termin verschoben"), http.StatusNoContent, http.StatusCreated)
	davDo(t, ctx, a, "MKCOL", books+"work/", "", "", http.StatusCreated)
	davDo(t, ctx, a, "PUT", books+"work/w.vcf", "text/vcard", vcard("w-1", "Werner"), http.StatusCreated)
	fhome := s.WebDAV.HomeURL(a.Email)
	davDo(t, ctx, a, "PUT", fhome+"dst/x.txt", "", "x zwei", http.StatusNoContent, http.StatusCreated)
	davDo(t, ctx, a, "PUT", fhome+"dst/neu.txt", "", "neu", http.StatusCreated)
	davDo(t, ctx, a, "MKCOL", fhome+"dst/Ordner%20%C3%BC/", "", "", http.StatusCreated)
	davDo(t, ctx, a, "PUT", fhome+"dst/Ordner%20%C3%BC/o.txt", "", "ö", http.StatusCreated)

	cb, err := x.CountCopyBack(ctx, acct, "legacy", "cyrus")
	if err != nil {
		t.Fatal(err)
	}
	if want := (engine.CopyBack{Sieve: 2, Contacts: 2, Calendars: 1, Files: 3}); cb != want {
		t.Errorf("count: %+v, want %+v", cb, want)
	}
	c, err := x.CopyBack(ctx, f.job)
	if err != nil {
		t.Fatal(err)
	}
	if c.CopiedBackObjects != 8 {
		t.Errorf("copied back %d objects, want 8 (%+v)", c.CopiedBackObjects, c)
	}
	checkSame := func(when string) {
		t.Helper()
		src := sieveAt(t, ctx, s.Dovecot.ManageSieve, a)
		sh, sa := sieveHashes(t, ctx, src)
		th, ta := sieveHashes(t, ctx, tgt)
		if fmt.Sprint(sh) != fmt.Sprint(th) || sa != ta || sa != "vacation" {
			t.Errorf("%s: sieve at the source %v (active %q), at the target %v (active %q)", when, sh, sa, th, ta)
		}
		for _, k := range []plan.DataKind{plan.DataContacts, plan.DataCalendars} {
			from, to := davHashes(t, ctx, x, acct, "legacy", k), davHashes(t, ctx, x, acct, "cyrus", k)
			for name, h := range to {
				if strings.HasSuffix(name, "/") && len(to) > 0 && from[name] != h && !strings.HasPrefix(name, "Default/") {
					t.Errorf("%s: %s collection %s not at the source", when, k, name)
				}
				if !strings.HasSuffix(name, "/") && from[name] != h {
					t.Errorf("%s: %s %s: source %.12s, target %.12s", when, k, name, from[name], h)
				}
			}
		}
		ff, tf := fileHashes(t, ctx, x, acct, "legacy"), fileHashes(t, ctx, x, acct, "cyrus")
		if fmt.Sprint(ff) != fmt.Sprint(tf) {
			t.Errorf("%s: files at the source %v, at the target %v", when, ff, tf)
		}
	}
	checkSame("after the copy-back")

	// Convergent: nothing left to count or copy.
	if cb, err := x.CountCopyBack(ctx, acct, "legacy", "cyrus"); err != nil || cb != (engine.CopyBack{}) {
		t.Errorf("count after the copy-back: %+v %v", cb, err)
	}
	if c, err := x.CopyBack(ctx, f.job); err != nil || c.CopiedBackObjects != 0 {
		t.Errorf("second copy-back: %+v %v", c, err)
	}
	// The next cut-over's steps: the copied items come into the archive
	// from the source and match the target.
	for i := 0; i < 2; i++ {
		if _, err := x.Import(ctx, f.job); err != nil {
			t.Fatal(err)
		}
		c, err := x.Export(ctx, f.job)
		if err != nil {
			t.Fatal(err)
		}
		if c.Conflicts != 0 {
			t.Errorf("export %d after the rollback: %d conflicts", i, c.Conflicts)
		}
	}
	c, err = x.Verify(ctx, f.job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mismatches != 0 || c.Conflicts != 0 {
		t.Errorf("verify after the rollback: %d mismatches, %d conflicts", c.Mismatches, c.Conflicts)
	}
	checkSame("after the next catch-up")
	if cb, err := x.CountCopyBack(ctx, acct, "legacy", "cyrus"); err != nil || cb != (engine.CopyBack{}) {
		t.Errorf("count after the catch-up: %+v %v", cb, err)
	}
}

// TestCopyBackDataKilled SIGKILLs a copy-back (a child process running
// the executor's CopyBack) while it writes 40 files created on the target
// back to the source, then runs it again: every file is at the source
// once, hash-equal with the target, and a third run copies nothing.
func TestCopyBackDataKilled(t *testing.T) {
	if dir := os.Getenv("MAILMIG_COPYBACK_CHILD"); dir != "" {
		// The child: the rollback's copy-back, until it ends or is killed.
		email, pw := os.Getenv("MAILMIG_COPYBACK_USER"), os.Getenv("MAILMIG_COPYBACK_PASSWORD")
		acct := &plan.Account{Address: email, From: "legacy", To: "cyrus", Password: plan.NewSecret(pw),
			Data: []plan.DataKind{plan.DataMail, plan.DataSieve, plan.DataContacts, plan.DataCalendars, plan.DataFiles}}
		x := New(dataBackends(peers.Get(t)), dir, nil)
		job := &engine.Job{Account: acct, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0),
			Change: &engine.Change{Account: email, Action: engine.Rollback, Phase: state.PhaseDone, Source: "legacy", Target: "cyrus"}}
		if _, err := x.CopyBack(context.Background(), job); err != nil {
			t.Fatal(err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	f := newCopyBackFixture(t, ctx, dir)
	const n = 40
	fhome := f.s.WebDAV.HomeURL(f.a.Email)
	for i := 0; i < n; i++ {
		davDo(t, ctx, f.a, "PUT", fmt.Sprintf("%sdst/neu-%02d.txt", fhome, i), "", strings.Repeat(fmt.Sprint(i), 100+i), http.StatusCreated)
	}
	before := fileCount(t, ctx, f.x, f.acct, "legacy")

	cmd := exec.Command(os.Args[0], "-test.run=^TestCopyBackDataKilled$")
	cmd.Env = append(os.Environ(), "MAILMIG_COPYBACK_CHILD="+dir, "MAILMIG_COPYBACK_USER="+f.a.Email, "MAILMIG_COPYBACK_PASSWORD="+f.a.Password,
		// The child uses this set of servers, never one of its own.
		peers.EnvRoot+"="+f.s.Root, fmt.Sprintf("%s=%d", peers.EnvOffset, f.s.Offset), peers.EnvKeep+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killed := false
	for deadline := time.Now().Add(120 * time.Second); !killed && time.Now().Before(deadline); {
		select {
		case err := <-exited:
			t.Fatalf("the copy-back finished before the kill (%v):\n%s", err, out.String())
		case <-time.After(5 * time.Millisecond): // polling the other process's progress
		}
		if now := fileCount(t, ctx, f.x, f.acct, "legacy"); now > before+4 {
			cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			killed = true
		}
	}
	if !killed {
		t.Fatalf("the copy-back never started:\n%s", out.String())
	}
	mid := fileCount(t, ctx, f.x, f.acct, "legacy") - before
	t.Logf("killed after %d of %d files were copied back", mid, n)

	c, err := f.x.CopyBack(ctx, f.job)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the second run copied %d", c.CopiedBackObjects)
	if c.CopiedBackObjects < int64(n-mid) || c.CopiedBackObjects > int64(n-mid+1) {
		// One file may have been written by the killed run after the
		// last poll, or before its record: at most one is written again.
		t.Errorf("the second run copied %d files, want %d (or one more)", c.CopiedBackObjects, n-mid)
	}
	from, to := fileHashes(t, ctx, f.x, f.acct, "legacy"), fileHashes(t, ctx, f.x, f.acct, "cyrus")
	if fmt.Sprint(from) != fmt.Sprint(to) {
		t.Errorf("files at the source %v, at the target %v", from, to)
	}
	if c, err := f.x.CopyBack(ctx, f.job); err != nil || c.CopiedBackObjects != 0 {
		t.Errorf("third run: %+v %v", c, err)
	}
}
