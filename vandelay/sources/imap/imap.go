package imap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Source imports one IMAP account. See the package documentation.
type Source struct {
	cfg  Options
	log  *slog.Logger
	prog vandelay.Progress // of the running Sync

	mu    sync.Mutex
	conns []*imapclient.Client
	// Stats of the last Sync, for tests and the benchmark.
	stats Stats
	// ignoreCaps are capabilities treated as absent (tests of the paths
	// for servers without them; see export_test.go).
	ignoreCaps []imap.Cap
}

// caps returns the connection's capabilities minus ignoreCaps.
func (s *Source) caps(c *imapclient.Client) imap.CapSet {
	caps := c.Caps()
	if len(s.ignoreCaps) == 0 {
		return caps
	}
	caps = caps.Copy()
	for _, x := range s.ignoreCaps {
		delete(caps, x)
	}
	return caps
}

// Stats counts the protocol work of one Sync.
type Stats struct {
	// Connections opened, mailboxes SELECTed (EXAMINEd), bodies fetched.
	Connections, Selects, Bodies int
	// Skipped mailboxes: unchanged by LIST-STATUS + CONDSTORE.
	Unchanged int
	// Compressed counts connections with COMPRESS=DEFLATE.
	Compressed int
}

var _ vandelay.MailSource = (*Source)(nil)

// Options are the settings of an IMAP source. A zero field means its
// default.
type Options struct {
	vandelay.Server
	vandelay.Login
	vandelay.Scope
	// NoCompress disables IMAP COMPRESS=DEFLATE (RFC 4978), which is
	// used when the server offers it.
	NoCompress bool
	// Connections is the number of parallel connections. Default: 4,
	// capped by Throttle's connections.
	Connections int
	// Batch is the number of messages per UID FETCH. Default: 100.
	Batch int
	// Throttle limits rate and connections; nil means unlimited.
	Throttle *vandelay.Throttle
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

// New returns an IMAP source for opts (a copy is kept). A nil opts is
// refused: a source needs at least a server and a user.
func New(opts *Options) (vandelay.MailSource, error) {
	if opts == nil {
		opts = &Options{}
	}
	cfg := *opts
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: imap source needs a server address (host:port)", vandelay.ErrUsage)
	}
	if cfg.User == "" {
		return nil, fmt.Errorf("%w: imap source needs a user", vandelay.ErrUsage)
	}
	switch strings.ToLower(cfg.Auth) {
	case vandelay.AuthXOAUTH2, vandelay.AuthOAuthBearer:
		if cfg.Token == "" {
			return nil, fmt.Errorf("%w: %s needs an access token", vandelay.ErrUsage, cfg.Auth)
		}
	}
	return &Source{cfg: cfg, log: vandelay.LoggerOr(cfg.Logger).With("proto", "imap"), prog: vandelay.ProgressOr(nil)}, nil
}

// Describe implements vandelay.MailSource.
func (s *Source) Describe() archive.Source {
	login := s.cfg.User
	if s.cfg.MasterUser != "" {
		login = s.cfg.MasterUser
	}
	return archive.Source{Kind: "imap", Endpoint: s.cfg.Address, Account: s.cfg.User, Login: login}
}

// Stats returns the protocol counters of the last Sync.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close implements vandelay.MailSource.
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Logout().Wait()
		c.Close()
	}
	s.conns = nil
	return nil
}

func (s *Source) addConn(c *imapclient.Client) {
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.stats.Connections++
	s.mu.Unlock()
}

func (s *Source) dropConn(c *imapclient.Client) {
	c.Close()
	s.mu.Lock()
	for i, x := range s.conns {
		if x == c {
			s.conns = append(s.conns[:i], s.conns[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

func (s *Source) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// mailbox is one in-scope, selectable mailbox of a sync.
type mailbox struct {
	id     int64
	path   string // UTF-8 path, go-imap encodes it as modified UTF-7
	status *imap.StatusData

	mu        sync.Mutex
	remaining int // fetch tasks outstanding
	failed    error
	cursor    archive.Cursor
}

type task struct {
	mbox *mailbox
	uids []imap.UID // nil: scan the mailbox
}

// queue is an unbounded work queue that knows when all work is done
// (no queued task and none running).
type queue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	items   []task
	pending int
}

func newQueue() *queue {
	q := &queue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(t task) {
	q.mu.Lock()
	q.items = append(q.items, t)
	q.pending++
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *queue) pop() (task, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) == 0 && q.pending > 0 {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return task{}, false
	}
	t := q.items[0]
	q.items = q.items[1:]
	return t, true
}

func (q *queue) done() {
	q.mu.Lock()
	q.pending--
	q.mu.Unlock()
	q.cond.Broadcast()
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	s.prog = vandelay.ProgressOr(progress)
	s.mu.Lock()
	s.stats = Stats{}
	s.mu.Unlock()
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	s.addConn(c)
	caps := s.caps(c)
	condstore := caps.Has(imap.CapCondStore) || caps.Has(imap.CapIMAP4rev2)
	s.log.Debug("capabilities", "condstore", condstore, "list_status", caps.Has(imap.CapListStatus),
		"special_use", caps.Has(imap.CapSpecialUse), "list_extended", caps.Has(imap.CapListExtended))

	list, err := s.list(ctx, c, condstore)
	if err != nil {
		return err
	}
	var infos []archive.MailboxInfo
	var selectable []*imap.ListData
	for _, ld := range list {
		mi := mailboxInfo(ld)
		if strings.EqualFold(ld.Mailbox, "INBOX") {
			mi.Path = "INBOX"
		}
		if !s.cfg.InScope(mi.Path) || (s.cfg.SubscribedOnly && !mi.Subscribed && mi.Path != "INBOX") {
			continue
		}
		infos = append(infos, mi)
		if mi.Selectable {
			selectable = append(selectable, ld)
		}
	}
	inScope := func(p string) bool {
		return s.cfg.InScope(p) // unsubscribed mailboxes in scope are not deleted by --subscribed-only
	}
	if s.cfg.SubscribedOnly {
		listed := map[string]bool{}
		for _, mi := range infos {
			listed[mi.Path] = true
		}
		inScope = func(p string) bool { return listed[p] }
	}
	boxes, err := run.SyncMailboxes(ctx, infos, inScope)
	if err != nil {
		return err
	}

	q := newQueue()
	var mboxes []*mailbox
	for _, ld := range selectable {
		path := ld.Mailbox
		if strings.EqualFold(path, "INBOX") {
			path = "INBOX"
		}
		ab := boxes[path]
		if ab == nil {
			continue
		}
		m := &mailbox{id: ab.ID, path: path, status: ld.Status}
		mboxes = append(mboxes, m)
		// No-change fast path: LIST-STATUS shows the same UIDVALIDITY,
		// UIDNEXT, HIGHESTMODSEQ and message count as the saved cursor,
		// so nothing was added, expunged or re-flagged (RFC 7162 3.1.2.1:
		// every flag change and, with Dovecot, expunge raises
		// HIGHESTMODSEQ). No SELECT is needed.
		if st := ld.Status; condstore && st != nil && st.HighestModSeq > 0 && st.NumMessages != nil {
			cur, err := run.Cursor(ctx, m.id)
			if err != nil {
				return err
			}
			if cur.Validity == uint64(st.UIDValidity) && cur.Next == uint64(st.UIDNext) && cur.ModSeq == st.HighestModSeq &&
				cur.Extra == strconv.FormatUint(uint64(*st.NumMessages), 10) {
				s.count(func(st *Stats) { st.Unchanged++ })
				continue
			}
		}
		q.push(task{mbox: m})
	}

	nconn := s.cfg.Throttle.Conns(s.cfg.Connections)
	var wg sync.WaitGroup
	var fatalMu sync.Mutex
	var fatal error
	for i := 0; i < nconn; i++ {
		wg.Add(1)
		go func(first bool) {
			defer wg.Done()
			var conn *imapclient.Client
			if first {
				conn = c
			}
			w := &worker{s: s, run: run, q: q, c: conn, condstore: condstore, primary: first}
			if err := w.loop(ctx); err != nil {
				fatalMu.Lock()
				if fatal == nil {
					fatal = err
				}
				fatalMu.Unlock()
			}
		}(i == 0)
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := map[string]error{}
	for _, m := range mboxes {
		if m.failed != nil {
			failed[m.path] = m.failed
		}
	}
	if len(failed) > 0 {
		return &vandelay.PartialError{Failed: failed}
	}
	return nil
}

// list runs LIST with LIST-EXTENDED, SPECIAL-USE and LIST-STATUS when
// offered (RFC 5258, 6154, 5819), else LIST plus STATUS per mailbox.
func (s *Source) list(ctx context.Context, c *imapclient.Client, condstore bool) ([]*imap.ListData, error) {
	return s.listStatus(ctx, c, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: condstore})
}

// listStatus is list with the given STATUS items.
func (s *Source) listStatus(ctx context.Context, c *imapclient.Client, stOpts *imap.StatusOptions) ([]*imap.ListData, error) {
	caps := s.caps(c)
	opts := &imap.ListOptions{}
	if caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2) {
		opts.ReturnSubscribed = true
		opts.ReturnChildren = true
		if caps.Has(imap.CapSpecialUse) {
			opts.ReturnSpecialUse = true
		}
	}
	listStatus := caps.Has(imap.CapListStatus) || caps.Has(imap.CapIMAP4rev2)
	if listStatus {
		opts.ReturnStatus = stOpts
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	list, err := c.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("%w: list mailboxes: %w", vandelay.ErrConnect, err)
	}
	if !listStatus {
		for _, ld := range list {
			if hasAttr(ld.Attrs, imap.MailboxAttrNoSelect) || hasAttr(ld.Attrs, imap.MailboxAttrNonExistent) {
				continue
			}
			st, err := c.Status(ld.Mailbox, stOpts).Wait()
			if err != nil {
				return nil, fmt.Errorf("status of %q: %w", ld.Mailbox, err)
			}
			ld.Status = st
		}
	}
	if !opts.ReturnSubscribed {
		// go-imap v2 has no LSUB; LIST (SUBSCRIBED) works on most servers
		// without LIST-EXTENDED too, and if it fails subscriptions stay
		// unknown (false).
		subs, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
		if err == nil {
			sub := map[string]bool{}
			for _, l := range subs {
				sub[l.Mailbox] = true
			}
			for _, ld := range list {
				if sub[ld.Mailbox] {
					ld.Attrs = append(ld.Attrs, imap.MailboxAttrSubscribed)
				}
			}
		}
	}
	return list, nil
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

func mailboxInfo(ld *imap.ListData) archive.MailboxInfo {
	mi := archive.MailboxInfo{Path: ld.Mailbox, Selectable: true}
	if ld.Delim != 0 {
		mi.Sep = string(ld.Delim)
	}
	for _, a := range ld.Attrs {
		switch {
		case strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)), strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)):
			mi.Selectable = false
		case strings.EqualFold(string(a), string(imap.MailboxAttrSubscribed)):
			mi.Subscribed = true
		default:
			if r := archive.RoleFromAttr(string(a)); r != "" && mi.Role == "" {
				mi.Role = r
			}
		}
	}
	if mi.Selectable && ld.Status != nil && ld.Status.UIDValidity != 0 {
		mi.SourceRef = "uidvalidity:" + strconv.FormatUint(uint64(ld.Status.UIDValidity), 10)
	}
	return mi
}

// worker owns one connection and runs tasks from the queue.
type worker struct {
	s         *Source
	run       *archive.Run
	q         *queue
	c         *imapclient.Client
	condstore bool
	selected  string
	backoff   vandelay.Backoff
	// primary is the first connection; the others give their task back
	// and stop when they cannot connect (the server's connection limit),
	// so the sync degrades to fewer connections instead of failing.
	primary bool
	exit    bool
	// buf, hash and spool are reused from message to message (read).
	buf   []byte
	hash  hash.Hash
	spool *os.File
}

// loop runs tasks until the queue is drained. It returns an error only
// for failures that end the whole sync (authentication, cancellation on
// the only connection); mailbox failures are recorded on the mailbox.
func (w *worker) loop(ctx context.Context) error {
	defer func() {
		if w.c != nil {
			w.s.dropConn(w.c)
		}
		if w.spool != nil {
			w.spool.Close()
		}
	}()
	for {
		t, ok := w.q.pop()
		if !ok {
			return nil
		}
		err := w.runTask(ctx, t)
		w.q.done()
		if err != nil {
			return err
		}
		if w.exit {
			return nil
		}
	}
}

// runTask runs one task with retries on temporary failures.
func (w *worker) runTask(ctx context.Context, t task) error {
	for {
		if err := ctx.Err(); err != nil {
			w.fail(t, err)
			return nil
		}
		if w.c == nil {
			c, err := w.s.dial(ctx)
			if err != nil {
				if errors.Is(err, vandelay.ErrAuth) {
					w.fail(t, err)
					return err
				}
				if !w.primary && w.backoff.Attempts == 0 {
					w.s.log.Warn("extra connection refused, continuing with fewer", "err", err)
					w.q.push(t)
					w.exit = true
					return nil
				}
				if werr := w.backoff.Wait(ctx); werr != nil {
					w.fail(t, err)
					return nil
				}
				continue
			}
			w.s.addConn(c)
			w.c, w.selected = c, ""
		}
		var err error
		if t.uids == nil {
			err = w.scan(ctx, t.mbox)
		} else {
			err = w.fetch(ctx, t.mbox, t.uids)
		}
		if err == nil {
			w.backoff.Reset()
			if t.uids != nil {
				w.fetchDone(ctx, t.mbox)
			}
			return nil
		}
		if ctx.Err() != nil || !temporary(err) {
			w.fail(t, err)
			if ctx.Err() == nil && t.uids != nil {
				w.fetchDone(ctx, t.mbox)
			}
			return nil
		}
		w.s.log.Warn("temporary failure, retrying", "mailbox", t.mbox.path, "err", err)
		w.s.dropConn(w.c)
		w.c = nil
		if werr := w.backoff.Wait(ctx); werr != nil {
			w.fail(t, fmt.Errorf("%w: %w", werr, err))
			if t.uids != nil {
				w.fetchDone(ctx, t.mbox)
			}
			return nil
		}
	}
}

func (w *worker) fail(t task, err error) {
	t.mbox.mu.Lock()
	if t.mbox.failed == nil {
		t.mbox.failed = err
	}
	t.mbox.mu.Unlock()
	w.s.log.Error("mailbox not synced", "mailbox", t.mbox.path, "err", err)
}

// fetchDone notes a finished fetch task; the last one of a mailbox saves
// its cursor (unless a task failed).
func (w *worker) fetchDone(ctx context.Context, m *mailbox) {
	m.mu.Lock()
	m.remaining--
	last := m.remaining == 0 && m.failed == nil
	cur := m.cursor
	m.mu.Unlock()
	if last {
		if err := w.run.SetCursor(ctx, m.id, cur); err != nil {
			w.fail(task{mbox: m}, err)
		}
	}
}

func (w *worker) examine(ctx context.Context, path string) (*imap.SelectData, error) {
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()
	sel, err := w.c.Select(path, &imap.SelectOptions{ReadOnly: true, CondStore: w.condstore}).Wait()
	if err != nil {
		w.selected = ""
		return nil, fmt.Errorf("examine %q: %w", path, err)
	}
	w.selected = path
	w.s.count(func(st *Stats) { st.Selects++ })
	return sel, nil
}

// flagInfo is what FETCH (UID FLAGS RFC822.SIZE MODSEQ) says about a UID.
type flagInfo struct {
	keywords []string
	deleted  bool
	size     int64
	modseq   uint64
}

func keywordsOf(flags []imap.Flag) (kws []string, deleted bool) {
	for _, f := range flags {
		k, del := archive.KeywordFromFlag(string(f))
		if del {
			deleted = true
		}
		if k != "" {
			kws = append(kws, k)
		}
	}
	return archive.NormalizeKeywords(kws), deleted
}

// scan compares a mailbox with the archive: expunged copies are removed,
// changed flags applied, and new UIDs queued for fetching.
func (w *worker) scan(ctx context.Context, m *mailbox) error {
	sel, err := w.examine(ctx, m.path)
	if err != nil {
		return err
	}
	cur, err := w.run.Cursor(ctx, m.id)
	if err != nil {
		return err
	}
	if cur.Validity != 0 && cur.Validity != uint64(sel.UIDValidity) {
		w.s.log.Warn("UIDVALIDITY changed, re-matching by content", "mailbox", m.path, "old", cur.Validity, "new", sel.UIDValidity)
		if err := w.run.ResetMailbox(ctx, m.id); err != nil {
			return err
		}
		cur = archive.Cursor{}
	}
	locs, err := w.run.Locations(ctx, m.id)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()

	present := map[imap.UID]bool{}
	known := map[imap.UID]*flagInfo{}
	if sel.NumMessages > 0 {
		incremental := w.condstore && cur.ModSeq > 0 && sel.HighestModSeq > 0
		if incremental {
			sd, err := w.c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
			if err != nil {
				return fmt.Errorf("search %q: %w", m.path, err)
			}
			for _, u := range sd.AllUIDs() {
				present[u] = true
			}
		}
		opts := &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, ModSeq: w.condstore}
		if incremental {
			opts.ChangedSince = cur.ModSeq
		}
		if err := w.fetchFlags(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, opts, known); err != nil {
			return fmt.Errorf("fetch flags of %q: %w", m.path, err)
		}
		if !incremental {
			for u := range known {
				present[u] = true
			}
		}
		// UIDs we hold no copy of and whose flags we did not just learn
		// (e.g. skipped as \Deleted in an earlier run): learn them now,
		// cheaply, before deciding to fetch bodies.
		var unknown imap.UIDSet
		for u := range present {
			if _, ok := locs[uidKey(u)]; !ok && known[u] == nil {
				unknown.AddNum(u)
			}
		}
		if len(unknown) > 0 {
			if err := w.fetchFlags(unknown, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true, ModSeq: w.condstore}, known); err != nil {
				return fmt.Errorf("fetch flags of %q: %w", m.path, err)
			}
		}
	}

	for key := range locs {
		u, err := strconv.ParseUint(key, 10, 32)
		if err != nil || !present[imap.UID(u)] {
			if err := w.run.Remove(ctx, m.id, key); err != nil {
				return err
			}
		}
	}
	var newUIDs []imap.UID
	var newBytes int64
	for u := range present {
		fi := known[u]
		loc, have := locs[uidKey(u)]
		deleted := fi != nil && fi.deleted && !w.s.cfg.IncludeDeleted
		switch {
		case have && deleted:
			if err := w.run.Remove(ctx, m.id, loc.Key); err != nil {
				return err
			}
		case have && fi != nil:
			if strings.Join(fi.keywords, " ") != strings.Join(loc.Keywords, " ") || fi.modseq != loc.ModSeq {
				if err := w.run.SetKeywords(ctx, m.id, loc.Key, fi.keywords, fi.modseq); err != nil {
					return err
				}
			}
		case have:
		case deleted:
			w.run.Skip()
		default:
			newUIDs = append(newUIDs, u)
			if fi != nil {
				newBytes += fi.size
			}
		}
	}
	sort.Slice(newUIDs, func(i, j int) bool { return newUIDs[i] < newUIDs[j] })
	cursor := archive.Cursor{Validity: uint64(sel.UIDValidity), Next: uint64(sel.UIDNext), ModSeq: sel.HighestModSeq,
		Extra: strconv.FormatUint(uint64(sel.NumMessages), 10)}
	if len(newUIDs) == 0 {
		return w.run.SetCursor(ctx, m.id, cursor)
	}
	w.s.prog.Discovered(len(newUIDs), newBytes)
	// Chunks by count and size, so that parallel connections share a big
	// mailbox and one chunk never holds too many large messages.
	batch := w.s.cfg.Batch
	if batch <= 0 {
		batch = 100
	}
	const chunkBytes = 16 << 20
	var chunks [][]imap.UID
	var curChunk []imap.UID
	var curBytes int64
	for _, u := range newUIDs {
		var sz int64
		if fi := known[u]; fi != nil {
			sz = fi.size
		}
		if len(curChunk) > 0 && (len(curChunk) >= batch || curBytes+sz > chunkBytes) {
			chunks = append(chunks, curChunk)
			curChunk, curBytes = nil, 0
		}
		curChunk = append(curChunk, u)
		curBytes += sz
	}
	chunks = append(chunks, curChunk)
	m.mu.Lock()
	m.cursor = cursor
	m.remaining = len(chunks)
	m.mu.Unlock()
	for _, ch := range chunks {
		w.q.push(task{mbox: m, uids: ch})
	}
	return nil
}

func uidKey(u imap.UID) string { return strconv.FormatUint(uint64(u), 10) }

func (w *worker) fetchFlags(set imap.UIDSet, opts *imap.FetchOptions, into map[imap.UID]*flagInfo) error {
	cmd := w.c.Fetch(set, opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return err
		}
		if buf.UID == 0 {
			continue
		}
		kws, del := keywordsOf(buf.Flags)
		into[buf.UID] = &flagInfo{keywords: kws, deleted: del, size: buf.RFC822Size, modseq: buf.ModSeq}
	}
	return cmd.Close()
}

// fetch downloads the bodies of uids (one UID FETCH; the server streams
// the responses back to back) and adds them to the archive. Each body is
// read once, hashed on the way, into the worker's reused buffer (or, above
// spoolAbove, into a spool file), so that fetching allocates nothing per
// message in proportion to its size.
func (w *worker) fetch(ctx context.Context, m *mailbox, uids []imap.UID) error {
	if w.selected != m.path {
		if _, err := w.examine(ctx, m.path); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { w.c.Close() })
	defer stop()
	var set imap.UIDSet
	set.AddNum(uids...)
	opts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, ModSeq: w.condstore,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}}}
	cmd := w.c.Fetch(set, opts)
	th := w.s.cfg.Throttle
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		if err := th.WaitMessage(ctx); err != nil {
			cmd.Close()
			return err
		}
		var (
			uid    imap.UID
			flags  []imap.Flag
			date   time.Time
			modseq uint64
			body   fetchedBody
			got    bool
		)
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataFlags:
				flags = it.Flags
			case imapclient.FetchItemDataInternalDate:
				date = it.Time
			case imapclient.FetchItemDataModSeq:
				modseq = it.ModSeq
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				if err := th.WaitBytes(ctx, it.Literal.Size()); err != nil {
					cmd.Close()
					return err
				}
				var err error
				if body, err = w.read(it.Literal, it.Literal.Size()); err != nil {
					cmd.Close()
					return err
				}
				got = true
			}
		}
		if uid == 0 || !got {
			continue
		}
		w.s.count(func(st *Stats) { st.Bodies++ })
		kws, deleted := keywordsOf(flags)
		if deleted && !w.s.cfg.IncludeDeleted {
			w.run.Skip()
			continue
		}
		nm := &archive.NewMessage{Body: body.mem, Hash: body.hash, ReceivedAt: date, Keywords: kws, ModSeq: modseq}
		if body.mem == nil {
			nm.Content, nm.Size = body.spool, body.size
		}
		if err := w.run.Add(ctx, m.id, uidKey(uid), nm); err != nil {
			cmd.Close()
			return fmt.Errorf("%w: %w", errArchive, err)
		}
		w.s.prog.Done(1, body.size)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch from %q: %w", m.path, err)
	}
	return nil
}

// spoolAbove is the body size above which a message is written to a spool
// file instead of held in memory, so that a worker holds at most this much
// of a message (peak memory follows the connection count, not the largest
// message). Below it, a memory copy is cheaper than a file round trip;
// most mail is far smaller.
const spoolAbove = 4 << 20

// readPiece is how much is read (and hashed) at a time: large enough for
// few calls, small enough to stay in the CPU cache between read and hash.
const readPiece = 256 << 10

// fetchedBody is a message body as read by worker.read: in mem (the worker's
// buffer, valid until the next read) or in spool (positioned at 0).
type fetchedBody struct {
	mem   []byte
	spool *os.File
	size  int64
	hash  string
}

// read reads a literal of size bytes, hashing it on the way. A body up to
// spoolAbove lands in w.buf (grown once to the largest such message and
// then reused); a larger one goes through a readPiece slice of w.buf into
// w.spool, a file beside the archive that is unlinked at once (nothing is
// left behind by a SIGKILL) and reused by the next large message.
func (w *worker) read(r io.Reader, size int64) (fetchedBody, error) {
	if w.hash == nil {
		w.hash = sha256.New()
	}
	h := w.hash
	h.Reset()
	b := fetchedBody{size: size}
	if size <= spoolAbove {
		if int64(cap(w.buf)) < size {
			// Doubling (from 64 KiB, up to spoolAbove) rather than the
			// exact size: a run of ever larger messages reallocates a few
			// times, not once per message.
			w.buf = make([]byte, min(max(size, 2*int64(cap(w.buf)), 64<<10), spoolAbove))
		}
		buf := w.buf[:size]
		for off := int64(0); off < size; off += readPiece {
			p := buf[off:min(off+readPiece, size)]
			if _, err := io.ReadFull(r, p); err != nil {
				return b, fmt.Errorf("read message body: %w", err)
			}
			h.Write(p)
		}
		b.mem = buf
	} else {
		if cap(w.buf) < readPiece {
			w.buf = make([]byte, readPiece)
		}
		f, err := w.spoolFile()
		if err != nil {
			return b, err
		}
		p := w.buf[:readPiece]
		for left := size; left > 0; left -= int64(len(p)) {
			p = p[:min(int64(readPiece), left)]
			if _, err := io.ReadFull(r, p); err != nil {
				return b, fmt.Errorf("read message body: %w", err)
			}
			h.Write(p)
			if _, err := f.Write(p); err != nil {
				return b, fmt.Errorf("%w: spool message body: %w", errArchive, err)
			}
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return b, fmt.Errorf("%w: spool message body: %w", errArchive, err)
		}
		b.spool = f
	}
	var sum [sha256.Size]byte
	b.hash = hex.EncodeToString(h.Sum(sum[:0]))
	return b, nil
}

// spoolFile returns the worker's spool file, empty and at offset 0.
func (w *worker) spoolFile() (*os.File, error) {
	if w.spool == nil {
		f, err := os.CreateTemp(w.run.TempDir(), ".mailmig-spool-*")
		if err != nil {
			return nil, fmt.Errorf("%w: spool file for a large message: %w", errArchive, err)
		}
		os.Remove(f.Name()) // unlinked: gone with the descriptor, whatever happens
		w.spool = f
		return f, nil
	}
	if err := w.spool.Truncate(0); err != nil {
		return nil, fmt.Errorf("%w: spool file: %w", errArchive, err)
	}
	if _, err := w.spool.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("%w: spool file: %w", errArchive, err)
	}
	return w.spool, nil
}

// errArchive marks local archive failures (not retried).
var errArchive = errors.New("archive write failed")
