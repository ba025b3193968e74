package webdav_test

import (
	"fmt"
	"testing"

	"github.com/mailmig/mailmig/vandelay"
)

// BenchmarkWebDAVNoChange measures the no-change re-run of a tree of 500
// files in 20 folders (the figure: < 1 s): one import (walk, no
// GET) and one export (walk of the target, no PUT) per iteration.
//
//	go test -run '^$' -bench WebDAVNoChange -benchtime 5x ./vandelay/targets/webdav
func BenchmarkWebDAVNoChange(b *testing.B) {
	e := newEnv(b)
	files := map[string][]byte{}
	for d := range 20 {
		files[fmt.Sprintf("Ordner %02d/", d)] = nil
		for f := range 25 {
			files[fmt.Sprintf("Ordner %02d/Datei %02d.txt", d, f)] = random(2000)
		}
	}
	e.writeAll(b, e.src, files)
	if r := e.importOnce(b); r.Added != len(files) {
		b.Fatalf("import: %+v", r)
	}
	if x := e.exportOnce(b); x.Put != 500 {
		b.Fatalf("export: %+v", x)
	}
	tg := e.target(b)
	b.ResetTimer()
	for b.Loop() {
		r, err := vandelay.ImportFiles(e.ctx, e.source, e.a, nil)
		if err != nil || r.Changes() != 0 {
			b.Fatalf("import: %+v %v", r, err)
		}
		x, err := vandelay.ExportFiles(e.ctx, e.a, tg, nil)
		if err != nil || x.Changes() != 0 {
			b.Fatalf("export: %+v %v", x, err)
		}
	}
}
