package executor

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/plan"
)

func TestMovesFiles(t *testing.T) {
	wd := &plan.Endpoint{Protocol: plan.ProtoWebDAV, URL: "http://127.0.0.1:1/files/"}
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "a", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoIMAP}, wd}},
		{Name: "b", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}, wd}},
		{Name: "jmaponly", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoJMAP}}},
	}}
	pw := plan.NewSecret("pw")
	for name, tc := range map[string]struct {
		acct *plan.Account
		want bool
	}{
		"both webdav":     {&plan.Account{From: "a", To: "b", Password: pw, Data: []plan.DataKind{plan.DataFiles}}, true},
		"files not asked": {&plan.Account{From: "a", To: "b", Password: pw, Data: []plan.DataKind{plan.DataMail}}, false},
		"no password":     {&plan.Account{From: "a", To: "b", Data: []plan.DataKind{plan.DataFiles}}, false},
		// Over FileNode when the target's session offers it (at the step).
		"target jmap only": {&plan.Account{From: "a", To: "jmaponly", Password: pw, Data: []plan.DataKind{plan.DataFiles}}, true},
		"jmap source":      {&plan.Account{From: "jmaponly", To: "b", Data: []plan.DataKind{plan.DataFiles}}, true},
	} {
		if got := MovesFiles(m, tc.acct); got != tc.want {
			t.Errorf("%s: MovesFiles = %v, want %v", name, got, tc.want)
		}
	}
	for url, want := range map[string]string{
		"http://h/files/":                "/files/{user}/",
		"http://h/files":                 "/files/{user}/",
		"http://h/remote.php/{user}/dst": "/remote.php/{user}/dst",
	} {
		spec, err := filesSpec(&plan.Backend{Name: "x", Endpoints: []*plan.Endpoint{{Protocol: plan.ProtoWebDAV, URL: url}}}, "", &plan.Account{Address: "u@x"}, nil)
		if err != nil || spec.Path != want {
			t.Errorf("filesSpec(%s): %q, %v; want %q", url, spec.Path, err, want)
		}
	}
}

// TestFilesSteps runs the executor's import, export and verify for an
// account whose data includes files, one Apache folder to another: the
// files arrive and are counted as objects, a re-run counts none, and
// verify finds no mismatch.
func TestFilesSteps(t *testing.T) {
	s := peers.Get(t)
	acct := s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := s.WebDAV.HomeURL(acct.Email)
	for _, r := range []struct{ method, path, body string }{
		{"MKCOL", "src/", ""}, {"MKCOL", "src/Ordner%20%C3%BC/", ""},
		{"PUT", "src/Ordner%20%C3%BC/a.txt", "Ä"}, {"PUT", "src/b%25.bin", "\x00\x01"},
	} {
		req, _ := http.NewRequestWithContext(ctx, r.method, home+r.path, bytes.NewReader([]byte(r.body)))
		req.SetBasicAuth(acct.Email, acct.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s %s: %s", r.method, r.path, resp.Status)
		}
	}
	base := strings.TrimSuffix(s.WebDAV.URL, "/")
	m := &plan.Migration{Backends: []*plan.Backend{
		{Name: "legacy", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Dovecot.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/src/", TLS: plan.TLSNone}}},
		{Name: "cyrus", Endpoints: []*plan.Endpoint{
			{Protocol: plan.ProtoIMAP, Address: s.Cyrus.IMAP, TLS: plan.TLSNone},
			{Protocol: plan.ProtoWebDAV, URL: base + "/{user}/dst/", TLS: plan.TLSNone},
			{Protocol: plan.ProtoJMAP, URL: s.Cyrus.JMAPURL()}}},
	}}
	pa := &plan.Account{Address: acct.Email, From: "legacy", To: "cyrus", Password: plan.NewSecret(acct.Password),
		Data: []plan.DataKind{plan.DataMail, plan.DataFiles}}
	x := New(m, t.TempDir(), nil)
	job := &engine.Job{Account: pa, Source: engine.NewLimiter("legacy", 2, 0, 0), Target: engine.NewLimiter("cyrus", 2, 0, 0)}
	// 1 folder and 2 files each way.
	for i, want := range [][2]int64{{3, 3}, {0, 0}} {
		c, err := x.Import(ctx, job)
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
		if c.Objects != want[0] {
			t.Errorf("import %d: %d objects, want %d", i, c.Objects, want[0])
		}
		c, err = x.Export(ctx, job)
		if err != nil {
			t.Fatalf("export %d: %v", i, err)
		}
		if c.Objects != want[1] {
			t.Errorf("export %d: %d objects, want %d", i, c.Objects, want[1])
		}
	}
	c, err := x.Verify(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mismatches != 0 {
		t.Errorf("verify: %d mismatches", c.Mismatches)
	}
	// The refresh counts file changes at the source for the reasons:
	// nothing now, then one added and one deleted.
	if d, err := x.Detect(ctx, pa); err != nil || len(d.Items) != 0 {
		t.Errorf("detect without changes: %+v %v", d, err)
	}
	for _, r := range []struct{ method, path, body string }{{"PUT", "src/neu.txt", "neu"}, {"DELETE", "src/b%25.bin", ""}} {
		req, _ := http.NewRequestWithContext(ctx, r.method, home+r.path, bytes.NewReader([]byte(r.body)))
		req.SetBasicAuth(acct.Email, acct.Password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	d, err := x.Detect(ctx, pa)
	d.Known = true // what Observe sets
	if err != nil || len(d.Items) != 1 || d.Items[0] != (engine.DataDelta{Kind: plan.DataFiles, Changed: 2}) || !d.Any() {
		t.Errorf("detect after an add and a delete: %+v %v, want 2 files changed", d, err)
	}
}
