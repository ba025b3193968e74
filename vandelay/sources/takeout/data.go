package takeout

// Calendars, contacts and Drive files of a Takeout (issue 12), from the
// same inputs as the mail: a .zip, a .tgz/.tar.gz/.tar or an extracted
// directory.
//
//   - Calendars: each .ics outside Drive is one calendar (Takeout writes
//     one per calendar, named after it). Its events are split into one
//     calendar object per UID — the VCALENDAR's own properties, every
//     VTIMEZONE, and the components with that UID (a master and its
//     RECURRENCE-ID overrides) — by lines, so that every property keeps
//     its bytes. Takeout's folder names are localised ("Calendar",
//     "Kalender"), so the extension decides, not the folder.
//   - Contacts: each .vcf outside Drive is one address book (Takeout
//     writes one per label), split into its vCards by lines.
//   - Drive: the tree below a "Drive" folder: the folders its member
//     names imply and the folders the input lists itself (a zip's or
//     tar's directory entries, an extracted tree's directories), so that
//     an empty Drive folder arrives too; each file's modification time
//     from the archive header.
//
// An item's href is derived from its UID (or, for a vCard without UID,
// from its bytes), so that a newer Takeout of the same account converges:
// changed items are replaced, missing ones tombstoned. A Takeout has no
// ETags: an item's ETag is the hash of its bytes.

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/internal/icalsafe"
)

// member is one file (or, with dir, one directory) of the input.
type member struct {
	name  string // "/"-separated, relative to the input, no trailing "/"
	dir   bool
	size  int64
	mtime time.Time
	open  func() (io.ReadCloser, error)
}

// members lists the regular files and the directories of the input at
// path.
func members(p string) ([]member, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	lower := strings.ToLower(p)
	var out []member
	switch {
	case fi.IsDir():
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if rel, _ := filepath.Rel(p, q); rel != "." {
					out = append(out, member{name: filepath.ToSlash(rel), dir: true})
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(p, q)
			out = append(out, member{name: filepath.ToSlash(rel), size: info.Size(), mtime: info.ModTime(),
				open: func() (io.ReadCloser, error) { return os.Open(q) }})
			return nil
		})
	case strings.HasSuffix(lower, ".zip"):
		zr, zerr := zip.OpenReader(p)
		if zerr != nil {
			return nil, fmt.Errorf("%w: open %s: %w", vandelay.ErrUsage, p, zerr)
		}
		for _, f := range zr.File {
			if f.FileInfo().IsDir() {
				out = append(out, member{name: strings.TrimSuffix(f.Name, "/"), dir: true})
				continue
			}
			f := f
			out = append(out, member{name: f.Name, size: int64(f.UncompressedSize64), mtime: f.Modified,
				open: func() (io.ReadCloser, error) { return f.Open() }})
		}
		// zr stays open for the source's lifetime, as for the mail.
	case strings.HasSuffix(lower, ".tgz"), strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tar"):
		s := &Source{path: p}
		tr, closeFn, terr := s.tarReader()
		if terr != nil {
			return nil, terr
		}
		defer closeFn()
		for {
			h, terr := tr.Next()
			if terr == io.EOF {
				break
			}
			if terr != nil {
				return nil, fmt.Errorf("read %s: %w", p, terr)
			}
			if h.Typeflag == tar.TypeDir {
				out = append(out, member{name: strings.TrimSuffix(h.Name, "/"), dir: true})
				continue
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			name := h.Name
			out = append(out, member{name: name, size: h.Size, mtime: h.ModTime,
				open: func() (io.ReadCloser, error) { return s.openTar(name) }})
		}
	default:
		return nil, fmt.Errorf("%w: %s is not a .zip, .tgz, .tar.gz, .tar or directory", vandelay.ErrUsage, p)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// driveRel returns a member's path below its "Drive" folder.
func driveRel(name string) (string, bool) {
	segs := strings.Split(name, "/")
	for i, s := range segs[:len(segs)-1] {
		if s == "Drive" {
			return strings.Join(segs[i+1:], "/"), true
		}
	}
	return "", false
}

// DataOptions configure the Takeout data sources.
type DataOptions struct {
	// Path is a Takeout .zip, .tgz or directory.
	Path string
	// User names the account. Default: the file name.
	User string
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// DAVSource is a Takeout's calendars or address books.
type DAVSource struct {
	o        DataOptions
	path     string
	calendar bool
	files    map[string]member // collection href → its file
}

var _ vandelay.DAVSource = (*DAVSource)(nil)

// NewCalendars returns the calendars of a Takeout; NewContacts its
// address books.
func NewCalendars(o *DataOptions) (*DAVSource, error) { return newDAV(o, true) }

// NewContacts returns the address books of a Takeout.
func NewContacts(o *DataOptions) (*DAVSource, error) { return newDAV(o, false) }

func newDAV(o *DataOptions, cal bool) (*DAVSource, error) {
	if o == nil || o.Path == "" {
		return nil, fmt.Errorf("%w: a Takeout source needs --path (a .zip, .tgz or directory)", vandelay.ErrUsage)
	}
	p, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	return &DAVSource{o: *o, path: p, calendar: cal}, nil
}

func describe(user, p string) archive.Source {
	if user == "" {
		user = filepath.Base(p)
	}
	return archive.Source{Kind: "takeout", Endpoint: "google-takeout", Account: user, Login: p}
}

// Describe returns the source's identity: the same as the mail's.
func (s *DAVSource) Describe() archive.Source { return describe(s.o.User, s.path) }

// Kind returns the archive's collection kind.
func (s *DAVSource) Kind() string {
	if s.calendar {
		return archive.CollectionCalendar
	}
	return archive.CollectionAddressBook
}

// Collections lists one collection per .ics (.vcf) outside Drive; its
// href is "/takeout/calendars/<name>/" with the file's name escaped, its
// display name the file's name without the extension.
func (s *DAVSource) Collections(ctx context.Context) ([]archive.NewCollection, error) {
	ms, err := members(s.path)
	if err != nil {
		return nil, err
	}
	ext, dir := ".vcf", "/takeout/contacts/"
	if s.calendar {
		ext, dir = ".ics", "/takeout/calendars/"
	}
	s.files = map[string]member{}
	var out []archive.NewCollection
	for _, m := range ms {
		if _, inDrive := driveRel(m.name); m.dir || inDrive || !strings.EqualFold(path.Ext(m.name), ext) {
			continue
		}
		name := strings.TrimSuffix(path.Base(m.name), path.Ext(m.name))
		href := dir + url.PathEscape(name) + "/"
		if _, dup := s.files[href]; dup {
			// The same name in two folders (Contacts/x/x.vcf and a copy):
			// the second gets its folder's name in front.
			href = dir + url.PathEscape(path.Base(path.Dir(m.name))+"-"+name) + "/"
		}
		s.files[href] = m
		c := archive.NewCollection{Href: href, DisplayName: name}
		if s.calendar {
			c.Components = []string{"VEVENT", "VTODO"}
		}
		out = append(out, c)
	}
	return out, nil
}

// Sync returns every item of the collection's file; what the archive
// holds beyond them is deleted.
func (s *DAVSource) Sync(ctx context.Context, c archive.NewCollection, cur *archive.DAVCursor) (*archive.CollectionSync, error) {
	m, ok := s.files[c.Href]
	if !ok {
		return nil, fmt.Errorf("collection %s: not in the Takeout", c.Href)
	}
	r, err := m.open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", m.name, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<30))
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", m.name, err)
	}
	var objs [][]byte
	if s.calendar {
		objs = SplitCalendar(b)
	} else {
		objs = SplitVCards(b)
		for i, o := range objs {
			objs[i] = WithUID(o)
		}
	}
	cs := &archive.CollectionSync{Collection: c}
	seen := map[string]bool{}
	for _, o := range objs {
		it := s.item(o)
		key := it.UID
		if key == "" {
			key = "sha256:" + hashOf(o)
		}
		base := hashOf([]byte(key))[:24]
		it.Href = c.Href + base + map[bool]string{true: ".ics", false: ".vcf"}[s.calendar]
		if seen[it.Href] {
			continue // a second object with the same UID: the first counts
		}
		seen[it.Href] = true
		it.ETag = `"` + hashOf(o)[:32] + `"`
		cs.Items = append(cs.Items, it)
	}
	for h := range cur.ETags {
		if !seen[h] {
			cs.Deleted = append(cs.Deleted, h)
		}
	}
	sort.Strings(cs.Deleted)
	return cs, nil
}

func (s *DAVSource) item(o []byte) archive.NewItem {
	it := archive.NewItem{Body: o}
	if s.calendar {
		it.MediaType = "text/calendar"
		cal, err := icalsafe.Decode(o)
		if err != nil {
			it.ParseError = err.Error()
			it.UID = lineValue(o, "UID")
			return it
		}
		for _, ev := range cal.Children {
			if p := ev.Props.Get(ical.PropUID); p != nil {
				it.UID = p.Value
				break
			}
		}
		return it
	}
	it.MediaType = "text/vcard"
	card, err := vcard.NewDecoder(bytes.NewReader(o)).Decode()
	if err != nil {
		it.ParseError = err.Error()
		it.UID = lineValue(o, "UID")
		return it
	}
	it.UID = card.Value(vcard.FieldUID)
	return it
}

// Close releases nothing.
func (s *DAVSource) Close() error { return nil }

// lineValue returns the value of the first unfolded line NAME:value
// (parameters allowed), "" when there is none.
func lineValue(b []byte, name string) string {
	for _, l := range lines(b) {
		l = strings.TrimRight(l, "\r\n")
		n, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n, _, _ = strings.Cut(n, ";")
		if strings.EqualFold(n, name) {
			return v
		}
	}
	return ""
}

// lines splits b after each "\n", keeping the line ends; a folded line
// (continued by a line starting with a space or tab) stays separate.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			return i + 1, data[:i+1], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func isLine(l, want string) bool {
	return strings.EqualFold(strings.TrimRight(l, "\r\n"), want)
}

// SplitVCards splits a .vcf into its vCards, each BEGIN:VCARD to
// END:VCARD with its bytes; text outside them is dropped.
func SplitVCards(b []byte) [][]byte {
	var out [][]byte
	var cur []byte
	depth := 0
	for _, l := range lines(b) {
		if isLine(l, "BEGIN:VCARD") {
			depth++
		}
		if depth > 0 {
			cur = append(cur, l...)
		}
		if isLine(l, "END:VCARD") && depth > 0 {
			depth--
			if depth == 0 {
				out = append(out, cur)
				cur = nil
			}
		}
	}
	return out
}

// WithUID returns a vCard with a UID: the card itself when it has one,
// else the card with "UID:takeout-<SHA-256 of the card>" after its
// VERSION line. Google writes its contacts without UID, which vCard 3.0
// allows and CardDAV (RFC 6352 5.1) does not: Cyrus refuses them (403
// valid-address-data, "Missing mandatory UID property"). This is the one
// change the Takeout source makes to an item's bytes.
func WithUID(card []byte) []byte {
	if lineValue(card, "UID") != "" {
		return card
	}
	nl := "\r\n"
	if !bytes.Contains(card, []byte("\r\n")) {
		nl = "\n"
	}
	uid := "UID:takeout-" + hashOf(card)[:32] + nl
	var out []byte
	done := false
	for _, l := range lines(card) {
		out = append(out, l...)
		if !done && strings.HasPrefix(strings.ToUpper(l), "VERSION:") {
			out = append(out, uid...)
			done = true
		}
	}
	if !done {
		return card
	}
	return out
}

// SplitCalendar splits one VCALENDAR of many events into calendar objects
// (RFC 4791 4.1): per UID, the VCALENDAR's own property lines, every
// VTIMEZONE, then each component with that UID in the order of the
// input. Components without UID become one object each. Lines keep their
// bytes.
func SplitCalendar(b []byte) [][]byte {
	var head []byte  // VCALENDAR property lines
	var zones []byte // VTIMEZONE components
	type comp struct {
		uid  string
		body []byte
	}
	var comps []comp
	var cur []byte
	var curName string
	depth := 0
	for _, l := range lines(b) {
		t := strings.TrimRight(l, "\r\n")
		up := strings.ToUpper(t)
		switch {
		case up == "BEGIN:VCALENDAR" && depth == 0, up == "END:VCALENDAR" && depth == 0:
			continue
		case strings.HasPrefix(up, "BEGIN:"):
			if depth == 0 {
				curName, cur = up[6:], nil
			}
			depth++
			cur = append(cur, l...)
			continue
		case strings.HasPrefix(up, "END:") && depth > 0:
			depth--
			cur = append(cur, l...)
			if depth == 0 {
				if curName == "VTIMEZONE" {
					zones = append(zones, cur...)
				} else {
					comps = append(comps, comp{uid: lineValueTop(cur), body: cur})
				}
				cur = nil
			}
			continue
		}
		if depth > 0 {
			cur = append(cur, l...)
		} else {
			head = append(head, l...)
		}
	}
	if len(comps) == 0 {
		return nil
	}
	nl := "\r\n"
	if !bytes.Contains(b, []byte("\r\n")) {
		nl = "\n"
	}
	var order []string
	byUID := map[string][]byte{}
	for i, c := range comps {
		key := c.uid
		if key == "" {
			key = fmt.Sprintf("\x00%d", i)
		}
		if _, ok := byUID[key]; !ok {
			order = append(order, key)
		}
		byUID[key] = append(byUID[key], c.body...)
	}
	var out [][]byte
	for _, k := range order {
		var o []byte
		o = append(o, "BEGIN:VCALENDAR"+nl...)
		o = append(o, head...)
		o = append(o, zones...)
		o = append(o, byUID[k]...)
		o = append(o, "END:VCALENDAR"+nl...)
		out = append(out, o)
	}
	return out
}

// lineValueTop returns the UID of a component (its own, not that of a
// nested VALARM).
func lineValueTop(c []byte) string {
	depth := 0
	for _, l := range lines(c) {
		up := strings.ToUpper(strings.TrimRight(l, "\r\n"))
		switch {
		case strings.HasPrefix(up, "BEGIN:"):
			depth++
		case strings.HasPrefix(up, "END:"):
			depth--
		case depth == 1 && (strings.HasPrefix(up, "UID:") || strings.HasPrefix(up, "UID;")):
			_, v, _ := strings.Cut(strings.TrimRight(l, "\r\n"), ":")
			return v
		}
	}
	return ""
}

// FileSource is a Takeout's Drive.
type FileSource struct {
	o    DataOptions
	path string
	byP  map[string]member
}

var _ vandelay.FileSource = (*FileSource)(nil)

// NewDrive returns the Drive files of a Takeout.
func NewDrive(o *DataOptions) (*FileSource, error) {
	if o == nil || o.Path == "" {
		return nil, fmt.Errorf("%w: a Takeout source needs --path (a .zip, .tgz or directory)", vandelay.ErrUsage)
	}
	p, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	return &FileSource{o: *o, path: p}, nil
}

// Describe returns the source's identity: the same as the mail's.
func (s *FileSource) Describe() archive.Source { return describe(s.o.User, s.path) }

// Root is the collection's href.
func (s *FileSource) Root() string { return "/takeout/drive/" }

// Walk lists the Drive's files, the folders their names imply and the
// folders the input lists (empty ones too).
func (s *FileSource) Walk(ctx context.Context) ([]archive.NewFile, string, error) {
	ms, err := members(s.path)
	if err != nil {
		return nil, "", err
	}
	s.byP = map[string]member{}
	dirs := map[string]bool{}
	var out []archive.NewFile
	for _, m := range ms {
		rel, ok := driveRel(m.name)
		if !ok || rel == "" {
			continue
		}
		if m.dir {
			// A folder the input lists: with its parents, once.
			for d := rel; d != "." && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
				out = append(out, archive.NewFile{Path: d, IsDir: true})
			}
			continue
		}
		for d := path.Dir(rel); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			out = append(out, archive.NewFile{Path: d, IsDir: true})
		}
		s.byP[rel] = m
		mt := mime.TypeByExtension(path.Ext(rel))
		if mt == "" {
			mt = "application/octet-stream"
		}
		out = append(out, archive.NewFile{Path: rel, MediaType: mt, Size: m.size, MTime: m.mtime.UTC().Truncate(time.Second)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, "", nil
}

// Open streams one Drive file.
func (s *FileSource) Open(ctx context.Context, p string) (io.ReadCloser, error) {
	m, ok := s.byP[p]
	if !ok {
		return nil, fmt.Errorf("%s: not in the Takeout's Drive", p)
	}
	return m.open()
}

// Close releases nothing.
func (s *FileSource) Close() error { return nil }
