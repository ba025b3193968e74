package webdav_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
)

// countingTarget counts the files a verify reads back from the real
// target.
type countingTarget struct {
	vandelay.FileTarget
	opens atomic.Int64
}

func (c *countingTarget) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	c.opens.Add(1)
	return c.FileTarget.Open(ctx, p)
}

// TestVerifyFilesRemembersEqual: once Apache's ETags of the exported
// files are strong (it answers W/"…" for about a second after a write;
// waited for, bounded), a verify reads every file back and the next reads
// none; a file the target's user rewrites with other bytes of the same
// size is read again and found different.
func TestVerifyFilesRemembersEqual(t *testing.T) {
	e := newEnv(t)
	e.writeAll(t, e.src, map[string][]byte{"Ordner/": nil, "Ordner/a.txt": []byte("aaaa"), "b.txt": []byte("bbbb"), "c.bin": random(3000)})
	e.importOnce(t)
	if x := e.exportOnce(t); x.Put != 3 {
		t.Fatalf("export: %+v", x)
	}
	strong := func() bool {
		files, err := e.target(t).Walk(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !f.IsDir && (f.ETag == "" || strings.HasPrefix(f.ETag, "W/")) {
				return false
			}
		}
		return true
	}
	for i := 0; !strong(); i++ {
		if i == 100 {
			t.Fatal("Apache's ETags of the exported files stay weak")
		}
		time.Sleep(100 * time.Millisecond)
	}
	verify := func(step string, wantOpens, wantMismatches int) {
		t.Helper()
		tg := &countingTarget{FileTarget: e.target(t)}
		rep, err := vandelay.VerifyFiles(e.ctx, e.a, tg)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if int(tg.opens.Load()) != wantOpens || len(rep.Mismatches) != wantMismatches {
			t.Errorf("%s: %d files read back, %d mismatches %+v; want %d and %d", step, tg.opens.Load(), len(rep.Mismatches), rep.Mismatches, wantOpens, wantMismatches)
		}
	}
	verify("first verify", 3, 0)
	verify("no change", 0, 0)
	if code, b := do(t, e.tgt, "PUT", e.url(e.tgt, "b.txt"), []byte("BBBB")); code/100 != 2 {
		t.Fatalf("the user's PUT: %d %s", code, b)
	}
	verify("b.txt rewritten at the target, same size", 1, 1)
}
