package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// Options configure [Export]. A nil *Options means the defaults.
type Options struct {
	// Logger receives progress and diagnostics. Default: discard.
	Logger *slog.Logger
	// DryRun computes and reports the changes (Result.Changes) without
	// uploading or changing anything on the target or in the archive.
	DryRun bool
	// Prune destroys target emails and non-role mailboxes that the archive
	// does not hold. The caller asks for confirmation. Default: false.
	Prune bool
	// BatchSize is the number of emails per Email/import call. Default:
	// min(maxObjectsInSet, 100).
	BatchSize int
	// Workers is the number of mailboxes imported at once, each with one
	// batch in flight (batches of one mailbox go one after the other, to
	// keep the source's order) and the next one being prepared (its large
	// blobs uploaded, bounded by maxConcurrentUpload). Default:
	// min(maxConcurrentRequests, 4).
	Workers int
	// NoInlineBlobs disables sending small blobs inside the API request
	// (RFC 9404 Blob/upload, or Cyrus's Blob/set) and uploads every blob
	// over HTTP. Default: inline when the server offers it, for blobs up to
	// InlineBlobs.MaxSize.
	NoInlineBlobs bool
	// Progress, when set, is called after each batch and phase (from one
	// goroutine at a time).
	Progress func(Progress)
}

// Progress is a snapshot of a running export.
type Progress struct {
	// Phase is "mailboxes", "match", "import", "update", "destroy" or "done".
	Phase string
	// Done and Total count messages of the import phase.
	Done, Total int64
	// Bytes and TotalBytes count their sizes.
	Bytes, TotalBytes int64
}

// Skipped names a message or mailbox the export could not place.
type Skipped struct {
	Kind      string // archive.KindEmail or archive.KindMailbox
	ArchiveID int64
	Name      string
	Reason    string
}

// Change is one planned (dry run) or applied change.
type Change struct {
	Action byte   // '+' create, '~' update, '-' destroy, '=' matched
	Kind   string // archive.KindMailbox or archive.KindEmail
	Name   string
}

// String renders a change like "+ Mailbox Work/Reports".
func (c Change) String() string { return fmt.Sprintf("%c %s %s", c.Action, c.Kind, c.Name) }

// Result reports what an export did (or, with DryRun, would do).
type Result struct {
	Target string
	// Mailbox and email counters.
	MailboxesCreated, MailboxesUpdated, MailboxesMatched, MailboxesDestroyed       int
	EmailsImported, EmailsMatched, EmailsUpdated, EmailsDestroyed, EmailsUnchanged int
	// EmailsPruned and MailboxesPruned are the part of EmailsDestroyed and
	// MailboxesDestroyed that Options.Prune destroyed (target items the
	// archive never held).
	EmailsPruned, MailboxesPruned int
	// Uploads and UploadBytes count blobs sent in this run (HTTP uploads
	// and blobs sent inside API requests).
	Uploads, UploadBytes int64
	// Skipped lists items that could not be exported; the rest was.
	Skipped []Skipped
	// Changes lists the changes, one per object (for DryRun and logs).
	Changes  []Change
	Duration time.Duration
}

// Partial reports whether some items were skipped.
func (r *Result) Partial() bool { return len(r.Skipped) > 0 }

// State keys stored per export target.
const (
	stateArchiveModSeq = "archive-modseq"
	stateEmail         = "jmap-state-Email"
	stateMailbox       = "jmap-state-Mailbox"
	stateInflight      = "inflight"
	stateRetry         = "retry"
)

// TargetName is the archive's name for an export target: the session URL
// and the account id.
func TargetName(c *jc.Client, accountID string) string {
	return "jmap " + c.SessionURL() + " " + accountID
}

type exporter struct {
	a    *archive.Archive
	c    *jc.Client
	acct string
	tgt  *archive.ExportTarget
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	res *Result

	boxes     map[int64]*archive.Mailbox // all archive mailboxes, tombstones too
	mbRemote  map[int64]string           // archive mailbox id → target id
	remote    map[string]*jc.Mailbox     // target mailboxes by id
	maxBoxes  int
	emaps     map[int64]archive.Mapping
	inflight  map[int64]bool // in flight now (persisted)
	wasFlight map[int64]bool // in flight when a previous run died
	retry     map[int64]bool // to look at again next run
	progress  Progress
	// mailboxState is the target's Mailbox state when the run read it.
	mailboxState string
	// recreated are archive mailboxes whose target mailbox had vanished.
	recreated []int64
	// inline says how blobs go inside API requests (Method "" : never).
	inline    jc.InlineBlobs
	inlineOff atomic.Bool
	// inlined and inlinedBytes count blobs sent inside requests (under mu).
	inlined, inlinedBytes int64
}

// Export converges the target account with the archive. See the package
// documentation for the algorithm and its invariants. The returned error
// is for failures that stop the run (connection, authentication, archive
// I/O); per-item failures are in Result.Skipped.
func Export(ctx context.Context, a *archive.Archive, c *jc.Client, accountID string, opts *Options) (*Result, error) {
	start := time.Now()
	if opts == nil {
		opts = &Options{}
	}
	e := &exporter{a: a, c: c, acct: accountID, opts: *opts, log: opts.Logger, res: &Result{Target: TargetName(c, accountID)},
		mbRemote: map[int64]string{}, inflight: map[int64]bool{}, wasFlight: map[int64]bool{}, retry: map[int64]bool{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.opts.BatchSize <= 0 {
		e.opts.BatchSize = min(c.MaxObjectsInSet(), 100)
	}
	e.opts.BatchSize = min(e.opts.BatchSize, c.MaxObjectsInSet())
	if e.opts.Workers <= 0 {
		e.opts.Workers = min(c.Session().Core.MaxConcurrentRequests, 4)
	}
	if mc, ok := c.Session().MailCapability(accountID); !ok {
		return nil, fmt.Errorf("jmap account %s does not offer mail (%s)", accountID, jc.CapMail)
	} else if mc.MaxMailboxesPerEmail != nil {
		e.maxBoxes = *mc.MaxMailboxesPerEmail
	}
	tgt, err := a.ExportTarget(ctx, e.res.Target)
	if err != nil {
		return nil, err
	}
	e.tgt = tgt
	if !e.opts.NoInlineBlobs {
		e.inline = c.InlineBlobs(accountID)
	}
	up0, upb0 := c.Stats().Uploads.Load(), c.Stats().UploadBytes.Load()
	err = e.run(ctx)
	e.res.Duration = time.Since(start)
	e.res.Uploads = c.Stats().Uploads.Load() - up0 + e.inlined
	e.res.UploadBytes = c.Stats().UploadBytes.Load() - upb0 + e.inlinedBytes
	return e.res, err
}

func (e *exporter) run(ctx context.Context) error {
	// The archive cursor is read before anything else: whatever an import
	// commits while we run is newer and is picked up next time.
	curModSeq, err := e.a.ModSeq(ctx)
	if err != nil {
		return err
	}
	if err := e.loadState(ctx); err != nil {
		return err
	}
	emailState, err := e.emailState(ctx)
	if err != nil {
		return err
	}
	if err := e.syncMailboxes(ctx); err != nil {
		return err
	}
	if err := e.syncMessages(ctx); err != nil {
		return err
	}
	if err := e.destroyMailboxes(ctx); err != nil {
		return err
	}
	if e.opts.Prune {
		if err := e.prune(ctx); err != nil {
			return err
		}
	}
	e.report("done")
	if e.opts.DryRun {
		return nil
	}
	// Catch up with this run's own changes (and anything else that happened
	// meanwhile), so that the next run starts from here.
	if st, err := e.catchUp(ctx, emailState); err != nil {
		return err
	} else if st != "" {
		emailState = st
	}
	ids := make([]int64, 0, len(e.retry))
	for id := range e.retry {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b, _ := json.Marshal(ids)
	for k, v := range map[string]string{stateRetry: string(b), stateArchiveModSeq: strconv.FormatInt(curModSeq, 10), stateEmail: emailState, stateMailbox: e.mailboxState} {
		if err := e.tgt.SetState(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (e *exporter) loadState(ctx context.Context) error {
	var err error
	if e.emaps, err = e.tgt.Mappings(ctx, archive.KindEmail); err != nil {
		return err
	}
	for key, set := range map[string]map[int64]bool{stateInflight: e.wasFlight, stateRetry: e.retry} {
		s, err := e.tgt.State(ctx, key)
		if err != nil {
			return err
		}
		var ids []int64
		if s != "" {
			if err := json.Unmarshal([]byte(s), &ids); err != nil {
				return fmt.Errorf("export state %s: %w", key, err)
			}
		}
		for _, id := range ids {
			set[id] = true
		}
	}
	return nil
}

// emailState returns the target's current Email state (Email/get with no
// ids) and, when a previous run stored one, forgets mappings of emails
// destroyed on the target since, so that they are exported again.
func (e *exporter) emailState(ctx context.Context) (string, error) {
	var gr jc.GetResponse
	call := &jc.Call{Method: "Email/get", Args: map[string]any{"accountId": e.acct, "ids": []string{}}, Result: &gr}
	if err := e.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
		return "", err
	}
	if call.Err != nil {
		return "", call.Err
	}
	prev, err := e.tgt.State(ctx, stateEmail)
	if err != nil || prev == "" || prev == gr.State {
		return gr.State, err
	}
	_, err = e.catchUp(ctx, prev)
	return gr.State, err
}

// catchUp reads Email/changes since state, forgets the mappings of emails
// destroyed on the target in that time (they are exported again) and
// returns the newest state. The end of a run catches up with its own
// changes, so that the next run asks only for what happened after it.
func (e *exporter) catchUp(ctx context.Context, since string) (string, error) {
	destroyed := map[string]bool{}
	for {
		var ch jc.ChangesResponse
		call := &jc.Call{Method: "Email/changes", Args: map[string]any{"accountId": e.acct, "sinceState": since, "maxChanges": 10 * e.c.MaxObjectsInGet()}, Result: &ch}
		if err := e.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
			return "", err
		}
		if call.Err != nil {
			// cannotCalculateChanges: fall back to checking every mapping.
			e.log.Info("email changes unavailable, checking every mapped email", "err", call.Err)
			return "", e.checkAllMappings(ctx)
		}
		for _, id := range ch.Destroyed {
			destroyed[id] = true
		}
		if !ch.HasMoreChanges || ch.NewState == since {
			since = ch.NewState
			break
		}
		since = ch.NewState
	}
	if len(destroyed) == 0 {
		return since, nil
	}
	var drop []int64
	for id, m := range e.emaps {
		if destroyed[m.RemoteID] {
			drop = append(drop, id)
		}
	}
	return since, e.forget(ctx, drop)
}

func (e *exporter) checkAllMappings(ctx context.Context) error {
	ids := make([]string, 0, len(e.emaps))
	for _, m := range e.emaps {
		ids = append(ids, m.RemoteID)
	}
	var got []jc.Email
	if _, err := jc.GetObjects(ctx, e.c, e.acct, "Email", ids, []string{"id"}, &got); err != nil {
		return err
	}
	present := map[string]bool{}
	for _, g := range got {
		present[g.ID] = true
	}
	var drop []int64
	for id, m := range e.emaps {
		if !present[m.RemoteID] {
			drop = append(drop, id)
		}
	}
	return e.forget(ctx, drop)
}

// forget drops mappings whose target email is gone and queues the
// messages for another look.
func (e *exporter) forget(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	e.log.Info("emails gone from the target, exporting them again", "count", len(ids))
	for _, id := range ids {
		delete(e.emaps, id)
		e.retry[id] = true
	}
	if e.opts.DryRun {
		return nil
	}
	return e.tgt.DeleteMappings(ctx, archive.KindEmail, ids)
}

func (e *exporter) report(phase string) {
	if e.opts.Progress == nil {
		return
	}
	e.mu.Lock()
	e.progress.Phase = phase
	p := e.progress
	e.mu.Unlock()
	e.opts.Progress(p)
}

func (e *exporter) skip(kind string, id int64, name, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.res.Skipped = append(e.res.Skipped, Skipped{Kind: kind, ArchiveID: id, Name: name, Reason: reason})
	if kind == archive.KindEmail {
		e.retry[id] = true
	}
	e.log.Warn("item skipped", "action", "export", "kind", kind, "name", name, "err", reason)
}

func (e *exporter) change(action byte, kind, name string) {
	e.mu.Lock()
	e.res.Changes = append(e.res.Changes, Change{Action: action, Kind: kind, Name: name})
	e.mu.Unlock()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// mailboxPath is the archive path of a mailbox, for messages to users.
func (e *exporter) mailboxPath(id int64) string {
	if b := e.boxes[id]; b != nil {
		return b.Path
	}
	return "#" + itoa(id)
}

// blobOpener streams a blob from the archive for each upload attempt.
func (e *exporter) blobOpener(ctx context.Context, hash string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		r, _, err := e.a.Blob(ctx, hash)
		return r, err
	}
}

// desired returns the target mailboxIds and keywords for m; ok is false
// (with a reason) when a mailbox of m has no target mailbox.
func (e *exporter) desired(m *archive.Message) (mbs map[string]bool, kws map[string]bool, reason string) {
	mbs = map[string]bool{}
	for _, id := range m.MailboxIDs {
		r, ok := e.mbRemote[id]
		if !ok {
			return nil, nil, "its mailbox " + e.mailboxPath(id) + " could not be created on the target"
		}
		mbs[r] = true
	}
	if e.maxBoxes > 0 && len(mbs) > e.maxBoxes {
		return nil, nil, fmt.Sprintf("it is in %d mailboxes; the target allows %d per email", len(mbs), e.maxBoxes)
	}
	kws = map[string]bool{}
	for _, k := range m.Keywords {
		if validKeyword(k) {
			kws[k] = true
		} else {
			e.log.Warn("keyword not valid in jmap, dropped", "keyword", k)
		}
	}
	return mbs, kws, ""
}
