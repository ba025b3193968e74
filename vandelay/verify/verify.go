package verify

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
	tj "github.com/mailmig/mailmig/vandelay/targets/jmap"
)

// Options configure [Target]. A nil *Options means the defaults.
type Options struct {
	// Logger receives progress records. Default: discard.
	Logger *slog.Logger
	// Sample, when > 0, downloads only every message whose position in
	// the archive is a multiple of len/Sample (about Sample messages) and
	// compares the others by size through the export mapping. Default: 0,
	// download and hash every target blob.
	Sample int
	// IgnoreKeywords are left out of the keyword comparison. Default:
	// ["$hasattachment"].
	IgnoreKeywords []string
	// Parallel is the number of concurrent downloads. Default: the
	// session's maxConcurrentRequests.
	Parallel int
	// Hashes, when set, caches the SHA-256 of target blobs by blob id
	// across verifies of one account: a blob id names the same bytes for
	// ever (RFC 8620 6), so a blob hashed once is not downloaded again.
	// A verify before a cut-over's freeze fills it, and the verify inside
	// the freeze downloads only what arrived since. Default: none.
	Hashes *BlobHashes
}

// BlobHashes is a cache of target blob hashes by blob id (Options.Hashes).
// It is safe for concurrent use.
type BlobHashes struct {
	mu sync.Mutex
	m  map[string]string
}

func (b *BlobHashes) get(id string) (string, bool) {
	if b == nil {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.m[id]
	return h, ok
}

func (b *BlobHashes) put(id, hash string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]string{}
	}
	b.m[id] = hash
}

// Len returns the number of cached hashes.
func (b *BlobHashes) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// Kind names what a [Mismatch] is about. It is a closed set: views and
// tests switch on it; the JSON form is the string.
type Kind string

// The mismatch kinds [Target] reports (and KindSource, which the callers
// that compare the source with the archive add).
const (
	// KindCount: a mailbox holds a different number of messages.
	KindCount Kind = "count"
	// KindMissing: an archive message is on the target in no form.
	KindMissing Kind = "missing"
	// KindExtra: a target email matches no archive message.
	KindExtra Kind = "extra"
	// KindDuplicate: an archive message is on the target more than once.
	KindDuplicate Kind = "duplicate"
	// KindContent: the sampled target blob has other bytes.
	KindContent Kind = "content"
	// KindSize: the unsampled target email has another size.
	KindSize Kind = "size"
	// KindKeywords: the message's keywords differ.
	KindKeywords Kind = "keywords"
	// KindReceivedAt: the message's internal date differs.
	KindReceivedAt Kind = "receivedAt"
	// KindMembership: the message is in other mailboxes.
	KindMembership Kind = "membership"
	// KindMailboxMissing: an archive mailbox has no target mailbox.
	KindMailboxMissing Kind = "mailbox-missing"
	// KindHierarchy: a target mailbox has another parent.
	KindHierarchy Kind = "hierarchy"
	// KindRole: a target mailbox lacks the archive mailbox's role.
	KindRole Kind = "role"
	// KindSubscription: the subscription differs.
	KindSubscription Kind = "subscription"
	// KindSource: the source changed since the last import (not reported
	// by Target; callers comparing source and archive use it).
	KindSource Kind = "source"
)

// Mismatch is one difference between archive and target. The fields are
// data, so that views can render, group and count them; [Mismatch.String]
// is the one-line human form.
type Mismatch struct {
	Kind Kind `json:"kind"`
	// Mailbox is the archive path concerned, if any.
	Mailbox string `json:"mailbox,omitempty"`
	// Item names the message in prose (archive id, hash, Message-ID) if
	// any; the fields below carry the same identity as data.
	Item string `json:"item,omitempty"`
	// ArchiveID is the archive message concerned (0: none).
	ArchiveID int64 `json:"archiveId,omitempty"`
	// Hash is the SHA-256 of the archive message's bytes.
	Hash string `json:"sha256,omitempty"`
	// TargetID is the target email concerned, if one was paired or extra.
	TargetID string `json:"targetId,omitempty"`
	// MessageID is the target email's Message-ID header (no brackets).
	MessageID string `json:"messageId,omitempty"`
	// Want is the archive's value, Got the target's.
	Want string `json:"want,omitempty"`
	Got  string `json:"got,omitempty"`
}

// String renders the mismatch on one line.
func (m Mismatch) String() string {
	s := string(m.Kind)
	if m.Mailbox != "" {
		s += " " + m.Mailbox
	}
	if m.Item != "" {
		s += " " + m.Item
	}
	if m.Want != "" || m.Got != "" {
		s += fmt.Sprintf(": archive %s, target %s", m.Want, m.Got)
	}
	return s
}

// MailboxRow is one line of the per-mailbox table.
type MailboxRow struct {
	Path    string `json:"path"`
	Role    string `json:"role,omitempty"`
	Archive int    `json:"archive"`
	Target  int    `json:"target"`
	OK      bool   `json:"ok"`
}

// Report is the outcome of a verify.
type Report struct {
	Mailboxes      []MailboxRow `json:"mailboxes"`
	ArchiveEmails  int          `json:"archiveEmails"`
	TargetEmails   int          `json:"targetEmails"`
	Hashed         int          `json:"hashed"`
	HashEqual      int          `json:"hashEqual"`
	Mismatches     []Mismatch   `json:"mismatches"`
	DownloadedSize int64        `json:"downloadedBytes"`
	// Cached counts the hashes taken from Options.Hashes (in Hashed too).
	Cached int `json:"cached,omitempty"`
}

// OK reports whether archive and target agree.
func (r *Report) OK() bool { return len(r.Mismatches) == 0 }

type targetEmail struct {
	jc.Email
	hash string
}

// Target compares the archive with the target account.
func Target(ctx context.Context, a *archive.Archive, c *jc.Client, accountID string, opts *Options) (*Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ignore := map[string]bool{"$hasattachment": true}
	if opts.IgnoreKeywords != nil {
		ignore = map[string]bool{}
		for _, k := range opts.IgnoreKeywords {
			ignore[strings.ToLower(k)] = true
		}
	}
	par := opts.Parallel
	if par <= 0 {
		par = c.Session().Core.MaxConcurrentRequests
	}
	rep := &Report{}
	add := func(m Mismatch) { rep.Mismatches = append(rep.Mismatches, m) }

	// Mailboxes: archive paths (with "/" between levels) against target
	// paths; role mailboxes pair by role.
	aboxes, err := a.Mailboxes(ctx, nil)
	if err != nil {
		return nil, err
	}
	tboxes, _, err := c.Mailboxes(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read target mailboxes: %w", err)
	}
	tByID := map[string]*jc.Mailbox{}
	for i := range tboxes {
		tByID[tboxes[i].ID] = &tboxes[i]
	}
	tPath := func(id string) string {
		var parts []string
		for d := 0; id != "" && d < 1000; d++ {
			b := tByID[id]
			if b == nil {
				break
			}
			name := b.Name
			if b.Role == archive.RoleInbox && b.ParentID == "" {
				// The archive names the inbox "INBOX" (sources say so in
				// any case); targets show "Inbox". Its children pair by
				// path too.
				name = "INBOX"
			}
			parts = append([]string{name}, parts...)
			id = b.ParentID
		}
		return strings.Join(parts, "/")
	}
	tByPath := map[string]string{}
	tByRole := map[string]string{}
	for _, b := range tboxes {
		tByPath[tPath(b.ID)] = b.ID
		if b.Role != "" {
			tByRole[b.Role] = b.ID
		}
	}
	aPath := map[int64]string{}
	aByID := map[int64]*archive.Mailbox{}
	for _, b := range aboxes {
		aByID[b.ID] = b
	}
	for _, b := range aboxes {
		var parts []string
		for x, d := b, 0; x != nil && d < 1000; d++ {
			parts = append([]string{x.Name}, parts...)
			x = aByID[x.ParentID]
		}
		aPath[b.ID] = strings.Join(parts, "/")
	}
	pair := map[int64]string{} // archive mailbox → target mailbox
	for _, b := range aboxes {
		p := aPath[b.ID]
		tid := ""
		if b.Role != "" {
			tid = tByRole[b.Role]
		}
		if tid == "" {
			tid = tByPath[p]
		}
		if tid == "" {
			tid = tByPath[safePath(p)]
		}
		if tid == "" {
			add(Mismatch{Kind: KindMailboxMissing, Mailbox: b.Path})
			continue
		}
		pair[b.ID] = tid
		tb := tByID[tid]
		if tb.IsSubscribed != b.Subscribed {
			add(Mismatch{Kind: KindSubscription, Mailbox: b.Path, Want: fmt.Sprint(b.Subscribed), Got: fmt.Sprint(tb.IsSubscribed)})
		}
		if b.Role != "" && tb.Role != b.Role {
			add(Mismatch{Kind: KindRole, Mailbox: b.Path, Want: b.Role, Got: orNone(tb.Role)})
		}
		if b.Role == "" {
			wantParent := ""
			if b.ParentID != 0 {
				wantParent = pair[b.ParentID]
			}
			if tb.ParentID != wantParent {
				add(Mismatch{Kind: KindHierarchy, Mailbox: b.Path, Want: orNone(aPath[b.ParentID]), Got: orNone(tPath(tb.ParentID))})
			}
		}
	}
	tToA := map[string]int64{}
	for aid, tid := range pair {
		tToA[tid] = aid
	}

	// Messages of both sides.
	var amsgs []*archive.Message
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			return nil, err
		}
		if len(m.MailboxIDs) > 0 {
			amsgs = append(amsgs, m)
		}
	}
	rep.ArchiveEmails = len(amsgs)
	var temails []jc.Email
	if err := jc.QueryObjects(ctx, c, accountID, "Email", nil, []string{"id", "blobId", "size", "keywords", "mailboxIds", "receivedAt", "messageId"}, &temails); err != nil {
		return nil, fmt.Errorf("read target emails: %w", err)
	}
	rep.TargetEmails = len(temails)
	log.Info("verify", "archive", len(amsgs), "target", len(temails))

	// Which target emails to download.
	tgts := make([]*targetEmail, len(temails))
	for i := range temails {
		tgts[i] = &targetEmail{Email: temails[i]}
	}
	byRemote := map[string]*targetEmail{}
	for _, t := range tgts {
		byRemote[t.ID] = t
	}
	var mapping map[int64]archive.Mapping
	if opts.Sample > 0 {
		tgt, err := a.ExportTarget(ctx, tj.TargetName(c, accountID))
		if err != nil {
			return nil, err
		}
		if mapping, err = tgt.Mappings(ctx, archive.KindEmail); err != nil {
			return nil, err
		}
	}
	download := tgts
	if opts.Sample > 0 {
		download = nil
		step := max(1, len(amsgs)/opts.Sample)
		for i, m := range amsgs {
			if i%step != 0 {
				continue
			}
			if t := byRemote[mapping[m.ID].RemoteID]; t != nil {
				download = append(download, t)
			}
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for _, t := range download {
		if h, ok := opts.Hashes.get(t.BlobID); ok {
			t.hash = h
			rep.Hashed++
			rep.Cached++
			continue
		}
		g.Go(func() error {
			rc, err := c.Download(gctx, accountID, t.BlobID, "m.eml", "message/rfc822")
			if err != nil {
				return err
			}
			defer rc.Close()
			h := sha256.New()
			n, err := io.Copy(h, rc)
			if err != nil {
				return fmt.Errorf("download target blob %s: %w", t.BlobID, err)
			}
			t.hash = hex.EncodeToString(h.Sum(nil))
			opts.Hashes.put(t.BlobID, t.hash)
			mu.Lock()
			rep.DownloadedSize += n
			rep.Hashed++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	// Pair and compare.
	byHash := map[string][]*targetEmail{}
	for _, t := range tgts {
		if t.hash != "" {
			byHash[t.hash] = append(byHash[t.hash], t)
		}
	}
	used := map[string]bool{}
	targetCount := map[string]int{}
	for _, t := range tgts {
		for mb := range t.MailboxIDs {
			targetCount[mb]++
		}
	}
	var unpaired []Mismatch
	for _, m := range amsgs {
		item := fmt.Sprintf("archive id %d sha256 %.12s", m.ID, m.Blob)
		// of is the mismatch of kind k about m (and t, once paired).
		var t *targetEmail
		of := func(k Kind) Mismatch {
			mm := Mismatch{Kind: k, Item: item, ArchiveID: m.ID, Hash: m.Blob}
			if t != nil {
				mm.TargetID, mm.MessageID = t.ID, strings.Join(t.MessageID, " ")
			}
			return mm
		}
		if cands := byHash[m.Blob]; len(cands) > 0 {
			t = cands[0]
			if len(cands) > 1 {
				mm := of(KindDuplicate)
				mm.Want, mm.Got = "1", fmt.Sprint(len(cands))
				add(mm)
				for _, c := range cands[1:] {
					used[c.ID] = true
				}
			}
			rep.HashEqual++
		} else if opts.Sample > 0 {
			if mp, ok := mapping[m.ID]; ok {
				t = byRemote[mp.RemoteID]
			}
			if t != nil && t.hash != "" {
				mm := of(KindContent)
				mm.Want, mm.Got = m.Blob, t.hash
				add(mm)
			} else if t != nil && t.Size != m.Size {
				mm := of(KindSize)
				mm.Want, mm.Got = fmt.Sprint(m.Size), fmt.Sprint(t.Size)
				add(mm)
			}
		}
		if t == nil {
			// Paired below by Message-ID with a leftover target email
			// (bytes altered), else missing.
			unpaired = append(unpaired, of(KindMissing))
			unpaired[len(unpaired)-1].Mailbox = firstPath(m, aByID)
			continue
		}
		used[t.ID] = true
		// keywords
		want, got := kwSet(m.Keywords, ignore), kwSet(keysOf(t.Keywords), ignore)
		if want != got {
			mm := of(KindKeywords)
			mm.Want, mm.Got = want, got
			add(mm)
		}
		if m.ReceivedAt.Unix() > 86400 && (t.ReceivedAt == nil || !t.ReceivedAt.Equal(m.ReceivedAt)) {
			mm := of(KindReceivedAt)
			mm.Want, mm.Got = m.ReceivedAt.Format("2006-01-02T15:04:05Z"), fmtTime(t.ReceivedAt)
			add(mm)
		}
		var wantBoxes, gotBoxes []string
		for _, id := range m.MailboxIDs {
			wantBoxes = append(wantBoxes, aPath[id])
		}
		for mb := range t.MailboxIDs {
			if aid, ok := tToA[mb]; ok {
				gotBoxes = append(gotBoxes, aPath[aid])
			} else {
				gotBoxes = append(gotBoxes, "target:"+tPath(mb))
			}
		}
		sort.Strings(wantBoxes)
		sort.Strings(gotBoxes)
		if w, g := strings.Join(wantBoxes, ", "), strings.Join(gotBoxes, ", "); w != g {
			mm := of(KindMembership)
			mm.Want, mm.Got = w, g
			add(mm)
		}
	}
	// An archive message without a hash-equal target email and a leftover
	// target email with its Message-ID are one message whose bytes differ
	// (a content mismatch), not a missing and an extra one. The archive
	// blob's header is read only for these few.
	byMsgID := map[string][]*targetEmail{}
	for _, t := range tgts {
		if len(unpaired) > 0 && !used[t.ID] && len(t.MessageID) == 1 && (opts.Sample == 0 || !mappedRemote(mapping, t.ID)) {
			byMsgID[t.MessageID[0]] = append(byMsgID[t.MessageID[0]], t)
		}
	}
	for _, mm := range unpaired {
		if len(byMsgID) > 0 {
			mid, err := blobMessageID(ctx, a, mm.Hash)
			if err != nil {
				return nil, err
			}
			if cands := byMsgID[mid]; mid != "" && len(cands) == 1 && !used[cands[0].ID] {
				t := cands[0]
				used[t.ID] = true
				mm.Kind, mm.TargetID, mm.MessageID = KindContent, t.ID, mid
				mm.Want, mm.Got = mm.Hash, orNone(t.hash)
				if t.hash == "" {
					mm.Got = fmt.Sprintf("(not downloaded, %d bytes)", t.Size)
				}
			}
		}
		add(mm)
	}
	archivePath := map[string]string{} // target mailbox → archive path
	for _, b := range aboxes {
		if tid, ok := pair[b.ID]; ok {
			archivePath[tid] = b.Path
		}
	}
	for _, t := range tgts {
		if !used[t.ID] && (opts.Sample == 0 || !mappedRemote(mapping, t.ID)) {
			mid := strings.Join(t.MessageID, " ")
			// Mailbox is where the target holds it (the first by path
			// when in several), named as the archive names the paired
			// mailbox ("INBOX", not the target's "Inbox"), so that the
			// operator can find it.
			var in []string
			for mb := range t.MailboxIDs {
				p, ok := archivePath[mb]
				if !ok {
					p = tPath(mb)
				}
				in = append(in, p)
			}
			sort.Strings(in)
			box := ""
			if len(in) > 0 {
				box = in[0]
			}
			add(Mismatch{Kind: KindExtra, Mailbox: box, Item: fmt.Sprintf("target email %s (%s, %d bytes)", t.ID, mid, t.Size), TargetID: t.ID, MessageID: mid})
		}
	}

	// Per-mailbox counts.
	counts, err := a.MailboxCounts(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range aboxes {
		row := MailboxRow{Path: aPath[b.ID], Role: b.Role, Archive: int(counts[b.ID].Messages)}
		tid, paired := pair[b.ID]
		if paired {
			row.Target = targetCount[tid]
			row.OK = row.Target == row.Archive
		}
		// An unpaired mailbox is already a mailbox-missing mismatch; a
		// count against nothing would say the same thing twice.
		if paired && !row.OK {
			add(Mismatch{Kind: KindCount, Mailbox: b.Path, Want: fmt.Sprint(row.Archive), Got: fmt.Sprint(row.Target)})
		}
		rep.Mailboxes = append(rep.Mailboxes, row)
	}
	return rep, nil
}

// blobMessageID is the Message-ID (without angle brackets, as JMAP gives
// it) in the header of the archive blob hash; "" if it has none.
func blobMessageID(ctx context.Context, a *archive.Archive, hash string) (string, error) {
	rc, _, err := a.Blob(ctx, hash)
	if err != nil {
		return "", fmt.Errorf("read archive blob %.12s: %w", hash, err)
	}
	defer rc.Close()
	msg, err := mail.ReadMessage(bufio.NewReader(rc))
	if err != nil {
		return "", nil // no parsable header: nothing to pair by
	}
	ids := strings.Fields(msg.Header.Get("Message-Id"))
	if len(ids) != 1 {
		return "", nil
	}
	return strings.TrimSuffix(strings.TrimPrefix(ids[0], "<"), ">"), nil
}

func mappedRemote(m map[int64]archive.Mapping, id string) bool {
	for _, x := range m {
		if x.RemoteID == id {
			return true
		}
	}
	return false
}

func firstPath(m *archive.Message, by map[int64]*archive.Mailbox) string {
	if len(m.MailboxIDs) > 0 && by[m.MailboxIDs[0]] != nil {
		return by[m.MailboxIDs[0]].Path
	}
	return ""
}

func kwSet(kws []string, ignore map[string]bool) string {
	var out []string
	for _, k := range kws {
		l := strings.ToLower(k)
		if !ignore[l] {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return "[" + strings.Join(out, " ") + "]"
}

func keysOf(m map[string]bool) []string {
	var ks []string
	for k, v := range m {
		if v {
			ks = append(ks, k)
		}
	}
	return ks
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "(none)"
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// safePath applies the exporter's name replacement to every level.
func safePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = tj.SafeName(s)
	}
	return strings.Join(parts, "/")
}
