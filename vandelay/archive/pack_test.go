package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// addMessages imports bodies into INBOX in one run and finishes it.
func addMessages(t *testing.T, a *Archive, bodies ...[]byte) {
	t.Helper()
	ctx := context.Background()
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	locs, err := r.Locations(ctx, boxes["INBOX"].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		key := Hash(b)[:12]
		if _, ok := locs[key]; ok {
			continue
		}
		if err := r.Add(ctx, boxes["INBOX"].ID, key, &NewMessage{Body: b, ReceivedAt: time.Unix(1e9, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Finish(ctx, false); err != nil {
		t.Fatal(err)
	}
}

// checkBlobs reads every body back by hash.
func checkBlobs(t *testing.T, a *Archive, bodies ...[]byte) {
	t.Helper()
	for _, b := range bodies {
		got, err := a.BlobBytes(context.Background(), Hash(b))
		if err != nil {
			t.Fatalf("blob %.12s: %v", Hash(b), err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("blob %.12s: read back %d bytes that differ (want %d)", Hash(b), len(got), len(b))
		}
	}
}

func body(n int, c byte) []byte {
	b := append([]byte("Subject: x\r\n\r\n"), bytes.Repeat([]byte{c}, n)...)
	return b
}

// TestPackTornTail: bytes a killed run appended but never committed (a
// batch, or half of a message) are unreferenced; the next read-write open
// truncates them, and what was committed reads back byte for byte. A
// read-only open leaves them alone.
func TestPackTornTail(t *testing.T) {
	ctx := context.Background()
	a, p := openTemp(t)
	bodies := [][]byte{body(10, 'a'), body(3*packBuffer, 'b'), body(70_000, 'c')}
	addMessages(t, a, bodies...)
	a.Close()
	fi, err := os.Stat(p + PackSuffix)
	if err != nil {
		t.Fatal(err)
	}
	committed := fi.Size()
	if want := int64(len(packMagic) + len(bodies[0]) + len(bodies[1]) + len(bodies[2])); committed != want {
		t.Fatalf("pack is %d bytes, want %d", committed, want)
	}
	f, err := os.OpenFile(p+PackSuffix, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(bytes.Repeat([]byte("torn"), 5000))
	f.Close()

	ro, err := Open(ctx, p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open with a torn tail: %v", err)
	}
	checkBlobs(t, ro, bodies...)
	ro.Close()
	if fi, _ := os.Stat(p + PackSuffix); fi.Size() == committed {
		t.Fatal("a read-only open truncated the pack")
	}

	a, err = Open(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(p + PackSuffix); fi.Size() != committed {
		t.Fatalf("after a read-write open the pack is %d bytes, want %d", fi.Size(), committed)
	}
	more := body(500, 'd')
	addMessages(t, a, append(bodies, more)...)
	checkBlobs(t, a, append(bodies, more)...)
	a.Close()
	if fi, _ := os.Stat(p + PackSuffix); fi.Size() != committed+int64(len(more)) {
		t.Fatalf("pack is %d bytes after one more message, want %d (the torn tail reused)", fi.Size(), committed+int64(len(more)))
	}
}

// TestPackUncommittedBatch: a run that appends without committing (Abort,
// or a process that dies) leaves no row; the bytes go at the next open and
// the same messages are stored again, once.
func TestPackUncommittedBatch(t *testing.T) {
	ctx := context.Background()
	a, p := openTemp(t)
	first := body(100, 'a')
	addMessages(t, a, first)
	r, err := a.BeginRun(ctx, src, &RunOptions{BatchMessages: 1000})
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lost := body(2*packBuffer, 'x')
	if err := r.Add(ctx, boxes["INBOX"].ID, "9", &NewMessage{Body: lost}); err != nil {
		t.Fatal(err)
	}
	r.Abort()
	if ok, _ := a.HasBlob(ctx, Hash(lost)); ok {
		t.Fatal("an aborted batch's blob is recorded")
	}
	a.Close()
	a, err = Open(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if got := a.pack.size(); got != int64(len(packMagic)+len(first)) {
		t.Fatalf("pack after reopen: %d bytes, want %d", got, len(packMagic)+len(first))
	}
	addMessages(t, a, first, lost)
	checkBlobs(t, a, first, lost)
	st, err := a.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 2 || a.pack.size() != int64(len(packMagic)+len(first)+len(lost)) {
		t.Fatalf("blobs %d, pack %d bytes: stored twice?", st.Blobs, a.pack.size())
	}
}

// TestPackDamaged: an archive whose pack file is missing, cut short or not
// a pack is refused at open with ErrPackDamaged (and named), not read as
// wrong bytes later.
func TestPackDamaged(t *testing.T) {
	ctx := context.Background()
	a, p := openTemp(t)
	addMessages(t, a, body(1000, 'a'))
	a.Close()
	pk := p + PackSuffix
	good, err := os.ReadFile(pk)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func() error{
		"missing":   func() error { return os.Remove(pk) },
		"short":     func() error { return os.WriteFile(pk, good[:len(good)-1], 0o600) },
		"not-pack":  func() error { return os.WriteFile(pk, append([]byte("garbage!"), good[8:]...), 0o600) },
		"no-header": func() error { return os.WriteFile(pk, good[:3], 0o600) },
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{true, false} {
			if _, err := Open(ctx, p, &Options{ReadOnly: ro}); !errors.Is(err, ErrPackDamaged) {
				t.Errorf("%s (read-only %v): %v, want ErrPackDamaged", name, ro, err)
			}
		}
		if err := os.WriteFile(pk, good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, err = Open(ctx, p, nil)
	if err != nil {
		t.Fatalf("repaired: %v", err)
	}
	checkBlobs(t, a, body(1000, 'a'))
	a.Close()
}

// TestPackOldFormat: an archive whose blobs are in blob_chunks (every
// release before migration 0007; testdata/v2-takeout.db.gz) opens,
// upgrades, reads its old blob from the chunks, stores new ones in the
// pack, and reads both after a read-only reopen.
func TestPackOldFormat(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "v2.db")
	f, err := os.Open("testdata/v2-takeout.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	a, err := Open(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	var old string
	var chunks int
	if err := a.db.QueryRowContext(ctx, "SELECT b.hash, b.chunks FROM messages m JOIN blobs b ON b.hash = m.blob").Scan(&old, &chunks); err != nil {
		t.Fatal(err)
	}
	if chunks == 0 {
		t.Fatal("the fixture's blob is not in blob_chunks")
	}
	check := func(a *Archive) {
		b, err := a.BlobBytes(ctx, old)
		if err != nil || Hash(b) != old {
			t.Fatalf("old blob: %d bytes, hash %.12s, %v (want %.12s)", len(b), Hash(b), err, old)
		}
	}
	check(a)
	if _, err := os.Stat(p + PackSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("opening an old archive created a pack file (%v)", err)
	}
	added, err := a.AddReturns(ctx, []Return{{Target: "t", RemoteID: "r1", Mailbox: "INBOX", Blob: Hash([]byte("new\r\n")), Size: 5}},
		map[string][]byte{Hash([]byte("new\r\n")): []byte("new\r\n")})
	if err != nil || added != 1 {
		t.Fatalf("add a blob to an upgraded archive: %d, %v", added, err)
	}
	a.Close()
	ro, err := Open(ctx, p, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	check(ro)
	checkBlobs(t, ro, []byte("new\r\n"))
}

// TestPutBlobStreamPack: a streamed blob lands in the pack once; storing
// the same bytes again adds nothing to the pack.
func TestPutBlobStreamPack(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	data := bytes.Repeat([]byte("0123456789"), 300_000)
	h, n, err := a.PutBlobStream(ctx, bytes.NewReader(data))
	if err != nil || h != Hash(data) || n != int64(len(data)) {
		t.Fatalf("PutBlobStream: %.12s %d %v", h, n, err)
	}
	size := a.pack.size()
	if _, _, err := a.PutBlobStream(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if a.pack.size() != size {
		t.Fatalf("the same bytes streamed twice grew the pack from %d to %d bytes", size, a.pack.size())
	}
	checkBlobs(t, a, data)
}

// TestPackDryRun: a dry run counts the blobs it would store and writes
// none of their bytes.
func TestPackDryRun(t *testing.T) {
	ctx := context.Background()
	a, p := openTemp(t)
	addMessages(t, a, body(100, 'a'))
	size := a.pack.size()
	r, err := a.BeginRun(ctx, src, &RunOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := body(3*packBuffer, 'z')
	if err := r.Add(ctx, boxes["INBOX"].ID, "2", &NewMessage{Body: big}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Finish(ctx, true)
	if err != nil || res.BlobsStored != 1 {
		t.Fatalf("dry run: %+v, %v", res, err)
	}
	if a.pack.size() != size {
		t.Fatalf("a dry run grew the pack from %d to %d bytes", size, a.pack.size())
	}
	if fi, err := os.Stat(p + PackSuffix); err != nil || fi.Size() != size {
		t.Fatalf("pack file after a dry run: %v, %v", fi, err)
	}
}
