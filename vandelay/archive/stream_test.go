package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// failingReader yields n bytes of r, then fails.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection lost")
	}
	p = p[:min(len(p), f.n)]
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// TestAddStreamed stores a body of several chunks from a reader (what the
// IMAP source does with a large message it spooled) and reads it back
// byte for byte; a reader that fails half way leaves no trace of that
// blob, and the messages added before it in the same batch still commit.
func TestAddStreamed(t *testing.T) {
	ctx := context.Background()
	a, _ := openTemp(t)
	r, err := a.BeginRun(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	boxes, err := r.SyncMailboxes(ctx, []MailboxInfo{mb("INBOX", "1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := boxes["INBOX"].ID
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3*ChunkSize+12345)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	small := []byte("Subject: small\r\n\r\nx\r\n")
	if err := r.Add(ctx, in, "1", &NewMessage{Body: small, ReceivedAt: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte("y"), 2*ChunkSize+1)
	err = r.Add(ctx, in, "2", &NewMessage{Content: &failingReader{bytes.NewReader(other), ChunkSize + 10}, Size: int64(len(other)),
		Hash: Hash(other), ReceivedAt: time.Unix(1e9, 0)})
	if err == nil {
		t.Fatal("a failing reader was stored")
	}
	if err := r.Add(ctx, in, "3", &NewMessage{Content: bytes.NewReader(big), Size: int64(len(big)), Hash: Hash(big),
		ReceivedAt: time.Unix(1e9, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, in, "4", &NewMessage{Content: bytes.NewReader(big), Size: int64(len(big))}); err == nil {
		t.Fatal("streamed content without a hash was accepted")
	}
	res, err := r.Finish(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.MessagesAdded != 2 || res.BlobsStored != 2 || res.BlobBytes != int64(len(small)+len(big)) {
		t.Fatalf("counts: %+v", res.Counts)
	}
	got, err := a.BlobBytes(ctx, Hash(big))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("streamed blob read back differs (%d bytes, want %d)", len(got), len(big))
	}
	if ok, err := a.HasBlob(ctx, Hash(other)); err != nil || ok {
		t.Fatalf("the failed blob is stored (%v, %v)", ok, err)
	}
	var chunks int
	if err := a.db.QueryRowContext(ctx, "SELECT count(*) FROM blob_chunks WHERE hash = ?", Hash(other)).Scan(&chunks); err != nil || chunks != 0 {
		t.Fatalf("the failed blob left %d chunks (%v)", chunks, err)
	}
}
