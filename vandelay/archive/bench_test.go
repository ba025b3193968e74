package archive

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAdd measures archiving message bodies (hash, blob, message,
// location) in batched transactions.
func BenchmarkAdd(b *testing.B) {
	for _, size := range []int{20 << 10, 1 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			ctx := context.Background()
			a, err := Open(ctx, filepath.Join(b.TempDir(), "b.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			r, _ := a.BeginRun(ctx, Source{Kind: "x", Endpoint: "y", Account: "z"}, nil)
			boxes, _ := r.SyncMailboxes(ctx, []MailboxInfo{{Path: "INBOX", Selectable: true}}, nil)
			body := make([]byte, size)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range body {
				body[i] = byte(rng.Uint32())
			}
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				body[0], body[1], body[2], body[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if err := r.Add(ctx, boxes["INBOX"].ID, fmt.Sprint(i), &NewMessage{Body: body, ReceivedAt: time.Now()}); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if _, err := r.Finish(ctx, true); err != nil {
				b.Fatal(err)
			}
		})
	}
}
