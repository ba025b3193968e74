package maildir

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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
)

// Source imports one Maildir++ tree.
type Source struct {
	cfg  Options
	root string
	prog vandelay.Progress // of the running Sync
	log  *slog.Logger
}

var _ vandelay.MailSource = (*Source)(nil)

// Options are the settings of a Maildir source. A zero field means its
// default.
type Options struct {
	// Path is the Maildir root (the directory holding INBOX's cur/ and new/).
	Path string
	// User names the account (for the source-change guard). Default: the root directory.
	User string
	vandelay.Scope
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// New returns a Maildir source for opts.Path (the Maildir root, the
// directory holding cur/ and new/ of INBOX).
func New(opts *Options) (vandelay.MailSource, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: maildir source needs --path", vandelay.ErrUsage)
	}
	root, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", vandelay.ErrUsage, err)
	}
	return &Source{cfg: cfg, root: root, log: vandelay.LoggerOr(cfg.Logger).With("proto", "maildir")}, nil
}

// Describe implements vandelay.MailSource. The account is cfg.User when
// given, else the root directory.
func (s *Source) Describe() archive.Source {
	acct := s.cfg.User
	if acct == "" {
		acct = s.root
	}
	return archive.Source{Kind: "maildir", Endpoint: s.root, Account: acct, Login: "-"}
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error { return nil }

type folder struct {
	path string // archive path ("/" separated, UTF-8)
	dir  string
	ref  string
}

// folders lists INBOX and the Maildir++ subfolders.
func (s *Source) folders() ([]folder, error) {
	if _, err := os.Stat(filepath.Join(s.root, "cur")); err != nil {
		return nil, fmt.Errorf("%w: %s is not a Maildir (no cur/): %w", vandelay.ErrUsage, s.root, err)
	}
	out := []folder{{path: "INBOX", dir: s.root}}
	ents, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("read maildir %s: %w", s.root, err)
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		dir := filepath.Join(s.root, n)
		if _, err := os.Stat(filepath.Join(dir, "cur")); err != nil {
			continue
		}
		var parts []string
		bad := false
		for _, p := range strings.Split(n[1:], ".") {
			d, err := DecodeMUTF7(p)
			if err != nil {
				d, bad = p, true
			}
			parts = append(parts, d)
		}
		if bad {
			s.log.Warn("folder name is not modified UTF-7, kept as is", "mailbox", n)
		}
		out = append(out, folder{path: strings.Join(parts, "/"), dir: dir})
	}
	for i := range out {
		out[i].ref = uidValidity(out[i].dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// uidValidity reads "3 V<uidvalidity> N<next> …" from dovecot-uidlist.
func uidValidity(dir string) string {
	f, err := os.Open(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	for _, fld := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(fld, "V"); ok {
			if _, err := strconv.ParseUint(v, 10, 32); err == nil {
				return "uidvalidity:" + v
			}
		}
	}
	return ""
}

// subscriptions reads the Maildir's "subscriptions" file: version 2
// ("V\t2" header, names in modified UTF-7 with TAB between levels) or the
// old format (one name per line, "." between levels).
func (s *Source) subscriptions() map[string]bool {
	data, err := os.ReadFile(filepath.Join(s.root, "subscriptions"))
	if err != nil {
		return map[string]bool{}
	}
	lines := strings.Split(string(data), "\n")
	sep := "."
	if len(lines) > 0 && strings.HasPrefix(lines[0], "V\t") {
		sep, lines = "\t", lines[1:]
	}
	out := map[string]bool{}
	for _, l := range lines {
		if l == "" {
			continue
		}
		var parts []string
		for _, p := range strings.Split(l, sep) {
			if d, err := DecodeMUTF7(p); err == nil {
				p = d
			}
			parts = append(parts, p)
		}
		name := strings.Join(parts, "/")
		if strings.EqualFold(name, "INBOX") {
			name = "INBOX"
		}
		out[name] = true
	}
	return out
}

type msgFile struct {
	file   string // full path
	unique string
	flags  string
}

// listFiles returns the message files of a folder by unique name.
func listFiles(dir string) (map[string]msgFile, error) {
	out := map[string]msgFile{}
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			u, fl, ok := ParseFilename(e.Name())
			if !ok {
				continue
			}
			out[u] = msgFile{file: filepath.Join(dir, sub, e.Name()), unique: u, flags: fl}
		}
	}
	return out, nil
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	s.prog = vandelay.ProgressOr(progress)
	folders, err := s.folders()
	if err != nil {
		return err
	}
	subs := s.subscriptions()
	var infos []archive.MailboxInfo
	var scoped []folder
	for _, f := range folders {
		if !s.cfg.InScope(f.path) || (s.cfg.SubscribedOnly && !subs[f.path] && f.path != "INBOX") {
			continue
		}
		infos = append(infos, archive.MailboxInfo{Path: f.path, Sep: "/", Selectable: true, Subscribed: subs[f.path], SourceRef: f.ref})
		scoped = append(scoped, f)
	}
	inScope := s.cfg.InScope
	if s.cfg.SubscribedOnly {
		inScope = func(p string) bool { return s.cfg.InScope(p) && (subs[p] || p == "INBOX") }
	}
	boxes, err := run.SyncMailboxes(ctx, infos, inScope)
	if err != nil {
		return err
	}
	failed := map[string]error{}
	for _, f := range scoped {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.syncFolder(ctx, run, boxes[f.path].ID, f); err != nil {
			if errors.Is(err, errArchive) {
				return err
			}
			s.log.Error("mailbox not synced", "mailbox", f.path, "err", err)
			failed[f.path] = err
		}
	}
	if len(failed) > 0 {
		return &vandelay.PartialError{Failed: failed}
	}
	return nil
}

var errArchive = errors.New("archive write failed")

func (s *Source) syncFolder(ctx context.Context, run *archive.Run, id int64, f folder) error {
	var kwNames []string
	if data, err := os.ReadFile(filepath.Join(f.dir, "dovecot-keywords")); err == nil {
		kwNames = ParseKeywords(data)
	}
	files, err := listFiles(f.dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", f.dir, err)
	}
	locs, err := run.Locations(ctx, id)
	if err != nil {
		return fmt.Errorf("%w: %w", errArchive, err)
	}
	for k := range locs {
		mf, ok := files[k]
		_, deleted := KeywordsFromFlags(mf.flags, kwNames)
		if !ok || (deleted && !s.cfg.IncludeDeleted) {
			if err := run.Remove(ctx, id, k); err != nil {
				return fmt.Errorf("%w: %w", errArchive, err)
			}
		}
	}
	var todo []msgFile
	var todoBytes int64
	for u, mf := range files {
		kws, deleted := KeywordsFromFlags(mf.flags, kwNames)
		loc, have := locs[u]
		switch {
		case deleted && !s.cfg.IncludeDeleted:
			if !have {
				run.Skip()
			}
		case have:
			if strings.Join(kws, " ") != strings.Join(loc.Keywords, " ") {
				if err := run.SetKeywords(ctx, id, u, kws, 0); err != nil {
					return fmt.Errorf("%w: %w", errArchive, err)
				}
			}
		default:
			todo = append(todo, mf)
			if fi, err := os.Stat(mf.file); err == nil {
				todoBytes += fi.Size()
			}
		}
	}
	sort.Slice(todo, func(i, j int) bool { return todo[i].unique < todo[j].unique })
	prog := s.prog
	prog.Discovered(len(todo), todoBytes)
	for _, mf := range todo {
		if err := ctx.Err(); err != nil {
			return err
		}
		body, mtime, err := readMessage(mf, f.dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // expunged while we ran; the next run sees it gone
		}
		if err != nil {
			return err
		}
		kws, _ := KeywordsFromFlags(mf.flags, kwNames)
		if mtime.Unix() <= 0 {
			mtime = DateFromName(mf.unique)
		}
		if err := run.Add(ctx, id, mf.unique, &archive.NewMessage{Body: ToCRLF(body), ReceivedAt: mtime, Keywords: kws}); err != nil {
			return fmt.Errorf("%w: %w", errArchive, err)
		}
		prog.Done(1, int64(len(body)))
	}
	return run.SetCursor(ctx, id, archive.Cursor{Extra: strconv.Itoa(len(files))})
}

// readMessage reads a message file; when it was renamed (flags changed)
// since the directory listing, it is found again by its unique name.
func readMessage(mf msgFile, dir string) ([]byte, time.Time, error) {
	for attempt := 0; attempt < 2; attempt++ {
		fi, err := os.Stat(mf.file)
		if err == nil {
			b, err := os.ReadFile(mf.file)
			if err == nil {
				return b, fi.ModTime(), nil
			}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, time.Time{}, err
		}
		files, lerr := listFiles(dir)
		if lerr != nil {
			return nil, time.Time{}, lerr
		}
		nf, ok := files[mf.unique]
		if !ok {
			return nil, time.Time{}, fs.ErrNotExist
		}
		mf = nf
	}
	return nil, time.Time{}, fs.ErrNotExist
}

// DateFromName returns the delivery time encoded in a Maildir file name
// ("<seconds>.<unique>.<host>"), zero when there is none.
func DateFromName(name string) time.Time {
	secs, _, ok := strings.Cut(name, ".")
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
