package takeout

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// driveInput is a Drive with one file and two empty folders (one nested
// in a folder that holds only it), and an empty folder outside Drive
// named like a calendar file, which is neither a folder of the Drive nor
// a calendar.
var driveInput = struct {
	files map[string]string
	dirs  []string
}{
	files: map[string]string{"Takeout/Drive/Dokumente/a.txt": "a\n", "Takeout/Calendar/Privat.ics": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"},
	dirs:  []string{"Takeout/", "Takeout/Drive/", "Takeout/Drive/Dokumente/", "Takeout/Drive/Leer/", "Takeout/Drive/Außen/Innen leer/", "Takeout/Calendar/", "Takeout/Kalender.ics/"},
}

// wantDrive is what Walk must list for driveInput.
var wantDrive = []string{"Außen/", "Außen/Innen leer/", "Dokumente/", "Dokumente/a.txt", "Leer/"}

func writeDriveInput(t *testing.T, dir, kind string, dirs []string) string {
	t.Helper()
	mod := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	switch kind {
	case "zip":
		p := filepath.Join(dir, "takeout.zip")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(f)
		for _, d := range dirs {
			if _, err := zw.CreateHeader(&zip.FileHeader{Name: d, Modified: mod}); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range driveInput.files {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod})
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte(body))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	case "tgz":
		p := filepath.Join(dir, "takeout.tgz")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		gz := gzip.NewWriter(f)
		tw := tar.NewWriter(gz)
		for _, d := range dirs {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mod}); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range driveInput.files {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mod}); err != nil {
				t.Fatal(err)
			}
			tw.Write([]byte(body))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		gz.Close()
		f.Close()
		return p
	default: // an extracted tree
		root := filepath.Join(dir, "Takeout-extracted")
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, filepath.FromSlash(d)), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, body := range driveInput.files {
			q := filepath.Join(root, filepath.FromSlash(name))
			os.MkdirAll(filepath.Dir(q), 0o755)
			if err := os.WriteFile(q, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
}

// TestDriveEmptyFolders: an empty Drive folder is listed and archived
// from a zip's and a tar's directory entries and from an extracted tree;
// a folder both listed and implied by a file is listed once; a folder
// outside Drive named like a calendar is no calendar; a newer Takeout
// without the empty folder tombstones it, and a re-run changes nothing.
func TestDriveEmptyFolders(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []string{"zip", "tgz", "dir"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			p := writeDriveInput(t, dir, kind, driveInput.dirs)
			drive, err := NewDrive(&DataOptions{Path: p, User: "u@gmail.com"})
			if err != nil {
				t.Fatal(err)
			}
			files, _, err := drive.Walk(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range files {
				if f.IsDir {
					got = append(got, f.Path+"/")
				} else {
					got = append(got, f.Path)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, wantDrive) {
				t.Errorf("Walk: %q, want %q", got, wantDrive)
			}
			cal, _ := NewCalendars(&DataOptions{Path: p, User: "u@gmail.com"})
			cols, err := cal.Collections(ctx)
			if err != nil || len(cols) != 1 || !strings.Contains(cols[0].Href, "Privat") {
				t.Errorf("calendars: %+v %v (want Privat only, not the folder Kalender.ics)", cols, err)
			}

			a, err := archive.Open(ctx, filepath.Join(dir, "a.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			r, err := vandelay.ImportFiles(ctx, drive, a, nil)
			if err != nil || r.Added != len(wantDrive) {
				t.Fatalf("import: %+v %v, want %d added", r, err, len(wantDrive))
			}
			// A newer Takeout without the empty folder Leer.
			if kind == "dir" {
				os.RemoveAll(p)
			}
			p2 := writeDriveInput(t, dir, kind, slices.DeleteFunc(slices.Clone(driveInput.dirs), func(d string) bool { return d == "Takeout/Drive/Leer/" }))
			if p2 != p {
				t.Fatalf("the newer Takeout is at %s, not %s", p2, p)
			}
			if r, err := vandelay.ImportFiles(ctx, drive, a, nil); err != nil || r.Deleted != 1 || r.Changes() != 1 {
				t.Errorf("newer Takeout without Leer/: %+v %v, want 1 deleted", r, err)
			}
			if r, err := vandelay.ImportFiles(ctx, drive, a, nil); err != nil || r.Changes() != 0 {
				t.Errorf("re-run: %+v %v", r, err)
			}
		})
	}
}
