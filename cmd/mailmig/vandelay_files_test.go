package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay/archive"
)

func webdavDo(t *testing.T, ctx context.Context, a peers.Account, method, u string, body []byte) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	req.SetBasicAuth(a.Email, a.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d", method, u, resp.StatusCode)
	}
	return b
}

// countLog counts the lines of Apache's access log with method and
// path prefix.
func countLog(t *testing.T, s *peers.Set, method, prefix string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.WebDAV.Base, "log", "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(`"`+method+" "+prefix))
}

// TestVandelayWebDAVKilled runs "mailmig vandelay import webdav" and
// "export-webdav" as processes, kills each with SIGKILL after a number
// of GETs (PUTs) seen in Apache's log, then lets them finish: every file
// once in the archive and at the target, equal by SHA-256, and a re-run
// copies nothing.
func TestVandelayWebDAVKilled(t *testing.T) {
	s := needPeers(t)
	src, tgt := s.NewAccount(t), s.NewAccount(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := s.WebDAV.HomeURL(src.Email)
	webdavDo(t, ctx, src, "MKCOL", base+"Ordner%20%C3%A4/", nil)
	want := map[string]string{}
	for i := range 60 {
		b := make([]byte, 20000+i)
		rand.Read(b)
		name := fmt.Sprintf("Ordner ä/f%02d.bin", i)
		webdavDo(t, ctx, src, "PUT", base+"Ordner%20%C3%A4/"+url.PathEscape(fmt.Sprintf("f%02d.bin", i)), b)
		h := sha256.Sum256(b)
		want[name] = hex.EncodeToString(h[:])
	}
	db := filepath.Join(t.TempDir(), "a.db")
	u, _ := url.Parse(s.WebDAV.URL)
	common := []string{"--server", u.Host, "--tls", "none", "--allow-cleartext", "--path", "/files/{user}/", "--password-env", "WEBDAV_PW"}
	importArgs := append([]string{"vandelay", "import", "webdav", "--user", src.Email}, common...)
	exportArgs := append([]string{"vandelay", "export-webdav", "--user", tgt.Email}, common...)
	// killAfter runs mailmig with args and SIGKILLs it once the log has n
	// more lines of method below prefix (or lets it end).
	killAfter := func(args []string, pw, method, prefix string, n int) {
		before := countLog(t, s, method, prefix)
		cmd := exec.Command(os.Args[0], append(args, db)...)
		cmd.Env = append(os.Environ(), "MAILMIG_TEST_MAIN=main", "WEBDAV_PW="+pw)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		for i := 0; i < 20000; i++ {
			select {
			case <-done:
				t.Errorf("%s ended before %d %ss: no kill", args[1], n, method)
				return
			default:
			}
			if countLog(t, s, method, prefix) >= before+n {
				cmd.Process.Kill()
				<-done
				return
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Kill()
		<-done
	}
	run1 := func(args []string, pw string) string {
		t.Setenv("WEBDAV_PW", pw)
		var out, errb bytes.Buffer
		if code := run(ctx, append(args, db), Streams{In: strings.NewReader(""), Out: &out, Err: &errb}); code != 0 {
			t.Fatalf("%v: exit %d: %s", args[:3], code, errb.String())
		}
		if strings.Contains(out.String()+errb.String(), pw) {
			t.Errorf("printed the password")
		}
		return out.String()
	}
	srcPrefix := "/files/" + src.Email + "/"
	for _, n := range []int{7, 19, 33} {
		killAfter(importArgs, src.Password, "GET", srcPrefix, n)
	}
	run1(importArgs, src.Password)
	if out := run1(importArgs, src.Password); out != "files: 0 added, 0 changed, 0 deleted, 61 unchanged; 0 bytes fetched\n" {
		t.Errorf("no-change import: %q", out)
	}
	a, err := archive.Open(ctx, db, &archive.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cols, _ := a.FileCollections(ctx, false)
	fs, _ := a.Files(ctx, cols[0].ID, true)
	a.Close()
	if len(fs) != 61 {
		t.Errorf("archive: %d rows with tombstones, want 61 (nothing doubled)", len(fs))
	}
	for _, f := range fs {
		if !f.IsDir && want[f.Path] != f.Hash {
			t.Errorf("archive %q: %s, want %s", f.Path, f.Hash, want[f.Path])
		}
	}
	tgtPrefix := "/files/" + tgt.Email + "/"
	for _, n := range []int{5, 15, 25} {
		killAfter(exportArgs, tgt.Password, "PUT", tgtPrefix, n)
	}
	run1(exportArgs, tgt.Password)
	if out := run1(append(exportArgs, "--verify"), tgt.Password); out != "folders created: 0; files: 0 put, 0 updated, 0 deleted, 60 unchanged\nverify: 61 equal, 0 mismatches\n" {
		t.Errorf("no-change export: %q", out)
	}
	for p, h := range want {
		b := webdavDo(t, ctx, tgt, "GET", s.WebDAV.HomeURL(tgt.Email)+"Ordner%20%C3%A4/"+url.PathEscape(strings.TrimPrefix(p, "Ordner ä/")), nil)
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != h {
			t.Errorf("target %q differs", p)
		}
	}
}
