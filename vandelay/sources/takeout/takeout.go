package takeout

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources/pop3"
)

// Source imports a Google Takeout.
type Source struct {
	cfg  Options
	path string
	log  *slog.Logger
}

var _ vandelay.MailSource = (*Source)(nil)

// Options are the settings of a Google Takeout source. A zero field means its
// default.
type Options struct {
	// Path is a Takeout .zip, .tgz, .mbox file or a directory.
	Path string
	// User names the account (for the source-change guard). Default: the path.
	User string
	vandelay.Scope
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// New returns a Takeout source for opts.Path; cfg.User names the Google
// account (used for the source-change guard, so that a newer Takeout of
// the same account converges into the same archive).
func New(opts *Options) (vandelay.MailSource, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: takeout source needs --path (a .zip, .tgz, .mbox or directory)", vandelay.ErrUsage)
	}
	p, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	return &Source{cfg: cfg, path: p, log: vandelay.LoggerOr(cfg.Logger).With("proto", "takeout")}, nil
}

// Describe implements vandelay.MailSource.
func (s *Source) Describe() archive.Source {
	acct := s.cfg.User
	if acct == "" {
		acct = filepath.Base(s.path)
	}
	return archive.Source{Kind: "takeout", Endpoint: "google-takeout", Account: acct, Login: s.path}
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error { return nil }

// mboxFile is one .mbox inside the input; open reads it from the start.
type mboxFile struct {
	name string
	open func() (io.ReadCloser, error)
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// mboxes finds the .mbox files of the input.
func (s *Source) mboxes() ([]mboxFile, error) {
	fi, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	isMbox := func(n string) bool { return strings.HasSuffix(strings.ToLower(n), ".mbox") }
	var out []mboxFile
	lower := strings.ToLower(s.path)
	switch {
	case fi.IsDir():
		err = filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isMbox(p) {
				out = append(out, mboxFile{name: p, open: func() (io.ReadCloser, error) { return os.Open(p) }})
			}
			return nil
		})
	case strings.HasSuffix(lower, ".zip"):
		zr, zerr := zip.OpenReader(s.path)
		if zerr != nil {
			return nil, fmt.Errorf("%w: open %s: %w", vandelay.ErrUsage, s.path, zerr)
		}
		for _, f := range zr.File {
			if isMbox(f.Name) {
				f := f
				out = append(out, mboxFile{name: f.Name, open: func() (io.ReadCloser, error) { return f.Open() }})
			}
		}
		// zr stays open for the source's lifetime; the OS reclaims it.
	case strings.HasSuffix(lower, ".tgz"), strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tar"):
		names, lerr := s.tarNames()
		if lerr != nil {
			return nil, lerr
		}
		for _, n := range names {
			n := n
			out = append(out, mboxFile{name: n, open: func() (io.ReadCloser, error) { return s.openTar(n) }})
		}
	case isMbox(lower):
		out = append(out, mboxFile{name: s.path, open: func() (io.ReadCloser, error) { return os.Open(s.path) }})
	default:
		return nil, fmt.Errorf("%w: %s is not a .zip, .tgz, .tar.gz, .tar, .mbox or directory", vandelay.ErrUsage, s.path)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no .mbox file in %s", vandelay.ErrUsage, s.path)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

func (s *Source) tarReader() (*tar.Reader, func() error, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if !strings.HasSuffix(strings.ToLower(s.path), ".tar") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%w: %s: %w", vandelay.ErrUsage, s.path, err)
		}
		r = gz
	}
	return tar.NewReader(r), f.Close, nil
}

func (s *Source) tarNames() ([]string, error) {
	tr, closeFn, err := s.tarReader()
	if err != nil {
		return nil, err
	}
	defer closeFn()
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.path, err)
		}
		if h.Typeflag == tar.TypeReg && strings.HasSuffix(strings.ToLower(h.Name), ".mbox") {
			names = append(names, h.Name)
		}
	}
}

func (s *Source) openTar(name string) (io.ReadCloser, error) {
	tr, closeFn, err := s.tarReader()
	if err != nil {
		return nil, err
	}
	for {
		h, err := tr.Next()
		if err != nil {
			closeFn()
			return nil, fmt.Errorf("find %s in %s: %w", name, s.path, err)
		}
		if h.Name == name {
			return readCloser{tr, closeFn}, nil
		}
	}
}

// entry is what the first pass learns about one message.
type entry struct {
	hash     string
	mapping  Mapping
	received time.Time
	size     int64
}

// scan runs fn for every message of every mbox.
func (s *Source) scan(ctx context.Context, files []mboxFile, fn func(m *Message) error) error {
	for _, f := range files {
		r, err := f.open()
		if err != nil {
			return fmt.Errorf("open %s: %w", f.name, err)
		}
		sp := NewSplitter(r)
		for {
			if err := ctx.Err(); err != nil {
				r.Close()
				return err
			}
			m, err := sp.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				return fmt.Errorf("read %s: %w", f.name, err)
			}
			if err := fn(m); err != nil {
				r.Close()
				return err
			}
		}
		r.Close()
	}
	return nil
}

func labelsOf(body []byte) []string {
	v, _ := headerValue(body, "X-Gmail-Labels")
	return ParseLabels(v)
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	files, err := s.mboxes()
	if err != nil {
		return err
	}
	// Pass 1: labels and hashes.
	var entries []entry
	paths := map[string]bool{}
	err = s.scan(ctx, files, func(m *Message) error {
		mp := MapLabels(labelsOf(m.Body))
		m.Body = StripTakeoutHeaders(m.Body)
		for _, p := range mp.Mailboxes {
			paths[p] = true
		}
		recv := m.Date()
		if recv.IsZero() {
			recv = pop3.ReceivedDate(m.Body)
		}
		entries = append(entries, entry{hash: hashOf(m.Body), mapping: mp, received: recv, size: int64(len(m.Body))})
		return nil
	})
	if err != nil {
		return err
	}
	var infos []archive.MailboxInfo
	for p := range paths {
		if s.cfg.InScope(p) {
			infos = append(infos, archive.MailboxInfo{Path: p, Sep: "/", Role: roleOf(p), Subscribed: true, Selectable: true})
		}
	}
	boxes, err := run.SyncMailboxes(ctx, infos, s.cfg.InScope)
	if err != nil {
		return err
	}
	// Desired copies per mailbox: hash → keywords.
	want := map[int64]map[string][]string{}
	for _, in := range infos {
		want[boxes[in.Path].ID] = map[string][]string{}
	}
	first := map[string]*entry{}
	for i := range entries {
		e := &entries[i]
		if _, ok := first[e.hash]; !ok {
			first[e.hash] = e
		}
		for _, p := range e.mapping.Mailboxes {
			if b := boxes[p]; b != nil && want[b.ID] != nil {
				want[b.ID][e.hash] = archive.NormalizeKeywords(append(want[b.ID][e.hash], e.mapping.Keywords...))
			}
		}
	}
	type place struct {
		mbox int64
		kws  []string
	}
	need := map[string][]place{} // hash → copies still to add
	var needBytes int64
	for id, hashes := range want {
		locs, err := run.Locations(ctx, id)
		if err != nil {
			return err
		}
		for k := range locs {
			if _, ok := hashes[k]; !ok {
				if err := run.Remove(ctx, id, k); err != nil {
					return err
				}
			}
		}
		for h, kws := range hashes {
			if loc, ok := locs[h]; ok {
				if strings.Join(loc.Keywords, " ") != strings.Join(kws, " ") {
					if err := run.SetKeywords(ctx, id, h, kws, 0); err != nil {
						return err
					}
				}
				continue
			}
			ok, err := run.AddKnown(ctx, id, h, h, kws, 0)
			if err != nil {
				return err
			}
			if !ok {
				if len(need[h]) == 0 {
					needBytes += first[h].size
				}
				need[h] = append(need[h], place{id, kws})
			}
		}
	}
	prog := vandelay.ProgressOr(progress)
	prog.Discovered(len(need), needBytes)
	// Pass 2: bodies the archive lacks.
	if len(need) > 0 {
		err = s.scan(ctx, files, func(m *Message) error {
			m.Body = StripTakeoutHeaders(m.Body)
			h := hashOf(m.Body)
			places := need[h]
			if len(places) == 0 {
				return nil
			}
			delete(need, h)
			e := first[h]
			for i, p := range places {
				var err error
				if i == 0 {
					err = run.Add(ctx, p.mbox, h, &archive.NewMessage{Body: m.Body, Hash: h, ReceivedAt: e.received, Keywords: p.kws})
				} else {
					_, err = run.AddKnown(ctx, p.mbox, h, h, p.kws, 0)
				}
				if err != nil {
					return err
				}
			}
			prog.Done(1, int64(len(m.Body)))
			return nil
		})
		if err != nil {
			return err
		}
		if len(need) > 0 {
			return errors.New("the Takeout changed while it was read (messages of the first pass are missing in the second)")
		}
	}
	for id, hashes := range want {
		if err := run.SetCursor(ctx, id, archive.Cursor{Extra: strconv.Itoa(len(hashes))}); err != nil {
			return err
		}
	}
	return nil
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
