package webdav_test

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
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/internal/peers"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	srcwebdav "github.com/mailmig/mailmig/vandelay/sources/webdav"
	"github.com/mailmig/mailmig/vandelay/targets/webdav"
)

// escape percent-encodes each segment of a path for a URL.
func escape(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileCorpus is the file tree: nested and empty folders, binary
// files (the 50 MB one is TestWebDAVFilesLarge's, to keep this test fast), names with spaces, %, #, emoji and NFD accents.
// Folders end in "/".
func fileCorpus() map[string][]byte {
	return map[string][]byte{
		"Dokumente/":                            nil,
		"Dokumente/Bericht 2026.txt":            []byte("Jahresbericht – äöü ß €\r\nZeile 2\n"),
		"Dokumente/100% sicher.txt":             []byte("percent"),
		"Dokumente/#1 Liste.md":                 []byte("# Liste\n- eins\n"),
		"Dokumente/tief/":                       nil,
		"Dokumente/tief/tiefer/":                nil,
		"Dokumente/tief/tiefer/unten.bin":       random(300 << 10),
		"leer/":                                 nil,
		"Fotos 🎉/":                              nil,
		"Fotos 🎉/Party 🎉.jpg":                   random(2 << 20),
		"Cafe\u0301 NFD/":                       nil,
		"Cafe\u0301 NFD/Re\u0301sume\u0301.txt": []byte("NFD name, kept as it is"),
		"gross.bin":                             random(5 << 20),
		"leere Datei.txt":                       {},
	}
}

type env struct {
	ctx      context.Context
	s        *peers.Set
	src, tgt peers.Account
	a        *archive.Archive
	source   *srcwebdav.Source
	// seen caches hashes by account, path and ETag (tree) and the blobs
	// already checked (archived): the 50 MB file is read once per version.
	seen map[string]string
}

func newEnv(t testing.TB) *env {
	s := peers.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	a, err := archive.Open(ctx, filepath.Join(t.TempDir(), "a.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	e := &env{ctx: ctx, s: s, src: s.NewAccount(t), tgt: s.NewAccount(t), a: a, seen: map[string]string{}}
	e.source, err = srcwebdav.New(&srcwebdav.Options{Server: e.server(), Login: vandelay.Login{User: e.src.Email, Password: e.src.Password}, Path: "/files/{user}/"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) server() vandelay.Server {
	u, _ := url.Parse(e.s.WebDAV.URL)
	return vandelay.Server{Address: u.Host, TLS: vandelay.TLSNone, AllowCleartext: true}
}

func (e *env) target(t testing.TB) *webdav.Target {
	t.Helper()
	tg, err := webdav.Open(e.ctx, &webdav.Options{Server: e.server(), Login: vandelay.Login{User: e.tgt.Email, Password: e.tgt.Password}, Path: "/files/{user}/"})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func do(t testing.TB, a peers.Account, method, rel string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rel, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(a.Email, a.Password)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rel, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) url(a peers.Account, p string) string { return e.s.WebDAV.HomeURL(a.Email) + escape(p) }

// write puts a file or (ending in "/") makes a folder at the source.
func (e *env) write(t testing.TB, a peers.Account, p string, body []byte) {
	t.Helper()
	method := "PUT"
	if strings.HasSuffix(p, "/") {
		method, body = "MKCOL", nil
	}
	if code, b := do(t, a, method, e.url(a, p), body); code != http.StatusCreated && code != http.StatusNoContent {
		t.Fatalf("%s %s: %d %.200s", method, p, code, b)
	}
}

func (e *env) writeAll(t testing.TB, a peers.Account, files map[string][]byte) {
	t.Helper()
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names) // folders before their files
	for _, n := range names {
		e.write(t, a, n, files[n])
	}
}

func (e *env) importOnce(t testing.TB) *vandelay.FilesImportResult {
	t.Helper()
	r, err := vandelay.ImportFiles(e.ctx, e.source, e.a, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return r
}

func (e *env) exportOnce(t testing.TB) *vandelay.FilesExportResult {
	t.Helper()
	r, err := vandelay.ExportFiles(e.ctx, e.a, e.target(t), nil)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	return r
}

// tree reads an account's whole tree over HTTP: path → SHA-256 ("/" for
// folders), what the server itself serves.
func (e *env) tree(t testing.TB, a peers.Account) map[string]string {
	t.Helper()
	tg, err := webdav.Open(e.ctx, &webdav.Options{Server: e.server(), Login: vandelay.Login{User: a.Email, Password: a.Password}, Path: "/files/{user}/"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := tg.Walk(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range list {
		if f.IsDir {
			out[f.Path+"/"] = "/"
			continue
		}
		key := a.Email + "\x00" + f.Path + "\x00" + vandelay.StrongETag(f.ETag)
		if h, ok := e.seen[key]; ok {
			out[f.Path] = h
			continue
		}
		code, b := do(t, a, "GET", e.url(a, f.Path), nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", f.Path, code)
		}
		out[f.Path] = sum(b)
		e.seen[key] = out[f.Path]
	}
	return out
}

// archived is the archive's live tree in the same form.
func (e *env) archived(t testing.TB) map[string]string {
	t.Helper()
	cols, err := e.a.FileCollections(e.ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cols {
		fs, _ := e.a.Files(e.ctx, c.ID, false)
		for _, f := range fs {
			if f.IsDir {
				out[f.Path+"/"] = "/"
				continue
			}
			if _, ok := e.seen[f.Hash]; !ok {
				b, err := e.a.BlobBytes(e.ctx, f.Hash)
				if err != nil || sum(b) != f.Hash || int64(len(b)) != f.Size {
					t.Errorf("archive blob of %s: %v, hash/size differ", f.Path, err)
				}
				e.seen[f.Hash] = f.Hash
			}
			out[f.Path] = f.Hash
		}
	}
	return out
}

func diff(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for p, h := range want {
		if got[p] != h {
			t.Errorf("%s: %q: %q, want %q", what, p, got[p], h)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: %q is extra", what, p)
		}
	}
}

func (e *env) verify(t testing.TB, step string) {
	t.Helper()
	rep, err := vandelay.VerifyFiles(e.ctx, e.a, e.target(t))
	if err != nil {
		t.Fatalf("%s: verify: %v", step, err)
	}
	for _, m := range rep.Mismatches {
		t.Errorf("%s: verify: %s %q", step, m.Kind, m.Path)
	}
}

// TestWebDAVFilesApacheToApache moves the corpus tree from one Apache
// WebDAV account through the archive onto another, equal by path and
// SHA-256 at all three places; then carries exactly an add, an edit, a
// delete and a rename made at the source, changes nothing on a re-run
// without changes, and leaves the target user's own file alone.
func TestWebDAVFilesApacheToApache(t *testing.T) {
	e := newEnv(t)
	corpus := fileCorpus()
	e.writeAll(t, e.src, corpus)
	e.write(t, e.tgt, "meine eigene.txt", []byte("the target user's own file"))

	r := e.importOnce(t)
	if r.Added != len(corpus) || r.Changed+r.Deleted != 0 {
		t.Fatalf("first import: %+v, want %d added", r, len(corpus))
	}
	source := e.tree(t, e.src)
	diff(t, "archive vs source", e.archived(t), source)

	x := e.exportOnce(t)
	if x.Folders != 6 || x.Put != 8 || x.Updated+x.Deleted != 0 || len(x.Conflicts) != 0 {
		t.Fatalf("first export: %+v, want 6 folders and 8 files", x)
	}
	want := maps(source, map[string]string{"meine eigene.txt": sum([]byte("the target user's own file"))})
	diff(t, "target vs source", e.tree(t, e.tgt), want)
	e.verify(t, "first export")

	if r := e.importOnce(t); r.Changes() != 0 || r.Bytes != 0 {
		t.Errorf("no-change import: %+v", r)
	}
	if x := e.exportOnce(t); x.Changes() != 0 || len(x.Conflicts) != 0 {
		t.Errorf("no-change export: %+v", x)
	}

	// At the source: one added, one edited, one deleted, one renamed.
	e.write(t, e.src, "Dokumente/neu.txt", []byte("neu"))
	e.write(t, e.src, "Dokumente/Bericht 2026.txt", []byte("geändert, länger als vorher\r\n"))
	if code, _ := do(t, e.src, "DELETE", e.url(e.src, "Dokumente/#1 Liste.md"), nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	if code, b := do(t, e.src, "MOVE", e.url(e.src, "Fotos 🎉/Party 🎉.jpg"), nil, "Destination", e.url(e.src, "Fotos 🎉/Feier 🎊.jpg")); code != http.StatusCreated {
		t.Fatalf("MOVE: %d %s", code, b)
	}
	r = e.importOnce(t)
	if r.Added != 2 || r.Changed != 1 || r.Deleted != 2 {
		t.Errorf("import after the changes: %+v, want 2 added, 1 changed, 2 deleted", r)
	}
	x = e.exportOnce(t)
	if x.Put != 2 || x.Updated != 1 || x.Deleted != 2 || x.Folders != 0 || len(x.Conflicts) != 0 {
		t.Errorf("export after the changes: %+v, want 2 put, 1 updated, 2 deleted", x)
	}
	source = e.tree(t, e.src)
	diff(t, "archive vs source after the changes", e.archived(t), source)
	want = maps(source, map[string]string{"meine eigene.txt": sum([]byte("the target user's own file"))})
	diff(t, "target vs source after the changes", e.tree(t, e.tgt), want)
	e.verify(t, "after the changes")
	if r := e.importOnce(t); r.Changes() != 0 {
		t.Errorf("no-change import after the changes: %+v", r)
	}
	if x := e.exportOnce(t); x.Changes() != 0 || len(x.Conflicts) != 0 {
		t.Errorf("no-change export after the changes: %+v", x)
	}

	// A folder deleted at the source with its files: gone at the target,
	// files first; the folder the user put a file into stays.
	e.write(t, e.tgt, "leer/vom Nutzer.txt", []byte("mine"))
	for _, p := range []string{"Dokumente/tief/", "leer/"} {
		if code, _ := do(t, e.src, "DELETE", e.url(e.src, p), nil); code != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d", p, code)
		}
	}
	e.importOnce(t)
	x = e.exportOnce(t)
	if x.Deleted != 3 || len(x.Conflicts) != 0 {
		t.Errorf("export after deleting folders: %+v, want 3 deleted (2 folders, 1 file; leer/ kept)", x)
	}
	got := e.tree(t, e.tgt)
	if _, ok := got["Dokumente/tief/"]; ok {
		t.Errorf("Dokumente/tief/ still at the target")
	}
	if got["leer/vom Nutzer.txt"] == "" {
		t.Errorf("the user's own file in leer/ was deleted")
	}
}

func maps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// TestWebDAVFilesConflict: a file the user changed at the target after the
// export, or had there before with other bytes, is a conflict when the
// source changes or deletes it: reported, the target's version kept.
func TestWebDAVFilesConflict(t *testing.T) {
	e := newEnv(t)
	e.write(t, e.src, "edit.txt", []byte("quelle"))
	e.write(t, e.src, "del.txt", []byte("quelle"))
	e.write(t, e.src, "same.txt", []byte("gleich"))
	e.write(t, e.src, "theirs.txt", []byte("quelle"))
	e.write(t, e.tgt, "same.txt", []byte("gleich"))
	e.write(t, e.tgt, "theirs.txt", []byte("am Ziel schon da"))
	e.importOnce(t)
	x := e.exportOnce(t)
	if x.Put != 2 || x.Unchanged != 1 || len(x.Conflicts) != 1 || x.Conflicts[0] != "theirs.txt" {
		t.Fatalf("export: %+v, want 2 put, same.txt adopted, theirs.txt a conflict", x)
	}
	for _, n := range []string{"edit.txt", "del.txt"} {
		e.write(t, e.tgt, n, []byte("am Ziel bearbeitet"))
	}
	e.write(t, e.src, "edit.txt", []byte("quelle geändert"))
	do(t, e.src, "DELETE", e.url(e.src, "del.txt"), nil)
	e.importOnce(t)
	x = e.exportOnce(t)
	sort.Strings(x.Conflicts)
	if x.Changes() != 0 || strings.Join(x.Conflicts, ",") != "del.txt,edit.txt,theirs.txt" {
		t.Errorf("export: %+v, want 3 conflicts and no change", x)
	}
	for _, n := range []string{"edit.txt", "del.txt"} {
		if _, b := do(t, e.tgt, "GET", e.url(e.tgt, n), nil); string(b) != "am Ziel bearbeitet" {
			t.Errorf("%s at the target: %q, want the user's version kept", n, b)
		}
	}
	// Verify lists the kept versions as conflicts, not mismatches: a
	// cut-over goes on with a warning.
	rep, err := vandelay.VerifyFiles(e.ctx, e.a, e.target(t))
	if err != nil || len(rep.Mismatches) != 0 || strings.Join(rep.Conflicts, ",") != "edit.txt,theirs.txt" {
		t.Errorf("verify: %+v %v, want edit.txt and theirs.txt as conflicts, no mismatch", rep, err)
	}
}

// killSource cancels the import's context once it has opened n files:
// what a kill in the middle of a fetch leaves behind.
type killSource struct {
	vandelay.FileSource
	n      int
	cancel context.CancelFunc
}

func (k *killSource) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	if k.n--; k.n == 0 {
		k.cancel()
	}
	return k.FileSource.Open(ctx, p)
}

// killTarget cancels the export's context right after its n-th PUT
// succeeded, before the export records it.
type killTarget struct {
	vandelay.FileTarget
	n      int
	cancel context.CancelFunc
}

func (k *killTarget) Put(ctx context.Context, p string, body io.Reader, size int64, ifMatch string) (string, error) {
	etag, err := k.FileTarget.Put(ctx, p, body, size, ifMatch)
	if k.n--; k.n == 0 {
		k.cancel()
	}
	return etag, err
}

// TestWebDAVFilesInterrupted: imports and exports stopped in the middle,
// again and again, then whole runs: every file once in the archive and at
// the target, equal, nothing fetched or put twice beyond the interrupted
// one, and a file deleted afterwards is still deleted at the target (the
// export knows it created it).
func TestWebDAVFilesInterrupted(t *testing.T) {
	e := newEnv(t)
	files := map[string][]byte{"d/": nil}
	for i := range 120 { // more than one import batch
		files[fmt.Sprintf("d/f%03d.bin", i)] = random(1000 + i)
	}
	e.writeAll(t, e.src, files)
	for round := 1; round <= 3; round++ {
		ctx, cancel := context.WithCancel(e.ctx)
		_, err := vandelay.ImportFiles(ctx, &killSource{FileSource: e.source, n: 30, cancel: cancel}, e.a, nil)
		cancel()
		if err == nil {
			t.Fatalf("import round %d was not interrupted", round)
		}
	}
	r := e.importOnce(t)
	n, _ := e.a.FileCollections(e.ctx, false)
	fs, _ := e.a.Files(e.ctx, n[0].ID, true)
	if len(fs) != len(files) {
		t.Errorf("archive holds %d rows (tombstones included), want %d: nothing doubled", len(fs), len(files))
	}
	if r.Changed+r.Deleted != 0 {
		t.Errorf("final import: %+v", r)
	}
	source := e.tree(t, e.src)
	diff(t, "archive vs source", e.archived(t), source)

	for round := 1; round <= 3; round++ {
		ctx, cancel := context.WithCancel(e.ctx)
		_, err := vandelay.ExportFiles(ctx, e.a, &killTarget{FileTarget: e.target(t), n: 1, cancel: cancel}, nil)
		cancel()
		if err == nil {
			t.Fatalf("export round %d was not interrupted", round)
		}
	}
	x := e.exportOnce(t)
	if x.Put != len(files)-1-3 || x.Updated != 0 || len(x.Conflicts) != 0 {
		t.Errorf("final export: %+v; want the %d files never put put, the 3 interrupted ones not again", x, len(files)-4)
	}
	diff(t, "target vs source", e.tree(t, e.tgt), source)
	for i := range 3 {
		do(t, e.src, "DELETE", e.url(e.src, fmt.Sprintf("d/f%03d.bin", i)), nil)
	}
	e.importOnce(t)
	if x := e.exportOnce(t); x.Deleted != 3 || len(x.Conflicts) != 0 {
		t.Errorf("export after deleting the first files at the source: %+v, want 3 deleted", x)
	}
}

// TestWebDAVFilesLarge carries one 50 MB binary file (the upper
// size) source → archive → target, streamed both ways, equal by SHA-256.
func TestWebDAVFilesLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 50 MB three times")
	}
	e := newEnv(t)
	body := random(50 << 20)
	e.write(t, e.src, "groß/", nil)
	e.write(t, e.src, "groß/50 MB.bin", body)
	if r := e.importOnce(t); r.Added != 2 || r.Bytes != int64(len(body)) {
		t.Fatalf("import: %+v", r)
	}
	if x := e.exportOnce(t); x.Put != 1 || x.Folders != 1 {
		t.Fatalf("export: %+v", x)
	}
	diff(t, "archive", e.archived(t), map[string]string{"groß/": "/", "groß/50 MB.bin": sum(body)})
	e.verify(t, "50 MB")
}
