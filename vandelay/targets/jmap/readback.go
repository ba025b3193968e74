package jmap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/mailmig/mailmig/vandelay/archive"
	jc "github.com/mailmig/mailmig/vandelay/jmap"
)

// ReadBackOptions configure [ReadBack]. A nil *ReadBackOptions means the
// defaults.
type ReadBackOptions struct {
	// Logger receives progress and diagnostics. Default: discard.
	Logger *slog.Logger
	// CountOnly counts the emails a read-back would copy and the Returns
	// still pending, downloading nothing and writing nothing: what the
	// rollback prompt and plan show. The archive may be read-only.
	CountOnly bool
}

// ReadBackResult is what [ReadBack] found.
type ReadBackResult struct {
	// Target is the export target's name (see [TargetName]).
	Target string
	// TargetEmails is the number of emails on the target; New of them were
	// neither exported from the archive nor read back before; Known of
	// those hold content the archive already has (skipped).
	TargetEmails, New, Known int
	// Recorded is the number of Returns recorded (one per mailbox copy);
	// Pending the Returns not yet copied to the source, these included.
	// With CountOnly, Pending is the number of emails a copy-back would
	// write: the new ones plus those read back before and not copied.
	Recorded, Pending int
	// Bytes is what was downloaded.
	Bytes int64
	// Reflag are the exported messages whose keywords the user changed
	// on the target (read, flagged …): the rollback sets the same on the
	// source's copies. Keywords a server sets by itself ($hasattachment)
	// are left out.
	Reflag []KeywordChange
}

// KeywordChange is what changed in one archive message's keywords on the
// target: JMAP keywords to add and to remove.
type KeywordChange struct {
	ArchiveID   int64
	Add, Remove []string
}

// readBackBatchBytes bounds the bodies held in memory between two archive
// transactions of a read-back.
const readBackBatchBytes = 32 << 20

// ReadBack reads the emails that arrived on the target after the cut-over
// into the archive, for a rollback to copy them to the source: every
// target email that the export did not put there (no Email mapping) and
// that an earlier read-back did not record. Each is downloaded, hashed
// and recorded as one archive.Return per mailbox, with its keywords and
// receivedAt; its mailbox is the archive mailbox the target's was exported
// from, or (a mailbox made on the target) the target's names joined by the
// source's separator. Emails whose content the archive already holds as a
// live message are skipped: the source has them.
//
// It is convergent: a run killed at any point is repeated by the next
// one, which records only what is missing. It never changes the target.
func ReadBack(ctx context.Context, a *archive.Archive, c *jc.Client, accountID string, opts *ReadBackOptions) (*ReadBackResult, error) {
	if opts == nil {
		opts = &ReadBackOptions{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := TargetName(c, accountID)
	res := &ReadBackResult{Target: name}
	emaps, bmaps := map[string]int64{}, map[string]int64{}
	tgt, err := a.ExportTarget(ctx, name)
	switch {
	case errors.Is(err, archive.ErrNotFound):
		// Never exported (read-only open): everything on it is new.
	case err != nil:
		return nil, err
	default:
		em, err := tgt.Mappings(ctx, archive.KindEmail)
		if err != nil {
			return nil, err
		}
		for _, m := range em {
			emaps[m.RemoteID] = m.ArchiveID
		}
		bm, err := tgt.Mappings(ctx, archive.KindMailbox)
		if err != nil {
			return nil, err
		}
		for _, m := range bm {
			bmaps[m.RemoteID] = m.ArchiveID
		}
	}
	returned, err := a.ReturnedRemoteIDs(ctx, name)
	if err != nil {
		return nil, err
	}
	var all []jc.Email
	if err := jc.QueryObjects(ctx, c, accountID, "Email", nil, []string{"id", "blobId", "size", "keywords", "mailboxIds", "receivedAt"}, &all); err != nil {
		return nil, fmt.Errorf("read target emails: %w", err)
	}
	res.TargetEmails = len(all)
	var fresh []jc.Email
	for _, e := range all {
		if _, mapped := emaps[e.ID]; !mapped && !returned[e.ID] {
			fresh = append(fresh, e)
		}
	}
	res.New = len(fresh)
	if res.Reflag, err = keywordChanges(ctx, a, all, emaps); err != nil {
		return nil, err
	}
	pending, err := a.Returns(ctx, name, true)
	if err != nil {
		return nil, err
	}
	if opts.CountOnly {
		ids := map[string]bool{}
		for _, r := range pending {
			ids[r.RemoteID] = true
		}
		res.Pending = len(ids) + len(fresh)
		return res, nil
	}
	if len(fresh) > 0 {
		log.Info("reading back target emails", "count", len(fresh))
		paths, err := targetPaths(ctx, a, c, accountID, bmaps)
		if err != nil {
			return nil, err
		}
		var batch []archive.Return
		bodies := map[string][]byte{}
		var held int64
		flush := func() error {
			n, err := a.AddReturns(ctx, batch, bodies)
			res.Recorded += n
			batch, bodies, held = nil, map[string][]byte{}, 0
			return err
		}
		for _, e := range fresh {
			body, err := download(ctx, c, accountID, e.BlobID)
			if err != nil {
				return res, err
			}
			res.Bytes += int64(len(body))
			sum := sha256.Sum256(body)
			hash := hex.EncodeToString(sum[:])
			known, err := a.HasLiveMessage(ctx, hash)
			if err != nil {
				return res, err
			}
			if known {
				res.Known++
				continue
			}
			var kws []string
			for k, on := range e.Keywords {
				if on {
					kws = append(kws, k)
				}
			}
			recv := time.Now().UTC()
			if e.ReceivedAt != nil {
				recv = e.ReceivedAt.UTC()
			}
			boxes := make([]string, 0, len(e.MailboxIDs))
			for id, on := range e.MailboxIDs {
				if on {
					boxes = append(boxes, id)
				}
			}
			sort.Strings(boxes)
			for _, id := range boxes {
				p, ok := paths[id]
				if !ok {
					continue // a mailbox that disappeared meanwhile
				}
				batch = append(batch, archive.Return{Target: name, RemoteID: e.ID, Mailbox: p.path, Sep: p.sep,
					Blob: hash, Size: int64(len(body)), ReceivedAt: recv, Keywords: kws})
			}
			bodies[hash] = body
			held += int64(len(body))
			if held >= readBackBatchBytes {
				if err := flush(); err != nil {
					return res, err
				}
			}
		}
		if err := flush(); err != nil {
			return res, err
		}
	}
	if pending, err = a.Returns(ctx, name, true); err != nil {
		return res, err
	}
	res.Pending = len(pending)
	return res, nil
}

type sourcePath struct{ path, sep string }

// targetPaths names every target mailbox as the source knows it: the
// archive mailbox it was exported from, else (made on the target) its
// names joined by the source's separator, under the source path of the
// nearest exported ancestor; the inbox role is INBOX.
func targetPaths(ctx context.Context, a *archive.Archive, c *jc.Client, accountID string, bmaps map[string]int64) (map[string]sourcePath, error) {
	boxes, _, err := c.Mailboxes(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("read target mailboxes: %w", err)
	}
	abox, err := a.Mailboxes(ctx, nil)
	if err != nil {
		return nil, err
	}
	byID := map[int64]*archive.Mailbox{}
	sep := ""
	for _, m := range abox {
		byID[m.ID] = m
		if sep == "" && m.Sep != "" {
			sep = m.Sep
		}
	}
	if sep == "" {
		sep = "/"
	}
	tByID := map[string]*jc.Mailbox{}
	for i := range boxes {
		tByID[boxes[i].ID] = &boxes[i]
	}
	out := map[string]sourcePath{}
	var name func(id string, depth int) string
	name = func(id string, depth int) string {
		if p, ok := out[id]; ok {
			return p.path
		}
		b := tByID[id]
		if b == nil || depth > 1000 {
			return ""
		}
		var p string
		switch m := byID[bmaps[id]]; {
		case m != nil && m.Deleted.IsZero():
			p = m.Path
		case b.Role == "inbox":
			p = "INBOX"
		case b.ParentID != "":
			if parent := name(b.ParentID, depth+1); parent != "" {
				p = parent + sep + b.Name
			} else {
				p = b.Name
			}
		default:
			p = b.Name
		}
		out[id] = sourcePath{path: p, sep: sep}
		return p
	}
	for id := range tByID {
		name(id, 0)
	}
	return out, nil
}

func download(ctx context.Context, c *jc.Client, accountID, blobID string) ([]byte, error) {
	rc, err := c.Download(ctx, accountID, blobID, "m.eml", "message/rfc822")
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("download target blob %s: %w", blobID, err)
	}
	return b, nil
}

// keywordChanges compares the keywords of the target's exported emails
// with their archive messages'.
func keywordChanges(ctx context.Context, a *archive.Archive, all []jc.Email, emaps map[string]int64) ([]KeywordChange, error) {
	target := map[int64]map[string]bool{}
	for _, e := range all {
		id, ok := emaps[e.ID]
		if !ok {
			continue
		}
		kws := map[string]bool{}
		for k, on := range e.Keywords {
			if on && archive.FlagFromKeyword(k) != "" {
				kws[strings.ToLower(k)] = true
			}
		}
		target[id] = kws
	}
	if len(target) == 0 {
		return nil, nil
	}
	var out []KeywordChange
	for m, err := range a.Messages(ctx, nil) {
		if err != nil {
			return nil, err
		}
		got, ok := target[m.ID]
		if !ok {
			continue
		}
		had := map[string]bool{}
		var ch KeywordChange
		for _, k := range m.Keywords {
			l := strings.ToLower(k)
			had[l] = true
			if !got[l] && archive.FlagFromKeyword(k) != "" {
				ch.Remove = append(ch.Remove, k)
			}
		}
		for k := range got {
			if !had[k] {
				ch.Add = append(ch.Add, k)
			}
		}
		if len(ch.Add)+len(ch.Remove) > 0 {
			ch.ArchiveID = m.ID
			sort.Strings(ch.Add)
			out = append(out, ch)
		}
	}
	return out, nil
}
