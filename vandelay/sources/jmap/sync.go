package jmap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// emailProps are the Email properties an import reads (RFC 8621 4.1):
// the raw message is the blob, the rest is what the archive keeps beside
// it. Threads are not copied: a target rebuilds them.
var emailProps = []string{"id", "blobId", "mailboxIds", "keywords", "receivedAt", "size"}

// mailboxProps are the Mailbox properties an import reads (RFC 8621 2).
var mailboxProps = []string{"id", "name", "parentId", "role", "sortOrder", "isSubscribed"}

// countProps are the Mailbox properties that change with every Email
// change; a Mailbox/changes that updated only these (RFC 8621 2.2
// updatedProperties) needs no Mailbox/get.
var countProps = map[string]bool{"totalEmails": true, "unreadEmails": true, "totalThreads": true, "unreadThreads": true}

// maxDepth bounds the parent chain of a mailbox; a longer (or cyclic)
// chain from a broken server is cut there.
const maxDepth = 64

// maxPrealloc caps the buffer reserved from a server-announced size.
const maxPrealloc = 64 << 20

// syncer is the state of one Sync.
type syncer struct {
	s    *Source
	c    *jc.Client
	acct string
	run  *archive.Run
	prog vandelay.Progress
	log  *slog.Logger

	// boxes maps an in-scope JMAP Mailbox id to its archive mailbox;
	// all holds every Mailbox id of the last Mailbox/get (nil when the
	// run has not asked: then an unknown id makes it ask).
	boxes map[string]int64
	paths map[int64]string
	all   map[string]bool
	// sortOrder is each Mailbox's sortOrder of the last Mailbox/get,
	// kept in the archive (SetSortOrders) for a JMAP target.
	sortOrder map[string]int
	mbState   string
	refreshed bool

	downloads []*download

	mu     sync.Mutex
	failed map[string]error
}

// download is an Email whose bytes the archive does not hold yet.
type download struct {
	e     jc.Email
	boxes []int64
	kws   []string
}

// Sync implements vandelay.MailSource.
func (s *Source) Sync(ctx context.Context, run *archive.Run, progress vandelay.Progress) error {
	t, err := s.open(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.stats = Stats{}
	s.mu.Unlock()
	y := &syncer{s: s, c: t.Client, acct: t.AccountID, run: run, prog: vandelay.ProgressOr(progress), log: s.log,
		failed: map[string]error{}}
	known, err := run.Cursors(ctx)
	if err != nil {
		return err
	}
	scope := scopeKey(&s.cfg.Scope)
	if pos, ok := storedPosition(known); ok && pos.Scope == scope {
		done, err := y.incremental(ctx, pos, known)
		if err != nil || done {
			return err
		}
	}
	s.mu.Lock()
	s.stats.Full = true
	s.mu.Unlock()
	return y.full(ctx, scope)
}

// incremental applies Mailbox/changes and Email/changes since pos. It
// reports false when the server cannot calculate the changes since the
// stored state (cannotCalculateChanges, or a state it no longer knows,
// which Cyrus answers with invalidArguments): then a full comparison
// follows. A run with nothing to do is one request.
func (y *syncer) incremental(ctx context.Context, pos position, known []archive.MailboxCursor) (bool, error) {
	y.mapKnown(known)
	y.mbState = pos.Mailbox
	emState := pos.Email
	first := true
	backRefs := y.c.Session().Core.MaxCallsInRequest >= 3
	for {
		var mch, ech jc.ChangesResponse
		var gc, gu jc.GetResponse
		var mchUpdated struct {
			UpdatedProperties []string `json:"updatedProperties"`
		}
		mc := &jc.Call{Method: "Mailbox/changes", Args: map[string]any{"accountId": y.acct, "sinceState": y.mbState}, Result: &mch}
		ec := &jc.Call{Method: "Email/changes", Args: map[string]any{"accountId": y.acct, "sinceState": emState,
			"maxChanges": y.c.MaxObjectsInGet()}, Result: &ech}
		var groups [][]*jc.Call
		if first {
			groups = append(groups, []*jc.Call{mc})
		}
		g1 := &jc.Call{Method: "Email/get", Args: map[string]any{"accountId": y.acct, "#ids": ec.Ref("/created"), "properties": emailProps}, Result: &gc}
		g2 := &jc.Call{Method: "Email/get", Args: map[string]any{"accountId": y.acct, "#ids": ec.Ref("/updated"), "properties": emailProps}, Result: &gu}
		if backRefs {
			groups = append(groups, []*jc.Call{ec, g1, g2})
		} else {
			groups = append(groups, []*jc.Call{ec})
		}
		if err := y.c.Exec(ctx, jc.UsingMail, groups...); err != nil {
			return false, sourceErr(ctx, "ask for changes", err)
		}
		newMB := y.mbState
		if first {
			first = false
			needList := true
			switch {
			case mc.Err != nil:
				y.log.Info("mailbox changes unavailable, listing mailboxes", "err", mc.Err)
			case mch.HasMoreChanges:
			default:
				_ = json.Unmarshal(mc.Raw, &mchUpdated)
				needList = len(mch.Created)+len(mch.Destroyed) > 0 || (len(mch.Updated) > 0 && !onlyCounts(mchUpdated.UpdatedProperties))
				newMB = mch.NewState
			}
			if needList {
				st, err := y.listMailboxes(ctx)
				if err != nil {
					return false, err
				}
				newMB = st
			}
		}
		if ec.Err != nil {
			if ec.Err.Type == jc.ErrCannotCalcChanges || ec.Err.Type == jc.ErrInvalidArguments {
				y.log.Info("the server cannot tell the changes since the stored state; comparing everything", "err", ec.Err)
				return false, nil
			}
			return false, sourceErr(ctx, "email changes", ec.Err)
		}
		var list []jc.Email
		tooLarge := func(c *jc.Call) bool { return c.Err != nil && c.Err.Type == jc.ErrRequestTooLarge }
		if backRefs && (tooLarge(g1) || tooLarge(g2)) {
			// A server that returned more changes than maxChanges: get
			// them in chunks instead.
			backRefs = false
		}
		if backRefs {
			if err := jc.FirstError(g1, g2); err != nil {
				return false, sourceErr(ctx, "get changed emails", err)
			}
			for _, g := range []*jc.GetResponse{&gc, &gu} {
				var l []jc.Email
				if err := json.Unmarshal(g.List, &l); err != nil {
					return false, sourceErr(ctx, "decode changed emails", err)
				}
				list = append(list, l...)
			}
		}
		if !backRefs {
			ids := append(slices.Clone(ech.Created), ech.Updated...)
			if _, err := jc.GetObjects(ctx, y.c, y.acct, "Email", ids, emailProps, &list); err != nil {
				return false, sourceErr(ctx, "get changed emails", err)
			}
		}
		seen := map[string]bool{}
		for _, id := range ech.Destroyed {
			if err := y.removeAll(ctx, id); err != nil {
				return false, err
			}
		}
		if err := y.applyAll(ctx, list, seen); err != nil {
			return false, err
		}
		// Created or updated and gone again before Email/get: destroyed.
		for _, id := range append(slices.Clone(ech.Created), ech.Updated...) {
			if !seen[id] {
				if err := y.removeAll(ctx, id); err != nil {
					return false, err
				}
			}
		}
		if err := y.fetchAll(ctx); err != nil {
			return false, err
		}
		if len(y.failed) > 0 {
			return true, &vandelay.PartialError{Failed: y.failed}
		}
		if newMB != pos.Mailbox || ech.NewState != emState {
			if err := y.savePosition(ctx, position{Mailbox: newMB, Email: ech.NewState, Scope: pos.Scope}); err != nil {
				return false, err
			}
			pos.Mailbox = newMB
		}
		y.mbState, emState = newMB, ech.NewState
		if !ech.HasMoreChanges {
			return true, nil
		}
	}
}

func onlyCounts(props []string) bool {
	if props == nil {
		return false
	}
	for _, p := range props {
		if !countProps[p] {
			return false
		}
	}
	return true
}

// full compares every Email of the account with the archive. Emails the
// archive knows by id are never downloaded again: their copies are
// moved, re-flagged or removed from the metadata alone.
func (y *syncer) full(ctx context.Context, scope string) error {
	// The Email state is taken before the query, so that whatever changes
	// while the query pages run is reported by the next run's changes.
	var st jc.GetResponse
	stc := &jc.Call{Method: "Email/get", Args: map[string]any{"accountId": y.acct, "ids": []string{}}, Result: &st}
	if err := y.c.Exec(ctx, jc.UsingMail, []*jc.Call{stc}); err != nil {
		return sourceErr(ctx, "read the email state", err)
	}
	if stc.Err != nil {
		return sourceErr(ctx, "read the email state", stc.Err)
	}
	mbState, err := y.listMailboxes(ctx)
	if err != nil {
		return err
	}
	ids, stable, err := y.c.QueryAllStable(ctx, y.acct, "Email", nil)
	if err != nil {
		return sourceErr(ctx, "list emails", err)
	}
	// What the archive holds, by Email id (the location key).
	have := map[string][]archive.KeyedCopy{}
	for _, id := range y.boxes {
		locs, err := y.run.Locations(ctx, id)
		if err != nil {
			return err
		}
		for k, l := range locs {
			have[k] = append(have[k], archive.KeyedCopy{MailboxID: id, Location: l})
		}
	}
	seen := map[string]bool{}
	chunk := y.c.MaxObjectsInGet() * max(1, min(y.c.Session().Core.MaxCallsInRequest, 16))
	for start := 0; start < len(ids); start += chunk {
		var list []jc.Email
		if _, err := jc.GetObjects(ctx, y.c, y.acct, "Email", ids[start:min(start+chunk, len(ids))], emailProps, &list); err != nil {
			return sourceErr(ctx, "get emails", err)
		}
		for i := range list {
			e := &list[i]
			if e.ID == "" || seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			if err := y.apply(ctx, e, have[e.ID]); err != nil {
				return err
			}
		}
	}
	if stable {
		for key, copies := range have {
			if seen[key] {
				continue
			}
			for _, c := range copies {
				if err := y.run.Remove(ctx, c.MailboxID, key); err != nil {
					return err
				}
			}
		}
	}
	if err := y.fetchAll(ctx); err != nil {
		return err
	}
	if len(y.failed) > 0 {
		return &vandelay.PartialError{Failed: y.failed}
	}
	if !stable {
		// Ids may have been skipped between pages: keep no position, so
		// the next run compares everything again.
		y.log.Warn("the email list changed while it was read; the next run compares everything again")
		return nil
	}
	return y.savePosition(ctx, position{Mailbox: mbState, Email: st.State, Scope: scope})
}

// applyAll applies Email/get results, refreshing the mailbox list once
// when an Email names a mailbox the run does not know.
func (y *syncer) applyAll(ctx context.Context, list []jc.Email, seen map[string]bool) error {
	for i := range list {
		e := &list[i]
		if e.ID == "" {
			continue
		}
		seen[e.ID] = true
		if y.unknownMailbox(e) && !y.refreshed {
			if _, err := y.listMailboxes(ctx); err != nil {
				return err
			}
		}
		copies, err := y.run.CopiesByKey(ctx, e.ID)
		if err != nil {
			return err
		}
		if err := y.apply(ctx, e, copies); err != nil {
			return err
		}
	}
	return nil
}

func (y *syncer) unknownMailbox(e *jc.Email) bool {
	for id, in := range e.MailboxIDs {
		if _, ok := y.boxes[id]; in && !ok && !y.all[id] {
			return true
		}
	}
	return false
}

// apply makes the archive's copies of e (have) match its mailboxes and
// keywords; copies in new mailboxes reuse the archive's bytes when it
// has any copy, else e is queued for download.
func (y *syncer) apply(ctx context.Context, e *jc.Email, have []archive.KeyedCopy) error {
	want := map[int64]bool{}
	for id, in := range e.MailboxIDs {
		if !in {
			continue
		}
		if b, ok := y.boxes[id]; ok {
			want[b] = true
		} else if !y.all[id] {
			// Created after the run listed the mailboxes: not safe to
			// skip, so the run keeps no position and the next run retries.
			y.fail(id, fmt.Errorf("email %s is in mailbox %s, which the server did not list", e.ID, id))
		}
	}
	kws := keywords(e.Keywords)
	kwKey := strings.Join(kws, " ")
	hash := ""
	for _, c := range have {
		if c.Hash != "" {
			hash = c.Hash
		}
		if !want[c.MailboxID] {
			if err := y.run.Remove(ctx, c.MailboxID, e.ID); err != nil {
				return err
			}
			continue
		}
		delete(want, c.MailboxID)
		if strings.Join(archive.NormalizeKeywords(c.Keywords), " ") != kwKey {
			if err := y.run.SetKeywords(ctx, c.MailboxID, e.ID, kws, 0); err != nil {
				return err
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	missing := make([]int64, 0, len(want))
	for b := range want {
		missing = append(missing, b)
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	if hash == "" && len(have) > 0 {
		copies, err := y.run.CopiesByKey(ctx, e.ID)
		if err != nil {
			return err
		}
		if len(copies) > 0 {
			hash = copies[0].Hash
		}
	}
	if hash != "" {
		ok := true
		for _, b := range missing {
			added, err := y.run.AddKnown(ctx, b, e.ID, hash, kws, 0)
			if err != nil {
				return err
			}
			ok = ok && added
		}
		if ok {
			return nil
		}
	}
	y.downloads = append(y.downloads, &download{e: *e, boxes: missing, kws: kws})
	return nil
}

// removeAll removes every copy of the Email id.
func (y *syncer) removeAll(ctx context.Context, id string) error {
	copies, err := y.run.CopiesByKey(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range copies {
		if err := y.run.Remove(ctx, c.MailboxID, id); err != nil {
			return err
		}
	}
	return nil
}

func keywords(m map[string]bool) []string {
	var out []string
	for k, on := range m {
		if on {
			out = append(out, k)
		}
	}
	return archive.NormalizeKeywords(out)
}

func (y *syncer) fail(where string, err error) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if _, ok := y.failed[where]; !ok {
		y.failed[where] = err
	}
	y.log.Error("email not imported", "where", where, "err", err)
}

// listMailboxes reads every mailbox, records them in the run and maps
// their ids; it returns the Mailbox state.
func (y *syncer) listMailboxes(ctx context.Context) (string, error) {
	y.refreshed = true
	var resp jc.GetResponse
	call := &jc.Call{Method: "Mailbox/get", Args: map[string]any{"accountId": y.acct, "ids": nil, "properties": mailboxProps}, Result: &resp}
	if err := y.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
		return "", sourceErr(ctx, "list mailboxes", err)
	}
	var list []jc.Mailbox
	state := resp.State
	switch {
	case call.Err != nil && call.Err.Type == jc.ErrRequestTooLarge:
		// More mailboxes than maxObjectsInGet: the client pages them.
		var err error
		if list, state, err = y.c.Mailboxes(ctx, y.acct); err != nil {
			return "", sourceErr(ctx, "list mailboxes", err)
		}
	case call.Err != nil:
		return "", sourceErr(ctx, "list mailboxes", call.Err)
	default:
		if err := json.Unmarshal(resp.List, &list); err != nil {
			return "", sourceErr(ctx, "decode mailboxes", err)
		}
	}
	infos := mailboxInfos(list)
	y.all = map[string]bool{}
	y.sortOrder = map[string]int{}
	for _, m := range list {
		y.sortOrder[m.ID] = m.SortOrder
	}
	var inScope []archive.MailboxInfo
	var refs []string
	listed := map[string]bool{}
	for i, mi := range infos {
		y.all[list[i].ID] = true
		if !y.s.cfg.InScope(mi.Path) || (y.s.cfg.SubscribedOnly && !mi.Subscribed && mi.Role != archive.RoleInbox) {
			continue
		}
		inScope = append(inScope, mi)
		refs = append(refs, list[i].ID)
		listed[mi.Path] = true
	}
	scopeFn := y.s.cfg.InScope
	if y.s.cfg.SubscribedOnly {
		scopeFn = func(p string) bool { return listed[p] }
	}
	boxes, err := y.run.SyncMailboxes(ctx, inScope, scopeFn)
	if err != nil {
		return "", err
	}
	orders := make(map[string]int, len(inScope))
	for i, mi := range inScope {
		p := mi.Path
		if strings.EqualFold(p, "INBOX") {
			p = "INBOX"
		}
		orders[p] = y.sortOrder[refs[i]]
	}
	if _, err := y.run.SetSortOrders(ctx, orders); err != nil {
		return "", err
	}
	y.boxes, y.paths = map[string]int64{}, map[int64]string{}
	for i, mi := range inScope {
		p := mi.Path
		if strings.EqualFold(p, "INBOX") {
			p = "INBOX"
		}
		if b := boxes[p]; b != nil {
			y.boxes[refs[i]] = b.ID
			y.paths[b.ID] = p
		}
	}
	y.mbState = state
	return state, nil
}

// mapKnown maps the archive's JMAP mailboxes (by their SourceRef) for a
// run that does not list the mailboxes.
func (y *syncer) mapKnown(known []archive.MailboxCursor) {
	y.boxes, y.paths = map[string]int64{}, map[int64]string{}
	for _, k := range known {
		id, ok := strings.CutPrefix(k.SourceRef, refPrefix)
		if !ok || !k.Selectable || !y.s.cfg.InScope(k.Path) {
			continue
		}
		y.boxes[id] = k.ID
		y.paths[k.ID] = k.Path
	}
}

// savePosition stores p in the cursor of every live JMAP mailbox of the
// archive, in one transaction.
func (y *syncer) savePosition(ctx context.Context, p position) error {
	known, err := y.run.Cursors(ctx)
	if err != nil {
		return err
	}
	extra := p.encode()
	cs := map[int64]archive.Cursor{}
	for _, k := range known {
		if strings.HasPrefix(k.SourceRef, refPrefix) {
			cs[k.ID] = archive.Cursor{Extra: extra, Next: uint64(k.Messages)}
		}
	}
	return y.run.SetCursors(ctx, cs)
}

// mailboxInfos turns the server's mailboxes into the archive's list:
// paths from the parent chain joined with a separator no name contains
// ("/" unless a name has one), the top-level inbox as "INBOX", roles the
// archive knows, subscriptions, and the Mailbox id as the identity that
// survives renames. The result is parallel to list.
func mailboxInfos(list []jc.Mailbox) []archive.MailboxInfo {
	sep := "/"
	for _, cand := range []string{"/", ".", "|", "\\", "^"} {
		sep = cand
		clash := false
		for _, m := range list {
			if strings.Contains(m.Name, cand) {
				clash = true
				break
			}
		}
		if !clash {
			break
		}
	}
	byID := map[string]*jc.Mailbox{}
	for i := range list {
		byID[list[i].ID] = &list[i]
	}
	var path func(m *jc.Mailbox, depth int) string
	path = func(m *jc.Mailbox, depth int) string {
		name := m.Name
		if m.Role == archive.RoleInbox && (m.ParentID == "" || byID[m.ParentID] == nil) {
			name = "INBOX"
		}
		p := byID[m.ParentID]
		if p == nil || p == m || depth >= maxDepth {
			return name
		}
		return path(p, depth+1) + sep + name
	}
	out := make([]archive.MailboxInfo, len(list))
	for i := range list {
		m := &list[i]
		out[i] = archive.MailboxInfo{Path: path(m, 0), Sep: sep, Role: archiveRole(m.Role), Subscribed: m.IsSubscribed,
			Selectable: true, SourceRef: refPrefix + m.ID}
	}
	return out
}

// archiveRole keeps the JMAP roles the archive knows (RFC 8621 2 uses the
// IANA mailbox attribute names, as the archive does); others are dropped.
func archiveRole(r string) string {
	switch r = strings.ToLower(r); r {
	case archive.RoleInbox, archive.RoleSent, archive.RoleDrafts, archive.RoleTrash, archive.RoleJunk, archive.RoleArchive,
		archive.RoleAll, archive.RoleFlagged, archive.RoleImportant:
		return r
	}
	return ""
}

// Blob/get batches: messages up to blobGetMax bytes go in batches of at
// most blobGetBatch bytes (and maxObjectsInGet ids); larger ones are
// downloaded one by one, streaming.
const (
	blobGetMax   = 1 << 20
	blobGetBatch = 4 << 20
)

// fetchAll fetches the queued Emails' blobs and adds them to the archive:
// in batches with Blob/get when the server offers blob data in API
// responses (RFC 9404, or Cyrus's draft), else — and for large blobs —
// from the download URL, a few in parallel. A blob the server does not
// serve fails that Email only (reported in the PartialError); a failed
// archive write ends the sync.
func (y *syncer) fetchAll(ctx context.Context) error {
	todo := y.downloads
	y.downloads = nil
	if len(todo) == 0 {
		return nil
	}
	var total int64
	for _, d := range todo {
		total += d.e.Size
	}
	y.prog.Discovered(len(todo), total)
	blobCap := ""
	if !y.s.cfg.NoBlobGet {
		blobCap = y.c.BlobData(y.acct)
	}
	var work [][]*download // a batch for Blob/get, or one download
	var batch []*download
	var batchBytes int64
	for _, d := range todo {
		if blobCap == "" || d.e.Size <= 0 || d.e.Size > blobGetMax || d.e.BlobID == "" {
			work = append(work, []*download{d})
			continue
		}
		if len(batch) > 0 && (batchBytes+d.e.Size > blobGetBatch || len(batch) >= y.c.MaxObjectsInGet()) {
			work = append(work, batch)
			batch, batchBytes = nil, 0
		}
		batch = append(batch, d)
		batchBytes += d.e.Size
	}
	if len(batch) > 0 {
		work = append(work, batch)
	}
	n := y.s.cfg.Throttle.Conns(y.s.cfg.Connections)
	n = min(n, y.c.Session().Core.MaxConcurrentRequests, len(work))
	jobs := make(chan []*download)
	var wg sync.WaitGroup
	var fatalMu sync.Mutex
	var fatal error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				var err error
				if len(w) == 1 && (blobCap == "" || w[0].e.Size > blobGetMax || w[0].e.Size <= 0) {
					err = y.fetch(ctx, w[0])
				} else {
					err = y.fetchBatch(ctx, blobCap, w)
				}
				if err != nil {
					fatalMu.Lock()
					if fatal == nil {
						fatal = err
					}
					fatalMu.Unlock()
				}
			}
		}()
	}
	for _, w := range work {
		fatalMu.Lock()
		stop := fatal != nil
		fatalMu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		jobs <- w
	}
	close(jobs)
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	return ctx.Err()
}

// fetchBatch fetches a batch of small blobs with one Blob/get request;
// blobs it does not return are tried at the download URL.
func (y *syncer) fetchBatch(ctx context.Context, blobCap string, batch []*download) error {
	th := y.s.cfg.Throttle
	var ids []string
	seen := map[string]bool{}
	for _, d := range batch {
		if err := th.WaitMessage(ctx); err != nil {
			return err
		}
		if err := th.WaitBytes(ctx, d.e.Size); err != nil {
			return err
		}
		if !seen[d.e.BlobID] {
			seen[d.e.BlobID] = true
			ids = append(ids, d.e.BlobID)
		}
	}
	data, _, err := y.c.GetBlobs(ctx, y.acct, blobCap, ids)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		y.log.Warn("Blob/get failed; downloading the batch one by one", "blobs", len(ids), "err", err)
	}
	for _, d := range batch {
		if b, ok := data[d.e.BlobID]; ok {
			sum := sha256.Sum256(b)
			if err := y.store(ctx, d, b, hex.EncodeToString(sum[:])); err != nil {
				return err
			}
			continue
		}
		if err := y.fetch(ctx, d); err != nil {
			return err
		}
	}
	return nil
}

// fetch downloads one blob, hashing it while reading, and adds its
// copies. Only archive failures are returned; the Email's own failure is
// recorded.
func (y *syncer) fetch(ctx context.Context, d *download) error {
	th := y.s.cfg.Throttle
	if err := th.WaitMessage(ctx); err != nil {
		return err
	}
	if err := th.WaitBytes(ctx, d.e.Size); err != nil {
		return err
	}
	where := y.paths[d.boxes[0]]
	if d.e.BlobID == "" {
		y.fail(where, fmt.Errorf("email %s has no blobId", d.e.ID))
		return nil
	}
	rc, err := y.c.Download(ctx, y.acct, d.e.BlobID, "", "")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		y.fail(where, fmt.Errorf("email %s: %w", d.e.ID, err))
		return nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, min(max(d.e.Size, 0), maxPrealloc)))
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(buf, h), rc)
	rc.Close()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		y.fail(where, fmt.Errorf("email %s: read blob: %w", d.e.ID, err))
		return nil
	}
	return y.store(ctx, d, buf.Bytes(), hex.EncodeToString(h.Sum(nil)))
}

// store adds an Email's copies with its bytes.
func (y *syncer) store(ctx context.Context, d *download, body []byte, hash string) error {
	var recv time.Time
	if d.e.ReceivedAt != nil {
		recv = *d.e.ReceivedAt
	}
	if err := y.run.Add(ctx, d.boxes[0], d.e.ID, &archive.NewMessage{Body: body, Hash: hash, ReceivedAt: recv, Keywords: d.kws}); err != nil {
		return fmt.Errorf("archive email %s: %w", d.e.ID, err)
	}
	for _, b := range d.boxes[1:] {
		if _, err := y.run.AddKnown(ctx, b, d.e.ID, hash, d.kws, 0); err != nil {
			return fmt.Errorf("archive email %s: %w", d.e.ID, err)
		}
	}
	y.prog.Done(1, int64(len(body)))
	return nil
}
