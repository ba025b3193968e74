package main

// The real executor of apply: vandelay's import into a per-account archive
// (state/archives/ACCOUNT.db), the JMAP export onto the target and verify
// (source against archive by a dry-run import, archive against target by
// verify.Target). It is wired here, in cmd, so that the engine stays free
// of I/O; tests replace it with a fake (fakeworld_test.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/jmap"
	"github.com/mailmig/mailmig/vandelay/sources"
	imapsrc "github.com/mailmig/mailmig/vandelay/sources/imap"
	maildirsrc "github.com/mailmig/mailmig/vandelay/sources/maildir"
	pop3src "github.com/mailmig/mailmig/vandelay/sources/pop3"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// newExecutor returns the executor that moves data for apply.
func newExecutor(m *plan.Migration, log *slog.Logger) engine.Executor {
	return &vandelayExec{m: m, log: log, dir: filepath.Join(statePath(m), "archives")}
}

// newDetector returns the change detector for -refresh: a cheap probe of
// the account's source (IMAP LIST-STATUS or STATUS, POP3 STAT, Maildir
// directory counts) compared with the archive's cursors. It never
// selects a mailbox or fetches a message.
func newDetector(m *plan.Migration, log *slog.Logger) engine.ChangeDetector {
	return &vandelayExec{m: m, log: log, dir: filepath.Join(statePath(m), "archives")}
}

// newArchiveReader returns the reader of the accounts' archives for plan:
// one listing of the archive directory, then a shared, non-blocking open
// of each archive that exists.
func newArchiveReader(m *plan.Migration, log *slog.Logger) engine.ArchiveReader {
	return &archiveReader{x: &vandelayExec{m: m, log: log, dir: filepath.Join(statePath(m), "archives")}}
}

// vandelayExec implements engine.Executor and engine.ChangeDetector. It is
// safe for concurrent use on different accounts; the engine never runs two
// changes of one account at once.
type vandelayExec struct {
	m   *plan.Migration
	log *slog.Logger
	dir string

	mu     sync.Mutex
	warmed map[string]bool // target logins that logged in over IMAP once
}

var (
	_ engine.Executor       = (*vandelayExec)(nil)
	_ engine.ChangeDetector = (*vandelayExec)(nil)
	_ engine.ArchiveReader  = (*archiveReader)(nil)
)

// archivePath is the account's archive file.
func (x *vandelayExec) archivePath(acct *plan.Account) string {
	return filepath.Join(x.dir, archiveName(acct))
}

// archiveName is the file name of the account's archive.
func archiveName(acct *plan.Account) string {
	return archiveNameReplacer.Replace(engine.Key(acct.Address)) + ".db"
}

var archiveNameReplacer = strings.NewReplacer("/", "_", "\\", "_", "..", "_")

// sourceConfig builds vandelay's source configuration for an account.
func (x *vandelayExec) sourceConfig(acct *plan.Account, lim *engine.Limiter, log *slog.Logger) (string, *vandelay.Config, error) {
	b := x.m.Backend(acct.From)
	if b == nil {
		return "", nil, fmt.Errorf("source backend %q is not in the plan", acct.From)
	}
	cfg := &vandelay.Config{User: acct.SourceLogin, Throttle: lim.Throttle(), Logger: log,
		// One connection per change: Apply runs at most limits.connections
		// changes per backend, so the backend sees at most that many.
		Connections: 1}
	if cfg.User == "" {
		cfg.User = acct.Address
	}
	kind := ""
	for _, k := range []plan.Protocol{plan.ProtoIMAP, plan.ProtoPOP3, plan.ProtoMaildir, plan.ProtoTakeout} {
		if ep := b.Endpoint(k); ep != nil {
			kind = string(k)
			cfg.Address, cfg.ServerName, cfg.InsecureSkipVerify = ep.Address, ep.ServerName, ep.InsecureSkipVerify
			cfg.TLS = vandelay.TLSMode(ep.TLS)
			// The plan says so explicitly: tls = "none" is a decision.
			cfg.AllowCleartext = ep.TLS == plan.TLSNone
			cfg.Path = expandPath(ep.Path, acct, cfg.User)
			if k == plan.ProtoMaildir && b.Maildir != nil {
				cfg.Path = expandPath(b.Maildir.Path, acct, cfg.User)
			}
			if k == plan.ProtoTakeout && b.Takeout != nil {
				cfg.Path = expandPath(b.Takeout.Path, acct, cfg.User)
			}
			break
		}
	}
	if kind == "" {
		return "", nil, fmt.Errorf("backend %s has no mail source endpoint (imap, pop3, maildir or takeout)", b.Name)
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		cfg.MasterUser, cfg.Password = b.Master.User, b.Master.Password.Reveal()
	case acct.Password.IsSet():
		cfg.Password = acct.Password.Reveal()
	case kind == "imap" || kind == "pop3":
		return "", nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	return kind, cfg, nil
}

// expandPath replaces %u (login), %d (domain) and %n (local part).
func expandPath(p string, acct *plan.Account, login string) string {
	if p == "" {
		return ""
	}
	local, domain, _ := strings.Cut(acct.Address, "@")
	return strings.NewReplacer("%u", login, "%d", domain, "%n", local).Replace(p)
}

// openArchive opens the account's archive, creating it when create is set.
func (x *vandelayExec) openArchive(ctx context.Context, acct *plan.Account, create bool, log *slog.Logger) (*archive.Archive, error) {
	path := x.archivePath(acct)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open archive %s: %w", path, archive.ErrNotExist)
		}
	}
	if err := os.MkdirAll(x.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create archive directory: %w", err)
	}
	// A plan in another process may hold a shared lock for the few
	// milliseconds it reads the archive's overview: wait for it briefly
	// rather than fail the import.
	deadline := time.Now().Add(archiveBusyWait)
	for {
		a, err := archive.Open(ctx, path, &archive.Options{Logger: log})
		if !errors.Is(err, archive.ErrInUse) || time.Now().After(deadline) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// archiveBusyWait is how long an import or export waits for an archive
// that another process holds (a plan reading it) before giving up.
const archiveBusyWait = 3 * time.Second

// importProgressHook adapts vandelay.Progress to the engine's progress.
type importProgressHook struct {
	mu          sync.Mutex
	total, done int64
	fn          func(done, total int64)
}

func (p *importProgressHook) Discovered(n int, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += int64(n)
	p.fn(p.done, p.total)
}

func (p *importProgressHook) Done(n int, _ int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.fn(p.done, p.total)
}

// Import runs one import pass of the account's mail into its archive.
func (x *vandelayExec) Import(ctx context.Context, job *engine.Job) (state.Counts, error) {
	res, err := x.importPass(ctx, job.Account, job.Source, job.Log, false, job.Progress)
	if res == nil {
		return state.Counts{}, err
	}
	c := state.Counts{New: int64(res.MessagesAdded), Changed: int64(res.MessagesMoved + res.MessagesReflagged),
		Deleted: int64(res.MessagesDeleted), Bytes: res.FetchedBytes,
		Mailboxes: int64(res.MailboxesCreated + res.MailboxesRenamed + res.MailboxesDeleted)}
	c.Messages = c.New + c.Changed + c.Deleted
	return c, err
}

func (x *vandelayExec) importPass(ctx context.Context, acct *plan.Account, lim *engine.Limiter, log *slog.Logger, dryRun bool, progress func(done, total int64)) (*archive.Result, error) {
	if log == nil {
		log = x.log
	}
	kind, cfg, err := x.sourceConfig(acct, lim, log)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		cfg.Progress = &importProgressHook{fn: progress}
	}
	src, err := sources.Mail[kind](cfg)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", kind, err)
	}
	defer src.Close()
	a, err := x.openArchive(ctx, acct, !dryRun, log)
	if err != nil {
		return nil, err
	}
	if dryRun {
		defer a.Close()
	} else {
		defer x.closeArchive(ctx, acct, a, log)
	}
	run, err := a.BeginRun(ctx, src.Describe(), &archive.RunOptions{DryRun: dryRun})
	if err != nil {
		return nil, err
	}
	syncErr := src.Sync(ctx, run)
	var partial *vandelay.PartialError
	complete := syncErr == nil
	if syncErr != nil && !errors.As(syncErr, &partial) {
		complete = false
	}
	res, ferr := run.Finish(context.WithoutCancel(ctx), complete)
	if syncErr != nil {
		return res, fmt.Errorf("import from %s: %w", acct.From, syncErr)
	}
	if ferr != nil {
		return res, fmt.Errorf("finish import: %w", ferr)
	}
	return res, nil
}

// throttledTransport makes every request to a target wait on the
// backend's shared limiter: its body's bytes on the bytes/s bucket, and a
// blob upload (a POST that is not a JSON API call) on the messages/s
// bucket. vandelay's JMAP exporter has no throttle of its own.
type throttledTransport struct {
	base http.RoundTripper
	lim  *engine.Limiter
}

func (t throttledTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ContentLength > 0 {
		if err := t.lim.WaitBytes(req.Context(), req.ContentLength); err != nil {
			return nil, err
		}
	}
	if req.Method == http.MethodPost && !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		if err := t.lim.WaitMessages(req.Context(), 1); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(req)
}

// targetHTTPClient returns the HTTP client for a target: jmap's default
// (30 s response-header timeout, no overall timeout) behind the limiter.
func targetHTTPClient(lim *engine.Limiter) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	if lim == nil {
		return &http.Client{Transport: tr}
	}
	return &http.Client{Transport: throttledTransport{base: tr, lim: lim}}
}

// openTarget logs in to the target's JMAP endpoint for the account.
func (x *vandelayExec) openTarget(ctx context.Context, acct *plan.Account, lim *engine.Limiter, log *slog.Logger) (*jmap.Client, string, error) {
	b := x.m.Backend(acct.To)
	if b == nil {
		return nil, "", fmt.Errorf("target backend %q is not in the plan", acct.To)
	}
	ep := b.Endpoint(plan.ProtoJMAP)
	if ep == nil {
		return nil, "", fmt.Errorf("target backend %s has no jmap endpoint", b.Name)
	}
	login := acct.TargetLogin
	if login == "" {
		login = acct.Address
	}
	var auth jmap.Auth
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		auth = jmap.BasicAuth{User: b.Master.User, Password: b.Master.Password.Reveal()}
	case acct.Password.IsSet():
		auth = jmap.BasicAuth{User: login, Password: acct.Password.Reveal()}
		x.warmUp(ctx, b, login, acct.Password.Reveal(), log)
	default:
		return nil, "", fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	c, err := jmap.Discover(ctx, ep.URL, &jmap.Options{Auth: auth, Logger: log, HTTPClient: targetHTTPClient(lim)})
	if err != nil {
		return nil, "", fmt.Errorf("target %s: %w", b.Name, err)
	}
	key := ""
	if b.Login == plan.LoginMaster {
		key = login
	}
	id, err := c.Session().FindAccount(key)
	if err != nil {
		return nil, "", fmt.Errorf("target %s: %w", b.Name, err)
	}
	return c, id, nil
}

// warmUp logs in once over IMAP when the target has an IMAP endpoint:
// Cyrus creates a user's mailboxes at the first IMAP login, and JMAP only
// works after it. A failure is only logged; the export reports real ones.
func (x *vandelayExec) warmUp(ctx context.Context, b *plan.Backend, login, password string, log *slog.Logger) {
	ep := b.Endpoint(plan.ProtoIMAP)
	if ep == nil || ep.TLS != plan.TLSNone {
		return
	}
	x.mu.Lock()
	if x.warmed == nil {
		x.warmed = map[string]bool{}
	}
	done := x.warmed[b.Name+"/"+login]
	x.warmed[b.Name+"/"+login] = true
	x.mu.Unlock()
	if done {
		return
	}
	c, err := imapclient.DialInsecure(ep.Address, nil)
	if err != nil {
		log.Debug("target imap warm-up", "err", err)
		return
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := c.Login(login, password).Wait(); err != nil {
		log.Debug("target imap warm-up", "err", err)
		return
	}
	_ = c.Logout().Wait()
}

// Export reconciles the archive onto the target.
func (x *vandelayExec) Export(ctx context.Context, job *engine.Job) (state.Counts, error) {
	a, err := x.openArchive(ctx, job.Account, false, job.Log)
	if err != nil {
		return state.Counts{}, err
	}
	defer x.closeArchive(ctx, job.Account, a, job.Log)
	c, id, err := x.openTarget(ctx, job.Account, job.Target, job.Log)
	if err != nil {
		return state.Counts{}, err
	}
	res, err := tj.Export(ctx, a, c, id, &tj.Options{Logger: job.Log, Progress: func(p tj.Progress) {
		if job.Progress != nil && p.Phase == "import" {
			job.Progress(p.Done, p.Total)
		}
	}})
	if res == nil {
		return state.Counts{}, err
	}
	cnt := state.Counts{New: int64(res.EmailsImported), Changed: int64(res.EmailsUpdated), Deleted: int64(res.EmailsDestroyed),
		Bytes: res.UploadBytes, Mailboxes: int64(res.MailboxesCreated + res.MailboxesUpdated + res.MailboxesDestroyed)}
	cnt.Messages = cnt.New + cnt.Changed + cnt.Deleted
	if err == nil && res.Partial() {
		err = fmt.Errorf("export skipped %d item(s), e.g. %s %s: %s", len(res.Skipped), res.Skipped[0].Kind, res.Skipped[0].Name, res.Skipped[0].Reason)
	}
	return cnt, err
}

// Verify compares the source with the archive (a dry-run import must find
// nothing) and the archive with the target (verify.Target, every blob
// hashed). Counts.Mismatches counts the differences.
func (x *vandelayExec) Verify(ctx context.Context, job *engine.Job) (state.Counts, error) {
	res, err := x.importPass(ctx, job.Account, job.Source, job.Log, true, nil)
	if err != nil {
		return state.Counts{}, fmt.Errorf("compare source: %w", err)
	}
	srcDiff := int64(res.MessagesAdded + res.MessagesDeleted + res.MessagesMoved + res.MessagesReflagged +
		res.MailboxesCreated + res.MailboxesRenamed + res.MailboxesDeleted)
	a, err := x.openArchive(ctx, job.Account, false, job.Log)
	if err != nil {
		return state.Counts{}, err
	}
	defer a.Close()
	c, id, err := x.openTarget(ctx, job.Account, job.Target, job.Log)
	if err != nil {
		return state.Counts{}, err
	}
	rep, err := verify.Target(ctx, a, c, id, &verify.Options{Logger: job.Log})
	if err != nil {
		return state.Counts{}, fmt.Errorf("verify target: %w", err)
	}
	cnt := state.Counts{Messages: int64(rep.TargetEmails), Mismatches: srcDiff + int64(len(rep.Mismatches))}
	for i, mm := range rep.Mismatches {
		if i == 5 {
			break
		}
		job.Log.Warn("verify mismatch", "mailbox", mm.Mailbox, "kind", mm.Kind, "item", mm.Item)
	}
	return cnt, nil
}

// Detect probes the account's source cheaply and compares the answer with
// the archive's cursors: "12 new, 3 mailboxes changed". The archive is
// opened read-only (shared lock, failing at once when an import holds it)
// and closed before the source is asked. A missing archive probes as "not
// imported yet".
func (x *vandelayExec) Detect(ctx context.Context, acct *plan.Account) (engine.Delta, error) {
	kind, cfg, err := x.sourceConfig(acct, nil, x.log)
	if err != nil {
		return engine.Delta{}, err
	}
	var known []archive.MailboxCursor
	a, err := archive.Open(ctx, x.archivePath(acct), &archive.Options{ReadOnly: true, Logger: x.log})
	switch {
	case errors.Is(err, archive.ErrNotExist):
	case errors.Is(err, archive.ErrInUse):
		return engine.Delta{}, fmt.Errorf("not probed: another mailmig process (an import or export) is using the archive")
	case err != nil:
		return engine.Delta{}, err
	default:
		known, err = a.Cursors(ctx)
		a.Close()
		if err != nil {
			return engine.Delta{}, err
		}
	}
	probe := probes[kind]
	if probe == nil {
		// A Takeout file is a one-time export: it has no counters to ask.
		return engine.Delta{Approx: true}, nil
	}
	r, err := probe(ctx, cfg, known)
	if err != nil {
		return engine.Delta{}, fmt.Errorf("probe %s: %w", acct.From, err)
	}
	return probeDelta(r), nil
}

// probes are the cheap change probes per source kind.
var probes = map[string]func(context.Context, *vandelay.Config, []archive.MailboxCursor) (*vandelay.ProbeResult, error){
	"imap":    imapsrc.Probe,
	"pop3":    pop3src.Probe,
	"maildir": maildirsrc.Probe,
}

// probeDelta turns a probe's result into the engine's Delta.
func probeDelta(r *vandelay.ProbeResult) engine.Delta {
	return engine.Delta{New: r.New, Deleted: r.Deleted, Mailboxes: int64(r.MailboxesChanged),
		FoldersAdded: len(r.Added), FoldersRemoved: len(r.Removed), FoldersRenamed: len(r.Renamed),
		Approx: r.Approx, NotImported: r.NotImported}
}

// closeArchive closes an archive that an import or export wrote and
// saves its summary next to it (ACCOUNT.db.json), stamped with the
// database file's size and modification time after the close, so that
// plan reads a JSON file instead of querying every archive. A summary
// whose stamp no longer matches (someone else wrote the archive since) is
// ignored.
func (x *vandelayExec) closeArchive(ctx context.Context, acct *plan.Account, a *archive.Archive, log *slog.Logger) {
	o, oerr := a.Overview(context.WithoutCancel(ctx))
	a.Close()
	path := x.archivePath(acct) + summarySuffix
	if oerr != nil {
		log.Debug("archive summary", "err", oerr)
		_ = os.Remove(path)
		return
	}
	sum := archiveSummary{Info: archiveInfo(o)}
	sum.DB, sum.WAL = fileStamps(x.archivePath(acct))
	b, err := json.Marshal(&sum)
	if err == nil {
		err = state.WriteFileAtomic(path, b, 0o600)
	}
	if err != nil {
		log.Debug("archive summary", "err", err)
		_ = os.Remove(path)
	}
}

// summarySuffix names an archive's summary file.
const summarySuffix = ".json"

// archiveSummary is the cached overview of one archive.
type archiveSummary struct {
	Info engine.ArchiveInfo `json:"info"`
	DB   fileStamp          `json:"db"`
	WAL  fileStamp          `json:"wal"`
}

// fileStamp identifies a version of a file; the zero value is "absent".
type fileStamp struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

// fileStamps returns the stamps of the archive file and its WAL.
func fileStamps(path string) (db, wal fileStamp) {
	for _, x := range []struct {
		p string
		s *fileStamp
	}{{path, &db}, {path + "-wal", &wal}} {
		// An empty WAL (a reader leaves one behind) holds nothing: absent.
		if fi, err := os.Stat(x.p); err == nil && (fi.Size() > 0 || x.s == &db) {
			*x.s = fileStamp{Size: fi.Size(), ModTime: fi.ModTime().UnixNano()}
		}
	}
	return db, wal
}

// archiveReader implements engine.ArchiveReader over the archive
// directory.
type archiveReader struct {
	x     *vandelayExec
	once  sync.Once
	names map[string]bool
}

// Has looks the account's archive up in one listing of the directory, read
// at the first call: no per-account system call for accounts without one.
func (r *archiveReader) Has(acct *plan.Account) bool {
	r.once.Do(func() {
		r.names = map[string]bool{}
		ents, err := os.ReadDir(r.x.dir)
		if err != nil {
			return // no directory: no archives
		}
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".db") {
				r.names[e.Name()] = true
			}
		}
	})
	if len(r.names) == 0 {
		return false // the usual case before the first import: no work per account
	}
	return r.names[archiveName(acct)]
}

// Archive reads the account's archive with a shared, non-blocking lock: a
// running import or export (which holds it exclusively) is reported as
// InUse, never waited for.
func (r *archiveReader) Archive(ctx context.Context, acct *plan.Account) (engine.ArchiveInfo, error) {
	path := r.x.archivePath(acct)
	if b, err := os.ReadFile(path + summarySuffix); err == nil {
		var sum archiveSummary
		db, wal := fileStamps(path)
		if json.Unmarshal(b, &sum) == nil && sum.DB == db && sum.WAL == wal {
			return sum.Info, nil
		}
	}
	a, err := archive.Open(ctx, r.x.archivePath(acct), &archive.Options{ReadOnly: true, Logger: r.x.log})
	if errors.Is(err, archive.ErrInUse) {
		return engine.ArchiveInfo{InUse: true}, nil
	}
	if err != nil {
		return engine.ArchiveInfo{}, err
	}
	defer a.Close()
	o, err := a.Overview(ctx)
	if err != nil {
		return engine.ArchiveInfo{}, err
	}
	return archiveInfo(o), nil
}

// archiveInfo summarises an overview for the engine. Of several export
// targets the most recently written one is the account's current target.
func archiveInfo(o *archive.Overview) engine.ArchiveInfo {
	info := engine.ArchiveInfo{Mailboxes: o.Stats.Mailboxes, Messages: o.Stats.Messages, Bytes: o.Stats.Bytes,
		Unexported: o.Stats.Messages}
	for _, c := range o.Cursors {
		if !c.Cursor.Updated.IsZero() {
			info.Cursors++
		}
	}
	if o.Source != nil {
		info.LastImport, info.LastRun = o.Source.LastComplete, o.Source.LastRun
	}
	var best *archive.ExportStatus
	for i := range o.Exports {
		if e := &o.Exports[i]; best == nil || !e.LastExport.Before(best.LastExport) {
			best = e
		}
	}
	if best != nil {
		info.LastExport, info.Exported = best.LastExport, best.Exported
		info.Unexported, info.ExportChanged, info.ExportDeleted = best.Unexported, best.Changed, best.Deleted
	}
	return info
}
