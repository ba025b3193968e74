package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkWritePath times the archive's whole write path for an import,
// without the network: open a new archive, add MAILMIG_BENCH_MESSAGES
// (default 3,000) bodies of 4–130 KiB (about 200 MB) plus one of 25 MiB
// from memory, finish the run and close (the close checkpoints). It is the
// part of `just bench-import` that the blob store decides:
//
//	go test -run '^$' -bench WritePath -benchtime 3x ./vandelay/archive
func BenchmarkWritePath(b *testing.B) {
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("MAILMIG_BENCH_MESSAGES")); err == nil && v > 0 {
		n = v
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, 25<<20)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	sizes := make([]int, n)
	total := int64(25 << 20)
	for i := range sizes {
		sizes[i] = 4<<10 + rng.IntN(126<<10)
		total += int64(sizes[i])
	}
	b.SetBytes(total)
	ctx := context.Background()
	for b.Loop() {
		a, err := Open(ctx, filepath.Join(b.TempDir(), "b.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := a.BeginRun(ctx, Source{Kind: "x", Endpoint: "y", Account: "z"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		boxes, _ := r.SyncMailboxes(ctx, []MailboxInfo{{Path: "INBOX", Selectable: true}}, nil)
		body := make([]byte, 0, 25<<20)
		for i := 0; i <= n; i++ {
			size := 25 << 20
			if i < n {
				size = sizes[i]
			}
			off := (i * 4099) % (len(pool) - size + 1)
			body = append(body[:0], pool[off:off+size]...)
			body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
			if err := r.Add(ctx, boxes["INBOX"].ID, fmt.Sprint(i), &NewMessage{Body: body, ReceivedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := r.Finish(ctx, true); err != nil {
			b.Fatal(err)
		}
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
