package jmap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// upd is one Email/set update.
type upd struct {
	msg *archive.Message
	mbs map[string]bool
	kws map[string]bool
	// created is the mapping's Created flag to store on success.
	created bool
	remote  string
}

func (e *exporter) syncMessages(ctx context.Context) error {
	sinceStr, err := e.tgt.State(ctx, stateArchiveModSeq)
	if err != nil {
		return err
	}
	since, _ := strconv.ParseInt(sinceStr, 10, 64)
	if len(e.emaps) == 0 {
		since = 0
	}
	var (
		updates  []*upd
		imports  []*archive.Message
		destroys []*archive.Message
		seen     = map[int64]bool{}
	)
	consider := func(m *archive.Message) {
		if seen[m.ID] {
			return
		}
		seen[m.ID] = true
		mp, mapped := e.emaps[m.ID]
		if !m.Deleted.IsZero() {
			if mapped {
				destroys = append(destroys, m)
			}
			return
		}
		if len(m.MailboxIDs) == 0 {
			e.retry[m.ID] = true // a move in progress at the source
			return
		}
		if mapped {
			if m.ModSeq > mp.ModSeq {
				updates = append(updates, &upd{msg: m, created: mp.Created, remote: mp.RemoteID})
			} else {
				e.res.EmailsUnchanged++
			}
			return
		}
		imports = append(imports, m)
	}
	for m, err := range e.a.Messages(ctx, &archive.MessageFilter{ChangedSince: since, IncludeDeleted: true}) {
		if err != nil {
			return err
		}
		consider(m)
	}
	queued := map[int64]bool{}
	for _, u := range updates {
		queued[u.msg.ID] = true
	}
	for _, mb := range e.recreated {
		for m, err := range e.a.Messages(ctx, &archive.MessageFilter{MailboxID: mb}) {
			if err != nil {
				return err
			}
			if mp, ok := e.emaps[m.ID]; ok && !queued[m.ID] {
				queued[m.ID] = true
				seen[m.ID] = true
				updates = append(updates, &upd{msg: m, created: mp.Created, remote: mp.RemoteID})
			}
		}
	}
	extra := make([]int64, 0, len(e.retry)+len(e.wasFlight))
	for id := range e.retry {
		extra = append(extra, id)
	}
	for id := range e.wasFlight {
		extra = append(extra, id)
	}
	e.retry = map[int64]bool{}
	for _, id := range extra {
		if seen[id] {
			continue
		}
		m, err := e.a.Message(ctx, id)
		if errors.Is(err, archive.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		consider(m)
	}
	e.log.Info("export plan", "import", len(imports), "update", len(updates), "destroy", len(destroys), "since", since)

	// Patches first: they free nothing, but a re-run mostly has only these.
	if err := e.applyUpdates(ctx, updates); err != nil {
		return err
	}
	matched, rest, err := e.matchExisting(ctx, imports)
	if err != nil {
		return err
	}
	if err := e.applyUpdates(ctx, matched); err != nil {
		return err
	}
	if err := e.importAll(ctx, rest); err != nil {
		return err
	}
	return e.destroyEmails(ctx, destroys)
}

// applyUpdates sends Email/set patches (mailboxIds and keywords replaced
// as whole properties, which is idempotent) in chunks of maxObjectsInSet.
func (e *exporter) applyUpdates(ctx context.Context, us []*upd) error {
	var todo []*upd
	for _, u := range us {
		if u.mbs == nil {
			mbs, kws, reason := e.desired(u.msg)
			if reason != "" {
				e.skip(archive.KindEmail, u.msg.ID, itemName(peekHeader(ctx, e.a, u.msg.Blob), u.msg.ID, u.msg.Size), "not updated: "+reason)
				continue
			}
			u.mbs, u.kws = mbs, kws
		}
		todo = append(todo, u)
	}
	if len(todo) == 0 {
		return nil
	}
	e.report("update")
	if e.opts.DryRun {
		for _, u := range todo {
			e.change('~', archive.KindEmail, itemName(peekHeader(ctx, e.a, u.msg.Blob), u.msg.ID, u.msg.Size))
			e.res.EmailsUpdated++
		}
		return nil
	}
	// In source order, so that emails moved into a mailbox together land
	// there in the source's order (a server files a move as a new UID);
	// one patch per target email (the last one wins).
	msgs := make([]*archive.Message, len(todo))
	for i, u := range todo {
		msgs[i] = u.msg
	}
	order, err := e.sourceOrder(ctx, msgs)
	if err != nil {
		return err
	}
	last := make(map[string]int, len(todo))
	for i, u := range todo {
		last[u.remote] = i
	}
	sorted := make([]*upd, 0, len(todo))
	for _, i := range order {
		if last[todo[i].remote] == i {
			sorted = append(sorted, todo[i])
		}
	}
	todo = sorted
	chunk := e.c.MaxObjectsInSet()
	var groups [][]*jc.Call
	var resps []*jc.SetResponse
	for start := 0; start < len(todo); start += chunk {
		var update jc.Object[any]
		for _, u := range todo[start:min(start+chunk, len(todo))] {
			update.Add(u.remote, map[string]any{"mailboxIds": u.mbs, "keywords": u.kws})
		}
		r := &jc.SetResponse{}
		resps = append(resps, r)
		groups = append(groups, []*jc.Call{{Method: "Email/set", Args: map[string]any{"accountId": e.acct, "update": update}, Result: r}})
	}
	if err := e.c.Exec(ctx, jc.UsingMail, groups...); err != nil {
		return fmt.Errorf("update target emails: %w", err)
	}
	var maps []archive.Mapping
	var reimport []*archive.Message
	var gone []int64
	for gi, g := range groups {
		part := todo[gi*chunk : min((gi+1)*chunk, len(todo))]
		for _, u := range part {
			if g[0].Err != nil {
				e.skip(archive.KindEmail, u.msg.ID, "archive id "+itoa(u.msg.ID), "not updated: "+g[0].Err.Error())
				continue
			}
			r := resps[gi]
			if _, ok := r.Updated[u.remote]; ok {
				maps = append(maps, archive.Mapping{Kind: archive.KindEmail, ArchiveID: u.msg.ID, RemoteID: u.remote, Created: u.created, ModSeq: u.msg.ModSeq})
				e.res.EmailsUpdated++
				continue
			}
			se := r.NotUpdated[u.remote]
			if se != nil && se.Type == jc.SetNotFound {
				gone = append(gone, u.msg.ID)
				reimport = append(reimport, u.msg)
				continue
			}
			e.skip(archive.KindEmail, u.msg.ID, itemName(peekHeader(ctx, e.a, u.msg.Blob), u.msg.ID, u.msg.Size), "not updated: "+errText(se))
		}
	}
	if err := e.tgt.PutMappings(ctx, maps); err != nil {
		return err
	}
	if len(gone) > 0 {
		if err := e.tgt.DeleteMappings(ctx, archive.KindEmail, gone); err != nil {
			return err
		}
		for _, id := range gone {
			delete(e.emaps, id)
		}
		return e.importAll(ctx, reimport)
	}
	return nil
}

// matchExisting finds messages that the target already holds (from
// elsewhere, or imported by a run that died before recording it): same
// Message-ID (or none on both sides) and size, then the same SHA-256 of the
// downloaded blob. The
// target is indexed only when it holds emails the mapping does not know.
func (e *exporter) matchExisting(ctx context.Context, msgs []*archive.Message) (matched []*upd, rest []*archive.Message, err error) {
	if len(msgs) == 0 {
		return nil, nil, nil
	}
	var qr jc.QueryResponse
	call := &jc.Call{Method: "Email/query", Args: map[string]any{"accountId": e.acct, "limit": 0, "calculateTotal": true}, Result: &qr}
	if err := e.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
		return nil, nil, err
	}
	if call.Err != nil {
		return nil, nil, call.Err
	}
	if qr.Total == nil || *qr.Total <= len(e.emaps) {
		return nil, msgs, nil
	}
	e.report("match")
	mine := map[string]bool{}
	for _, m := range e.emaps {
		mine[m.RemoteID] = true
	}
	var all, got []jc.Email
	if err := jc.QueryObjects(ctx, e.c, e.acct, "Email", nil, []string{"id", "blobId", "size", "messageId"}, &all); err != nil {
		return nil, nil, err
	}
	for _, g := range all {
		if !mine[g.ID] {
			got = append(got, g)
		}
	}
	type key struct {
		mid  string
		size int64
	}
	index := map[key][]jc.Email{}
	for _, g := range got {
		for _, mid := range g.MessageID {
			index[key{mid, g.Size}] = append(index[key{mid, g.Size}], g)
		}
		// Messages without a Message-ID pair by size alone; the content
		// check below decides.
		if len(g.MessageID) == 0 {
			index[key{"", g.Size}] = append(index[key{"", g.Size}], g)
		}
	}
	e.log.Info("target holds emails the export does not know, matching", "count", len(got))
	taken := map[string]bool{}
	for _, m := range msgs {
		h := peekHeader(ctx, e.a, m.Blob)
		var hit string
		for _, cand := range index[key{h.MessageID, m.Size}] {
			if taken[cand.ID] {
				continue
			}
			same, err := e.sameBlob(ctx, cand.BlobID, m.Blob)
			if err != nil {
				return nil, nil, err
			}
			if same {
				hit = cand.ID
				break
			}
		}
		if hit == "" {
			rest = append(rest, m)
			continue
		}
		taken[hit] = true
		created := e.wasFlight[m.ID]
		e.emaps[m.ID] = archive.Mapping{Kind: archive.KindEmail, ArchiveID: m.ID, RemoteID: hit, Created: created}
		matched = append(matched, &upd{msg: m, created: created, remote: hit})
		e.res.EmailsMatched++
		e.change('=', archive.KindEmail, itemName(h, m.ID, m.Size))
	}
	return matched, rest, nil
}

// sameBlob downloads a target blob and compares its SHA-256 with the
// archive's hash.
func (e *exporter) sameBlob(ctx context.Context, blobID, hash string) (bool, error) {
	rc, err := e.c.Download(ctx, e.acct, blobID, "m.eml", "message/rfc822")
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return false, fmt.Errorf("download target blob %s: %w", blobID, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == hash, nil
}

// importAll uploads and imports messages in batches, in the source's order
// per mailbox (see order.go), Workers batches at a time.
func (e *exporter) importAll(ctx context.Context, msgs []*archive.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	e.mu.Lock()
	e.progress.Total += int64(len(msgs))
	for _, m := range msgs {
		e.progress.TotalBytes += m.Size
	}
	e.mu.Unlock()
	e.report("import")
	if e.opts.DryRun {
		for _, m := range msgs {
			if _, _, reason := e.desired(m); reason != "" {
				e.skip(archive.KindEmail, m.ID, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size), reason)
				continue
			}
			if max := e.c.MaxSizeUpload(); max > 0 && m.Size > max {
				e.skip(archive.KindEmail, m.ID, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size), fmt.Sprintf("larger than the target's upload limit (%s)", humanBytes(max)))
				continue
			}
			e.change('+', archive.KindEmail, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size))
			e.res.EmailsImported++
		}
		return nil
	}
	batchBytes := int64(64 << 20)
	if e.inline.Method != "" {
		batchBytes = e.inlineBudget()
	}
	// In the source's order per mailbox (order.go): a mailbox's batches
	// one after the other, different mailboxes in parallel.
	runs, err := e.importRuns(ctx, msgs)
	if err != nil {
		return err
	}
	bt := &batcher{runs: runs, size: e.opts.BatchSize, batchBytes: batchBytes}
	g, gctx := errgroup.WithContext(ctx)
	var followMu sync.Mutex
	var follow []*upd
	for range min(e.opts.Workers, len(runs)) {
		g.Go(func() error {
			var cur []*archive.Message
			// Two stages: while batch n is imported, batch n+1 is prepared
			// (large blobs uploaded, small ones read); its import starts
			// only after batch n's import returned.
			batch := bt.next(&cur)
			if len(batch) == 0 {
				return nil
			}
			br, err := e.prepareBatch(gctx, batch, 0)
			for {
				if err != nil {
					return err
				}
				var next *batchRequest
				var nextErr error
				prepared := make(chan struct{})
				nb := bt.next(&cur)
				if len(nb) > 0 {
					go func() {
						defer close(prepared)
						next, nextErr = e.prepareBatch(gctx, nb, 0)
					}()
				} else {
					close(prepared)
				}
				var f []*upd
				if br != nil {
					f, err = e.sendBatch(gctx, br)
				}
				<-prepared
				followMu.Lock()
				follow = append(follow, f...)
				followMu.Unlock()
				if err != nil {
					return err
				}
				if len(nb) == 0 {
					return nil
				}
				br, err = next, nextErr
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Emails the target already held (alreadyExists) get this message's
	// mailboxes and keywords.
	return e.applyUpdates(ctx, follow)
}

// setInflight records (or clears) archive ids whose import may be under
// way, so a run that dies mid-request is recognised by the next one.
func (e *exporter) setInflight(ctx context.Context, ids []int64, on bool) error {
	e.mu.Lock()
	for _, id := range ids {
		if on {
			e.inflight[id] = true
		} else {
			delete(e.inflight, id)
		}
	}
	all := make([]int64, 0, len(e.inflight)+len(e.wasFlight))
	for id := range e.inflight {
		all = append(all, id)
	}
	for id := range e.wasFlight {
		if !e.inflight[id] {
			all = append(all, id)
		}
	}
	e.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b, _ := json.Marshal(all)
	return e.tgt.SetState(ctx, stateInflight, string(b))
}

type prepared struct {
	m      *archive.Message
	blobID string
	mbs    map[string]bool
	kws    map[string]bool
	// inline: the blob goes inside the API request (Blob/upload or Cyrus's
	// Blob/set) and Email/import refers to it by creation id.
	inline bool
}

// importGroup is one Email/import call, with the blob call that carries
// its inline blobs (if any) in the same request. The emails go in the
// batch's order (the source's order) as members of an ordered object,
// under creation ids that sort in that order too.
type importGroup struct {
	blob   *jc.Call
	imp    *jc.Call
	r      jc.ImportResponse
	br     jc.SetResponse
	emails jc.Object[jc.EmailImport]
	blobs  jc.Object[any]
	items  []importItem
	raw    int64
	inline bool
}

// importItem is one email of an importGroup and its creation id.
type importItem struct {
	cid string
	p   *prepared
}

// inlineBudget is the raw size of the inline blobs of one request: after
// base64 it stays well under maxSizeRequest.
func (e *exporter) inlineBudget() int64 {
	if m := e.c.Session().Core.MaxSizeRequest; m > 0 {
		return max(m*7/10*3/4, 1)
	}
	return 6 << 20
}

// importBatch sends the batch's blobs — small ones inside the API request
// when the server allows it, the others by parallel HTTP uploads — and
// imports them with Email/import. It returns follow-up updates for emails
// the target already held. A message that fails on the inline path is
// retried once by HTTP upload.
func (e *exporter) importBatch(ctx context.Context, batch []*archive.Message, attempt int) ([]*upd, error) {
	br, err := e.prepareBatch(ctx, batch, attempt)
	if err != nil || br == nil {
		return nil, err
	}
	return e.sendBatch(ctx, br)
}

// batchRequest is a batch ready to be imported: its blobs uploaded or
// read for inlining, its Email/import calls built in order.
type batchRequest struct {
	groups  []*importGroup
	ids     []int64
	attempt int
}

// prepareBatch uploads the batch's large blobs and reads the small ones
// it will send inline. It changes nothing the next batch's import could
// see, so a worker prepares batch n+1 while batch n is being imported.
// It returns nil when nothing of the batch is left to import.
func (e *exporter) prepareBatch(ctx context.Context, batch []*archive.Message, attempt int) (*batchRequest, error) {
	ib := e.inline
	useInline := ib.Method != "" && attempt == 0 && !e.inlineOff.Load()
	preps := make([]*prepared, len(batch))
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range batch {
		mbs, kws, reason := e.desired(m)
		if reason != "" {
			e.skip(archive.KindEmail, m.ID, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size), reason)
			continue
		}
		if useInline && m.Size <= ib.MaxSize {
			preps[i] = &prepared{m: m, mbs: mbs, kws: kws, inline: true}
			continue
		}
		g.Go(func() error {
			blob, err := e.c.Upload(gctx, e.acct, "message/rfc822", m.Size, e.blobOpener(gctx, m.Blob))
			if errors.Is(err, jc.ErrTooLarge) {
				e.skip(archive.KindEmail, m.ID, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size),
					fmt.Sprintf("larger than the target's upload limit (%s)", humanBytes(e.c.MaxSizeUpload())))
				return nil
			}
			if err != nil {
				return fmt.Errorf("upload message %d: %w", m.ID, err)
			}
			preps[i] = &prepared{m: m, blobID: blob.BlobID, mbs: mbs, kws: kws}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Consecutive messages that travel the same way share an Email/import
	// call; calls follow each other in the batch's order (a server runs
	// the calls of a request one after the other).
	rawBudget := e.inlineBudget()
	var groups []*importGroup
	var cur *importGroup
	var ids []int64
	for i, p := range preps {
		if p == nil {
			continue
		}
		cid := fmt.Sprintf("m%06d", i)
		imp := jc.EmailImport{BlobID: p.blobID, MailboxIDs: p.mbs, Keywords: p.kws}
		// Cyrus takes 1970-01-01 as "now" and refuses earlier dates; leave
		// such dates to the server rather than fail the message.
		if p.m.ReceivedAt.Unix() > 86400 {
			d := jc.UTCDate(p.m.ReceivedAt)
			imp.ReceivedAt = &d
		}
		if cur == nil || cur.inline != p.inline || (p.inline && cur.emails.Len() > 0 && cur.raw+p.m.Size > rawBudget) {
			cur = &importGroup{inline: p.inline}
			groups = append(groups, cur)
		}
		if p.inline {
			data, err := e.a.BlobBytes(ctx, p.m.Blob)
			if err != nil {
				return nil, fmt.Errorf("read message %d from the archive: %w", p.m.ID, err)
			}
			bcid := fmt.Sprintf("b%06d", i)
			cur.blobs.Add(bcid, ib.Create(data, "message/rfc822"))
			cur.raw += p.m.Size
			imp.BlobID = "#" + bcid
		}
		cur.emails.Add(cid, imp)
		cur.items = append(cur.items, importItem{cid, p})
		ids = append(ids, p.m.ID)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return &batchRequest{groups: groups, ids: ids, attempt: attempt}, nil
}

// sendBatch imports a prepared batch with one request (or as few as the
// server's limits allow) and records the mappings.
func (e *exporter) sendBatch(ctx context.Context, br *batchRequest) ([]*upd, error) {
	ib, groups, ids, attempt := e.inline, br.groups, br.ids, br.attempt
	if err := e.setInflight(ctx, ids, true); err != nil {
		return nil, err
	}
	using := jc.UsingMail
	var calls [][]*jc.Call
	for _, grp := range groups {
		grp.imp = &jc.Call{Method: "Email/import", Args: map[string]any{"accountId": e.acct, "emails": grp.emails}, Result: &grp.r}
		if grp.inline {
			using = append(append([]string{}, jc.UsingMail...), ib.Capability)
			grp.blob = &jc.Call{Method: ib.Method, Args: map[string]any{"accountId": e.acct, "create": grp.blobs}, Result: &grp.br}
			calls = append(calls, []*jc.Call{grp.blob, grp.imp})
		} else {
			calls = append(calls, []*jc.Call{grp.imp})
		}
	}
	if err := e.c.Exec(ctx, using, calls...); err != nil {
		return nil, fmt.Errorf("import emails: %w", err)
	}
	var maps []archive.Mapping
	var follow []*upd
	var again []*archive.Message
	var bytes, inlined, inlinedBytes int64
	split := false // a whole Email/import was refused: retry in halves
	for _, grp := range groups {
		if grp.imp == nil {
			continue
		}
		if grp.blob != nil && grp.blob.Err != nil {
			// The server does not take inline blobs after all: upload.
			e.log.Info("inline blobs refused, uploading instead", "err", grp.blob.Err)
			e.inlineOff.Store(true)
		}
		if err := grp.imp.Err; err != nil {
			for _, it := range grp.items {
				again = append(again, it.p.m)
			}
			if !grp.inline {
				if !((err.Type == jc.ErrRequestTooLarge || err.Type == jc.ErrServerFail) && attempt < 8) {
					return nil, fmt.Errorf("import emails: %w", err)
				}
				split = true
			}
			continue
		}
		for _, it := range grp.items {
			cid, p := it.cid, it.p
			if em, ok := grp.r.Created[cid]; ok && em.ID != "" {
				maps = append(maps, archive.Mapping{Kind: archive.KindEmail, ArchiveID: p.m.ID, RemoteID: em.ID, Created: true, ModSeq: p.m.ModSeq})
				bytes += p.m.Size
				if p.inline {
					inlined++
					inlinedBytes += p.m.Size
				}
				continue
			}
			se := grp.r.NotCreated[cid]
			name := func() string { return itemName(peekHeader(ctx, e.a, p.m.Blob), p.m.ID, p.m.Size) }
			switch {
			case se != nil && se.Type == jc.SetAlreadyExists && se.ExistingID != "":
				created := e.wasFlight[p.m.ID]
				maps = append(maps, archive.Mapping{Kind: archive.KindEmail, ArchiveID: p.m.ID, RemoteID: se.ExistingID, Created: created, ModSeq: 0})
				follow = append(follow, &upd{msg: p.m, mbs: p.mbs, kws: p.kws, created: created, remote: se.ExistingID})
			case p.inline && attempt < 3:
				again = append(again, p.m) // retried by HTTP upload
			case se == nil:
				e.skip(archive.KindEmail, p.m.ID, name(), "the target gave no answer for it")
			case (se.Type == jc.SetBlobNotFound || se.Temporary()) && attempt < 3:
				again = append(again, p.m)
			default:
				e.skip(archive.KindEmail, p.m.ID, name(), "target refused it: "+se.Error())
			}
		}
	}
	if err := e.tgt.PutMappings(ctx, maps); err != nil {
		return nil, err
	}
	e.mu.Lock()
	for _, m := range maps {
		e.emaps[m.ArchiveID] = m
		if m.Created && m.ModSeq != 0 {
			e.res.EmailsImported++
		} else {
			e.res.EmailsMatched++
		}
	}
	e.inlined += inlined
	e.inlinedBytes += inlinedBytes
	e.progress.Done += int64(len(maps))
	e.progress.Bytes += bytes
	e.mu.Unlock()
	if err := e.setInflight(ctx, ids, false); err != nil {
		return nil, err
	}
	e.report("import")
	if len(again) > 0 {
		t := time.NewTimer(time.Duration(attempt) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return follow, ctx.Err()
		case <-t.C:
		}
		if split && len(again) > 1 {
			half := len(again) / 2
			f1, err := e.importBatch(ctx, again[:half], attempt+1)
			follow = append(follow, f1...)
			if err != nil {
				return follow, err
			}
			again = again[half:]
		}
		f, err := e.importBatch(ctx, again, attempt+1)
		return append(follow, f...), err
	}
	return follow, nil
}

// destroyEmails destroys target emails of tombstoned messages that the
// export created and forgets the mapping of all tombstoned ones.
func (e *exporter) destroyEmails(ctx context.Context, msgs []*archive.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	e.report("destroy")
	var ids []string
	var forget []int64
	for _, m := range msgs {
		mp := e.emaps[m.ID]
		forget = append(forget, m.ID)
		if mp.Created {
			ids = append(ids, mp.RemoteID)
			e.change('-', archive.KindEmail, itemName(peekHeader(ctx, e.a, m.Blob), m.ID, m.Size))
		}
	}
	if e.opts.DryRun {
		e.res.EmailsDestroyed += len(ids)
		return nil
	}
	if err := e.destroyRemote(ctx, ids); err != nil {
		return err
	}
	for _, id := range forget {
		delete(e.emaps, id)
	}
	return e.tgt.DeleteMappings(ctx, archive.KindEmail, forget)
}

// destroyRemote sends Email/set destroy in chunks; ids already gone count
// as destroyed.
func (e *exporter) destroyRemote(ctx context.Context, ids []string) error {
	chunk := e.c.MaxObjectsInSet()
	var groups [][]*jc.Call
	var resps []*jc.SetResponse
	for start := 0; start < len(ids); start += chunk {
		r := &jc.SetResponse{}
		resps = append(resps, r)
		groups = append(groups, []*jc.Call{{Method: "Email/set", Args: map[string]any{"accountId": e.acct, "destroy": ids[start:min(start+chunk, len(ids))]}, Result: r}})
	}
	if err := e.c.Exec(ctx, jc.UsingMail, groups...); err != nil {
		return fmt.Errorf("destroy target emails: %w", err)
	}
	for i, g := range groups {
		if g[0].Err != nil {
			return fmt.Errorf("destroy target emails: %w", g[0].Err)
		}
		e.res.EmailsDestroyed += len(resps[i].Destroyed)
		for id, se := range resps[i].NotDestroyed {
			if se.Type != jc.SetNotFound {
				e.log.Warn("target email not destroyed", "id", id, "err", se)
			}
		}
	}
	return nil
}

// prune destroys target emails and non-role mailboxes the archive does not
// hold (the mapping does not know them).
func (e *exporter) prune(ctx context.Context) error {
	ids, err := e.c.QueryAll(ctx, e.acct, "Email", nil, nil)
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, m := range e.emaps {
		mine[m.RemoteID] = true
	}
	var extra []string
	for _, id := range ids {
		if !mine[id] {
			extra = append(extra, id)
			e.change('-', archive.KindEmail, "target email "+id+" (prune)")
		}
	}
	before := e.res.EmailsDestroyed
	if e.opts.DryRun {
		e.res.EmailsDestroyed += len(extra)
	} else if err := e.destroyRemote(ctx, extra); err != nil {
		return err
	}
	e.res.EmailsPruned += e.res.EmailsDestroyed - before
	boxes, _, err := e.c.Mailboxes(ctx, e.acct)
	if err != nil {
		return err
	}
	mapped := map[string]bool{}
	for _, r := range e.mbRemote {
		mapped[r] = true
	}
	byID := map[string]jc.Mailbox{}
	for _, b := range boxes {
		byID[b.ID] = b
	}
	depth := func(b jc.Mailbox) int {
		d := 0
		for p := b.ParentID; p != "" && d < 1000; d++ {
			p = byID[p].ParentID
		}
		return d
	}
	var victims []jc.Mailbox
	for _, b := range boxes {
		if !mapped[b.ID] && b.Role == "" {
			victims = append(victims, b)
		}
	}
	sort.Slice(victims, func(i, j int) bool { return depth(victims[i]) > depth(victims[j]) })
	for _, v := range victims {
		e.change('-', archive.KindMailbox, v.Name+" (prune)")
		e.res.MailboxesDestroyed++
		e.res.MailboxesPruned++
		if e.opts.DryRun {
			continue
		}
		var r jc.SetResponse
		call := &jc.Call{Method: "Mailbox/set", Args: map[string]any{"accountId": e.acct, "destroy": []string{v.ID}, "onDestroyRemoveEmails": false}, Result: &r}
		if err := e.c.Exec(ctx, jc.UsingMail, []*jc.Call{call}); err != nil {
			return err
		}
		if se := r.NotDestroyed[v.ID]; se != nil {
			e.log.Warn("target mailbox not pruned", "mailbox", v.Name, "err", se)
			e.res.MailboxesDestroyed--
			e.res.MailboxesPruned--
		}
	}
	return nil
}
