package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/engine"
	"github.com/mailmig/mailmig/engine/state"
	"github.com/mailmig/mailmig/plan"
	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	"github.com/mailmig/mailmig/vandelay/sources"
	"github.com/mailmig/mailmig/vandelay/verify"
)

// ArchiveWait is how long an import or export waits for an archive that
// another process holds (a plan reading it) before giving up.
const ArchiveWait = 3 * time.Second

// Executor implements engine.Executor and engine.ChangeDetector over the
// accounts' archives in one directory.
type Executor struct {
	m   *plan.Migration
	log *slog.Logger
	dir string

	mu     sync.Mutex
	warmed map[string]bool // target logins that logged in over IMAP once

	uidls UIDLStore // where cut-overs write POP3 UIDL maps; nil: none
	// recorded gives the refresh probe the cursors another machine
	// recorded for an account whose archive is not here; nil: none.
	recorded func(context.Context, *plan.Account) (*engine.Observation, error)

	// takeover: what an apply worker's exports and verifies do about the
	// accounts it took over (takeover.go); zero: nothing.
	takeover Takeover

	hashes  map[string]*verify.BlobHashes // per account: target blob hashes seen by a verify
	topKeys map[string]map[string]string  // per account: target POP3 UIDL → header key
}

var (
	_ engine.Executor       = (*Executor)(nil)
	_ engine.ChangeDetector = (*Executor)(nil)
	_ engine.Prober         = (*Executor)(nil)
	_ engine.VerifyWarmer   = (*Executor)(nil)
)

// blobHashes is the account's cache of target blob hashes.
func (x *Executor) blobHashes(acct *plan.Account) *verify.BlobHashes {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.hashes == nil {
		x.hashes = map[string]*verify.BlobHashes{}
	}
	k := acct.To + "/" + engine.Key(acct.Address)
	if x.hashes[k] == nil {
		x.hashes[k] = &verify.BlobHashes{}
	}
	return x.hashes[k]
}

// WarmVerify hashes the target's blobs of the account (verify.Target
// with the account's cache) before a cut-over freezes it, so that the
// verify inside the freeze downloads only what the final catch-up added;
// when the cut-over will write a POP3 UIDL map it also lists the target's
// maildrop with its header keys, for the same reason. The contacts,
// calendars and files are verified too (their results dropped), so that
// what they find equal is remembered with the target's ETags and the
// verify inside the freeze downloads only what changed since.
// Its mismatches do not matter: the source may still change.
func (x *Executor) WarmVerify(ctx context.Context, job *engine.Job) error {
	log := x.logOr(job.Log)
	a, err := x.openArchive(ctx, job.Account, false, log)
	if err != nil {
		return err
	}
	defer a.Close()
	t, err := x.openTarget(ctx, job.Account, job.Target, log)
	if err != nil {
		return err
	}
	x.warmPOP3(ctx, job)
	c := x.blobHashes(job.Account)
	start := time.Now()
	rep, err := verify.Target(ctx, a, t.Client, t.AccountID, &verify.Options{Logger: log, Hashes: c})
	if err != nil {
		return fmt.Errorf("verify before the freeze: %w", err)
	}
	log.Info("target hashed before the freeze", "hashed", rep.Hashed, "downloaded_bytes", rep.DownloadedSize, "duration", time.Since(start))
	// Their mismatch warnings would only be noise here.
	quiet := slog.New(slog.DiscardHandler)
	var named []state.Mismatch
	var cnt state.Counts
	start = time.Now()
	// Kinds that move over the target's JMAP session are compared whole
	// by their own verify inside the freeze; the DAV and WebDAV paths
	// here warm only what goes over DAV.
	via := map[plan.DataKind]bool{}
	e := &jmapEnv{a: a, c: t.Client, accountID: t.AccountID, acct: job.Account, m: x.m}
	for _, k := range jmapKindsFor(ctx, e, quiet) {
		if k.data != "" {
			via[k.data] = true
		}
	}
	if _, err := x.verifyDAV(ctx, job.Account, a, quiet, &named, &cnt, via); err != nil {
		return fmt.Errorf("verify before the freeze: %w", err)
	}
	if !via[plan.DataFiles] {
		if _, err := x.verifyFiles(ctx, job.Account, a, quiet, &named, &cnt); err != nil {
			return fmt.Errorf("verify before the freeze: %w", err)
		}
	}
	if MovesFiles(x.m, job.Account) || MovesDAV(x.m, job.Account, plan.DataContacts) || MovesDAV(x.m, job.Account, plan.DataCalendars) {
		log.Info("contacts, calendars and files verified before the freeze", "duration", time.Since(start))
	}
	return nil
}

// New returns the executor of the migration m, keeping the archives in
// dir. A nil log discards.
func New(m *plan.Migration, dir string, log *slog.Logger) *Executor {
	return &Executor{m: m, log: vandelay.LoggerOr(log), dir: dir}
}

// archivePath is the account's archive file.
func (x *Executor) archivePath(acct *plan.Account) string {
	return filepath.Join(x.dir, archiveName(acct))
}

// archiveName is the file name of the account's archive.
func archiveName(acct *plan.Account) string {
	return archiveNameReplacer.Replace(engine.Key(acct.Address)) + ".db"
}

var archiveNameReplacer = strings.NewReplacer("/", "_", "\\", "_", "..", "_")

// sourceKinds are the plan's mail source protocols, in order of
// preference when a backend has several. JMAP comes last so that a
// backend that also speaks IMAP (Cyrus) keeps being read as before (an
// archive refuses a change of source kind).
var sourceKinds = []plan.Protocol{plan.ProtoIMAP, plan.ProtoPOP3, plan.ProtoMaildir, plan.ProtoTakeout, plan.ProtoExchange, plan.ProtoJMAP}

// sourceSpec describes the account's source for the registry.
func (x *Executor) sourceSpec(acct *plan.Account, lim *engine.Limiter, log *slog.Logger) (string, *sources.Spec, error) {
	b := x.m.Backend(acct.From)
	if b == nil {
		return "", nil, fmt.Errorf("source backend %q is not in the plan", acct.From)
	}
	spec := &sources.Spec{Login: vandelay.Login{User: acct.SourceLogin}, Throttle: lim.Throttle(), Logger: log,
		// One connection per change: Apply runs at most limits.connections
		// changes per backend, so the backend sees at most that many.
		Connections: 1}
	if spec.User == "" {
		spec.User = acct.Address
	}
	kind := ""
	for _, k := range sourceKinds {
		if ep := b.Endpoint(k); ep != nil {
			kind = string(k)
			spec.Server = vandelay.Server{Address: ep.Address, ServerName: ep.ServerName, InsecureSkipVerify: ep.InsecureSkipVerify,
				TLS: vandelay.TLSMode(ep.TLS),
				// The plan says so explicitly: tls = "none" is a decision.
				AllowCleartext: ep.TLS == plan.TLSNone,
				Timeouts:       Timeouts(b)}
			spec.Path = expandPath(ep.Path, acct, spec.User)
			if k == plan.ProtoMaildir && b.Maildir != nil {
				spec.Path = expandPath(b.Maildir.Path, acct, spec.User)
			}
			if k == plan.ProtoTakeout && b.Takeout != nil {
				spec.Path = expandPath(b.Takeout.Path, acct, spec.User)
			}
			spec.URL = ep.URL
			if k == plan.ProtoExchange && b.Exchange != nil {
				// The registry's kinds are exchange-graph and exchange-ews.
				kind = "exchange-" + b.Exchange.API
				spec.URL = b.Exchange.URL
				spec.AllowCleartext = strings.HasPrefix(spec.URL, "http://") // written so in the plan: a decision
				spec.OAuth.Tenant, spec.OAuth.ClientID = b.Exchange.Tenant, b.Exchange.ClientID
				spec.OAuth.ClientSecret = b.Exchange.ClientSecret.Reveal()
				spec.OAuth.Authority = b.Exchange.Authority
				spec.AppRate = b.Exchange.AppRate
				if b.Exchange.API == "ews" {
					spec.Auth = b.Exchange.Auth
				}
			}
			break
		}
	}
	if _, ok := sources.Mail[kind]; !ok {
		return "", nil, fmt.Errorf("backend %s has no mail source endpoint (imap, pop3, maildir, takeout, exchange or jmap)", b.Name)
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		spec.MasterUser, spec.Password = b.Master.User, b.Master.Password.Reveal()
	case acct.Password.IsSet():
		spec.Password = acct.Password.Reveal()
	case sources.Mail[kind].Reads(sources.SetLogin):
		return "", nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	return kind, spec, nil
}

// Timeouts are the backend's timeouts as vandelay takes them; zero
// fields (a backend built by hand) take vandelay's defaults.
func Timeouts(b *plan.Backend) vandelay.Timeouts {
	return vandelay.Timeouts{Connect: b.Timeouts.Connect, TLSHandshake: b.Timeouts.TLSHandshake,
		ResponseHeader: b.Timeouts.ResponseHeader, Idle: b.Timeouts.Idle}
}

// ProbeSource logs in at the account's source and lists its mailboxes
// (the registry's probe of the source kind), the breaker's check that a
// backend whose circuit opened answers again. A kind without a probe (a
// Takeout file) is opened instead.
func (x *Executor) ProbeSource(ctx context.Context, acct *plan.Account) error {
	kind, spec, err := x.sourceSpec(acct, nil, x.log)
	if err != nil {
		return err
	}
	if probe := sources.Mail[kind].Probe; probe != nil {
		_, err = probe(ctx, spec, nil)
		return err
	}
	src, err := sources.Mail[kind].New(spec)
	if err != nil {
		return err
	}
	return src.Close()
}

// ProbeTarget discovers the account's JMAP session at the target: the
// breaker's check that the target answers again.
func (x *Executor) ProbeTarget(ctx context.Context, acct *plan.Account) error {
	_, err := x.openTarget(ctx, acct, nil, x.log)
	return err
}

// expandPath replaces %u (login), %d (domain) and %n (local part).
func expandPath(p string, acct *plan.Account, login string) string {
	if p == "" {
		return ""
	}
	local, domain, _ := strings.Cut(acct.Address, "@")
	return strings.NewReplacer("%u", login, "%d", domain, "%n", local).Replace(p)
}

// openArchive opens the account's archive, creating it when create is
// set, and waits up to ArchiveWait for a plan that reads it.
func (x *Executor) openArchive(ctx context.Context, acct *plan.Account, create bool, log *slog.Logger) (*archive.Archive, error) {
	path := x.archivePath(acct)
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("open archive %s: %w", path, archive.ErrNotExist)
		}
	}
	if err := os.MkdirAll(x.dir, 0o750); err != nil {
		return nil, fmt.Errorf("create archive directory: %w", err)
	}
	return archive.Open(ctx, path, &archive.Options{Logger: log, Wait: ArchiveWait})
}

// progressHook adapts vandelay.Progress to the engine's progress: fn
// gets messages, work (when set) messages and bytes.
type progressHook struct {
	mu                    sync.Mutex
	total, done           int64
	totalBytes, doneBytes int64
	fn                    func(done, total int64)
	work                  func(engine.Work)
}

func (p *progressHook) Discovered(n int, b int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total += int64(n)
	p.totalBytes += b
	p.report()
}

func (p *progressHook) Done(n int, b int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	p.doneBytes += b
	p.report()
}

func (p *progressHook) report() {
	p.fn(p.done, p.total)
	if p.work != nil {
		p.work(engine.Work{Messages: p.done, TotalMessages: p.total, Bytes: p.doneBytes, TotalBytes: p.totalBytes})
	}
}

// Import runs one import pass of the account's mail into its archive.
func (x *Executor) Import(ctx context.Context, job *engine.Job) (state.Counts, error) {
	log := x.logOr(job.Log)
	src, err := x.openSource(job.Account, job.Source, log)
	if err != nil {
		return state.Counts{}, err
	}
	defer src.Close()
	a, err := x.openArchive(ctx, job.Account, true, log)
	if err != nil {
		return state.Counts{}, err
	}
	defer x.closeArchive(ctx, job.Account, a, log)
	opts := &vandelay.ImportOptions{}
	if job.Progress != nil {
		opts.Progress = &progressHook{fn: job.Progress, work: job.Work}
	}
	res, err := vandelay.Import(ctx, src, a, opts)
	if err != nil {
		err = fmt.Errorf("import from %s: %w", job.Account.From, err)
	}
	if res == nil {
		return state.Counts{}, err
	}
	c := state.Counts{New: int64(res.MessagesAdded), Changed: int64(res.MessagesMoved + res.MessagesReflagged),
		Deleted: int64(res.MessagesDeleted), Bytes: res.FetchedBytes,
		Mailboxes: int64(res.MailboxesCreated + res.MailboxesRenamed + res.MailboxesDeleted)}
	c.Messages = c.New + c.Changed + c.Deleted
	if err == nil && MovesSieve(x.m, job.Account) {
		c.Objects, err = x.importSieve(ctx, job.Account, a, log)
	}
	if err == nil {
		var n int64
		n, err = x.importJMAPData(ctx, job.Account, src, a, log)
		c.Objects += n
	}
	if err == nil {
		var n int64
		n, err = x.importDAV(ctx, job.Account, a, log)
		c.Objects += n
	}
	if err == nil {
		var n int64
		n, err = x.importFiles(ctx, job.Account, a, log)
		c.Objects += n
	}
	return c, err
}

func (x *Executor) logOr(log *slog.Logger) *slog.Logger {
	if log == nil {
		return x.log
	}
	return log
}

// openSource creates the account's source from the registry.
func (x *Executor) openSource(acct *plan.Account, lim *engine.Limiter, log *slog.Logger) (vandelay.MailSource, error) {
	kind, spec, err := x.sourceSpec(acct, lim, log)
	if err != nil {
		return nil, err
	}
	src, err := sources.Mail[kind].New(spec)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", kind, err)
	}
	return src, nil
}

// openTarget logs in to the target's JMAP endpoint for the account.
func (x *Executor) openTarget(ctx context.Context, acct *plan.Account, lim *engine.Limiter, log *slog.Logger) (*vandelay.Target, error) {
	b := x.m.Backend(acct.To)
	if b == nil {
		return nil, fmt.Errorf("target backend %q is not in the plan", acct.To)
	}
	ep := b.Endpoint(plan.ProtoJMAP)
	if ep == nil {
		return nil, fmt.Errorf("target backend %s has no jmap endpoint", b.Name)
	}
	login := acct.TargetLogin
	if login == "" {
		login = acct.Address
	}
	opts := &vandelay.TargetOptions{URL: ep.URL, Logger: log, Timeouts: Timeouts(b)}
	if lim != nil {
		opts.Limiter = lim
	}
	switch {
	case b.Login == plan.LoginMaster && b.Master != nil:
		opts.Auth = vandelay.BasicAuth{User: b.Master.User, Password: b.Master.Password.Reveal()}
	case acct.Password.IsSet():
		opts.Auth = vandelay.BasicAuth{User: login, Password: acct.Password.Reveal()}
		x.warmUp(ctx, b, login, acct.Password.Reveal(), log)
	default:
		return nil, fmt.Errorf("no password for %s at %s: give the account a password_ref, or the backend login = \"master\"", acct.Address, b.Name)
	}
	if b.Login == plan.LoginMaster {
		// A master credential acts for the account by its name.
		opts.AccountName = login
	}
	t, err := vandelay.OpenTarget(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", b.Name, err)
	}
	return t, nil
}

// warmUp logs in once per target login over the target's cleartext IMAP
// endpoint, if it has one (see the package documentation).
func (x *Executor) warmUp(ctx context.Context, b *plan.Backend, login, password string, log *slog.Logger) {
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
	if !done {
		to := Timeouts(b)
		vandelay.WarmUpIMAP(ctx, ep.Address, login, password, &to, log)
	}
}

// Export reconciles the archive onto the target.
func (x *Executor) Export(ctx context.Context, job *engine.Job) (state.Counts, error) {
	log := x.logOr(job.Log)
	a, err := x.openArchive(ctx, job.Account, false, log)
	if err != nil {
		return state.Counts{}, err
	}
	defer x.closeArchive(ctx, job.Account, a, log)
	t, err := x.openTarget(ctx, job.Account, job.Target, log)
	if err != nil {
		return state.Counts{}, err
	}
	prune := x.pruneExport(job)
	res, err := vandelay.Export(ctx, a, t, &vandelay.ExportOptions{Logger: log, Prune: prune, Progress: func(p vandelay.ExportProgress) {
		if job.Progress != nil && p.Phase == "import" {
			job.Progress(p.Done, p.Total)
		}
		if job.Work != nil && p.Phase == "import" {
			job.Work(engine.Work{Messages: p.Done, TotalMessages: p.Total, Bytes: p.Bytes, TotalBytes: p.TotalBytes})
		}
	}})
	if res == nil {
		return state.Counts{}, err
	}
	cnt := state.Counts{New: int64(res.EmailsImported), Changed: int64(res.EmailsUpdated), Deleted: int64(res.EmailsDestroyed),
		Bytes: res.UploadBytes, Mailboxes: int64(res.MailboxesCreated + res.MailboxesUpdated + res.MailboxesDestroyed)}
	cnt.Messages = cnt.New + cnt.Changed + cnt.Deleted
	if prune {
		// Taken over (apply -worker -prune-on-takeover): what the new
		// archive does not hold is gone from the target; say how much.
		cnt.Pruned, cnt.PrunedMailboxes = int64(res.EmailsPruned), int64(res.MailboxesPruned)
		log.Info("pruned the target after a takeover: emails and mailboxes the archive does not hold", "emails", res.EmailsPruned, "mailboxes", res.MailboxesPruned)
	}
	// What the target folds together (duplicates in one mailbox, keyword
	// sets of several copies), for apply's summary and the report.
	if col, cerr := a.Collapsed(ctx); cerr == nil {
		cnt.Duplicates, cnt.KeywordsMerged = col.Duplicates, col.KeywordsMerged
	} else {
		log.Warn("count collapsed copies", "err", cerr)
	}
	if err == nil && res.Partial() {
		err = fmt.Errorf("export skipped %d item(s), e.g. %s %s: %s", len(res.Skipped), res.Skipped[0].Kind, res.Skipped[0].Name, res.Skipped[0].Reason)
	}
	via := map[plan.DataKind]bool{}
	if err == nil {
		cnt.Objects, err = x.exportJMAPData(ctx, job.Account, a, t, log, &cnt, via)
	}
	if err == nil && MovesSieve(x.m, job.Account) && !via[plan.DataSieve] {
		var n int64
		n, err = x.exportSieve(ctx, job.Account, a, log, &cnt)
		cnt.Objects += n
	}
	if err == nil {
		var n int64
		n, err = x.exportDAV(ctx, job.Account, a, log, &cnt, via)
		cnt.Objects += n
	}
	if err == nil && !via[plan.DataFiles] {
		var n int64
		n, err = x.exportFiles(ctx, job.Account, a, log, &cnt)
		cnt.Objects += n
	}
	return cnt, err
}

// Verify compares the source with the archive (verify.Source: a dry-run
// import must find nothing) and the archive with the target
// (verify.Target, every blob hashed). Counts.Mismatches counts the
// differences; Counts.Conflicts the contacts, events, files and Sieve
// scripts the last export kept at the target's version (not mismatches).
func (x *Executor) Verify(ctx context.Context, job *engine.Job) (state.Counts, error) {
	log := x.logOr(job.Log)
	src, err := x.openSource(job.Account, job.Source, log)
	if err != nil {
		return state.Counts{}, fmt.Errorf("compare source: %w", err)
	}
	defer src.Close()
	// A dry run takes the run lock: the archive is opened read-write.
	a, err := x.openArchive(ctx, job.Account, false, log)
	if err != nil {
		return state.Counts{}, fmt.Errorf("compare source: %w", err)
	}
	defer a.Close()
	srep, err := verify.Source(ctx, src, a)
	if err != nil {
		return state.Counts{}, fmt.Errorf("compare source: import from %s: %w", job.Account.From, err)
	}
	t, err := x.openTarget(ctx, job.Account, job.Target, log)
	if err != nil {
		return state.Counts{}, err
	}
	rep, err := verify.Target(ctx, a, t.Client, t.AccountID, &verify.Options{Logger: log, Hashes: x.blobHashes(job.Account)})
	if err != nil {
		return state.Counts{}, fmt.Errorf("verify target: %w", err)
	}
	cnt := state.Counts{Messages: int64(rep.TargetEmails), Mismatches: int64(srep.Differences) + int64(len(rep.Mismatches))}
	var named []state.Mismatch
	for _, mm := range append(srep.Mismatches, rep.Mismatches...) {
		named = append(named, journalMismatch(mm))
	}
	via := map[plan.DataKind]bool{}
	nj, err := x.verifyJMAPData(ctx, job.Account, a, t, log, &named, &cnt, via)
	if err != nil {
		return state.Counts{}, err
	}
	cnt.Mismatches += nj
	if MovesSieve(x.m, job.Account) && !via[plan.DataSieve] {
		n, err := x.verifySieve(ctx, job.Account, a, log, &named, &cnt)
		if err != nil {
			return state.Counts{}, err
		}
		cnt.Mismatches += n
	}
	n, err := x.verifyDAV(ctx, job.Account, a, log, &named, &cnt, via)
	if err != nil {
		return state.Counts{}, err
	}
	cnt.Mismatches += n
	if !via[plan.DataFiles] {
		if n, err = x.verifyFiles(ctx, job.Account, a, log, &named, &cnt); err != nil {
			return state.Counts{}, err
		}
		cnt.Mismatches += n
	}
	for i, mm := range rep.Mismatches {
		if i == 5 {
			break
		}
		log.Warn("verify mismatch", "mailbox", mm.Mailbox, "kind", mm.Kind, "item", mm.Item)
	}
	if err := x.saveMismatches(job.Account, cnt.Mismatches, named); err != nil {
		log.Warn("the full list of mismatches is not saved", "err", err)
	}
	if cnt.Mismatches > 0 {
		// The engine journals the first ones; the total is in cnt, the
		// full list in the file saveMismatches wrote.
		if len(named) > state.MaxRecordedMismatches {
			named = named[:state.MaxRecordedMismatches]
		}
		hint := x.extraHint(job.Account, srep.Differences, rep, cnt.Mismatches-int64(len(rep.Mismatches)))
		return cnt, &engine.VerifyError{Total: int(cnt.Mismatches), Mismatches: named, Hint: hint}
	}
	return cnt, nil
}

// journalMismatch keeps what the journal needs of a verify mismatch: its
// kind, place, message identity and the two values.
func journalMismatch(mm verify.Mismatch) state.Mismatch {
	j := state.Mismatch{Kind: string(mm.Kind), Mailbox: mm.Mailbox, MessageID: mm.MessageID, ArchiveID: mm.ArchiveID,
		TargetID: mm.TargetID, Want: mm.Want, Got: mm.Got}
	if j.MessageID == "" && j.ArchiveID == 0 && j.TargetID == "" {
		j.Item = mm.Item
	}
	return j
}

// Detect probes the account's source cheaply and compares the answer with
// the archive's cursors: "12 new, 3 mailboxes changed". The archive is
// opened read-only (shared lock, failing at once when an import holds it)
// and closed before the source is asked. A missing archive probes as "not
// imported yet", with the account's size at the source (Delta.Source).
func (x *Executor) Detect(ctx context.Context, acct *plan.Account) (engine.Delta, error) {
	kind, spec, err := x.sourceSpec(acct, nil, x.log)
	if err != nil {
		return engine.Delta{}, err
	}
	var known []archive.MailboxCursor
	var checks []dataCheck
	a, err := archive.Open(ctx, x.archivePath(acct), &archive.Options{ReadOnly: true, Logger: x.log})
	switch {
	case errors.Is(err, archive.ErrNotExist):
		if known, err = x.recordedCursors(ctx, acct); err != nil {
			return engine.Delta{}, err
		}
	case errors.Is(err, archive.ErrInUse):
		return engine.Delta{}, errors.New("not probed: another mailmig process (an import or export) is using the archive")
	case err != nil:
		return engine.Delta{}, err
	default:
		known, err = a.Cursors(ctx)
		if err == nil {
			// What the archive holds of the other kinds, read now: the
			// lock is released before any source is asked.
			checks = x.dataChecks(ctx, acct, a, x.log)
		}
		a.Close()
		if err != nil {
			return engine.Delta{}, err
		}
	}
	probe := sources.Mail[kind].Probe
	if probe == nil {
		// A Takeout file is a one-time export: it has no counters to ask.
		return engine.Delta{Approx: true}, nil
	}
	r, err := probe(ctx, spec, known)
	if err != nil {
		return engine.Delta{}, fmt.Errorf("probe %s: %w", acct.From, err)
	}
	d := probeDelta(r)
	if !d.NotImported {
		d.Items = runDataChecks(ctx, checks, x.log)
	}
	return d, nil
}

// probeDelta turns a probe's result into the engine's Delta.
// A probe with nothing to compare with counted the source's totals: they
// are the account's size before its first import.
func probeDelta(r *vandelay.ProbeResult) engine.Delta {
	d := engine.Delta{New: r.New, Deleted: r.Deleted, Mailboxes: int64(r.MailboxesChanged),
		FoldersAdded: len(r.Added), FoldersRemoved: len(r.Removed), FoldersRenamed: len(r.Renamed),
		Approx: r.Approx, NotImported: r.NotImported}
	if r.NotImported {
		d.Source = &engine.SourceSize{Messages: r.Messages, Bytes: r.Bytes, BytesFrom: r.BytesFrom, Approx: r.Approx}
		if r.BytesFrom == "" {
			d.Source.Bytes = -1
		}
	}
	return d
}
