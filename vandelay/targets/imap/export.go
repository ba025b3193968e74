package imap

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// kindIMAPMessage is the export mapping kind of one mailbox's messages on
// an IMAP target: "IMAPMessage <archive mailbox id>", ArchiveID the
// message, RemoteID "<UIDVALIDITY>/<UID>". A message in several
// mailboxes has one mapping per mailbox, since IMAP has one copy in
// each.
func kindIMAPMessage(mailboxID int64) string {
	return "IMAPMessage " + strconv.FormatInt(mailboxID, 10)
}

// ExportResult reports what [Export] did.
type ExportResult struct {
	// Appended copies were written with APPEND; Matched ones were found
	// on the server (the same bytes, from an earlier run killed before
	// its record, or there before); Unchanged ones were exported before
	// and have not changed in the archive since.
	Appended  int `json:"appended"`
	Matched   int `json:"matched"`
	Unchanged int `json:"unchanged"`
	// Reflagged copies had their flags set to the archive's keywords.
	Reflagged int `json:"reflagged"`
	// MailboxesCreated counts folders created on the server.
	MailboxesCreated int `json:"mailboxes_created"`
	// Bytes is the size of what was appended.
	Bytes int64 `json:"bytes"`
}

// Export writes the archive's mail onto the IMAP server c is logged in to
// (an IMAP → IMAP migration through the archive, what imapsync does),
// under the export target name (e.g. "imap host:port user"): every live
// mailbox is created (and subscribed) with the server's separator, every
// copy of a message is appended with its flags and internal date, and
// what changed in the archive since the last run is carried:
//
//   - a copy the server already holds (Message-ID or size, then SHA-256,
//     as [CopyBack] matches) is recorded, not appended: a re-run after a
//     kill appends nothing twice, and a re-run after a complete one reads
//     the mapping only and copies nothing;
//   - the intent is recorded before each APPEND (Created, ModSeq 0), so
//     a copy that a killed run appended is known as the export's own;
//   - keywords changed in the archive are set (UID STORE FLAGS) on the
//     copies the export created; a copy that was on the server before is
//     left as the user has it;
//   - nothing is deleted: a message deleted at the source stays on the
//     target (the JMAP export destroys only what it created; this one
//     does not destroy at all yet).
//
// A mailbox whose UIDVALIDITY changed on the server is matched again.
func Export(ctx context.Context, a *archive.Archive, c *imapclient.Client, name string, opts *Options) (*ExportResult, error) {
	if opts == nil {
		opts = &Options{}
	}
	et, err := a.ExportTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	boxes, err := a.Mailboxes(ctx, nil)
	if err != nil {
		return nil, err
	}
	sep, err := separator(c)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	w := newWriter(a, c, opts.Logger)
	w.throttle = opts.Throttle
	res := &ExportResult{}
	for _, mb := range boxes {
		if !mb.Selectable {
			continue
		}
		if err := exportMailbox(ctx, a, et, w, mb, targetPath(mb, sep), res, opts); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return res, fmt.Errorf("export %s: %w", mb.Path, err)
		}
	}
	res.MailboxesCreated = w.res.MailboxesCreated
	return res, nil
}

// separator is the server's hierarchy delimiter (LIST "" "").
func separator(c *imapclient.Client) (string, error) {
	l, err := c.List("", "", nil).Collect()
	if err != nil {
		return "", fmt.Errorf("ask the server's hierarchy separator: %w", err)
	}
	if len(l) == 0 || l[0].Delim == 0 {
		return "", nil
	}
	return string(l[0].Delim), nil
}

// targetPath is the archive mailbox's path with the server's separator.
func targetPath(mb *archive.Mailbox, sep string) string {
	if mb.Role == archive.RoleInbox || strings.EqualFold(mb.Path, "INBOX") {
		return "INBOX"
	}
	if mb.Sep == "" || sep == "" || mb.Sep == sep {
		return mb.Path
	}
	return strings.Join(strings.Split(mb.Path, mb.Sep), sep)
}

func exportMailbox(ctx context.Context, a *archive.Archive, et *archive.ExportTarget, w *writer, mb *archive.Mailbox, path string, res *ExportResult, opts *Options) error {
	kind := kindIMAPMessage(mb.ID)
	maps, err := et.Mappings(ctx, kind)
	if err != nil {
		return err
	}
	box, err := w.ensureMailbox(path)
	if err != nil {
		return err
	}
	sd, err := w.c.Select(box, nil).Wait()
	if err != nil {
		return fmt.Errorf("select %q: %w", box, err)
	}
	w.selected = box
	validity := strconv.FormatUint(uint64(sd.UIDValidity), 10)
	var idx *mailboxIndex // listed when a copy is not mapped: a re-run lists nothing
	record := func(m archive.Mapping) error { return et.PutMappings(ctx, []archive.Mapping{m}) }
	for msg, err := range a.Messages(ctx, &archive.MessageFilter{MailboxID: mb.ID}) {
		if err != nil {
			return err
		}
		m, mapped := maps[msg.ID]
		v, uid := splitRemote(m.RemoteID)
		if mapped && m.ModSeq != 0 && v != validity {
			mapped = false // the server's UIDs mean other messages now
		}
		switch {
		case mapped && m.ModSeq >= msg.ModSeq:
			res.Unchanged++
			w.take(box, imap.UID(uid))
			continue
		case mapped && m.ModSeq != 0:
			// Exported before, changed in the archive since: its keywords
			// (membership changes are other mailboxes' mappings).
			if m.Created {
				set := imap.UIDSetNum(imap.UID(uid))
				if err := w.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: Flags(msg.Keywords)}, nil).Close(); err != nil {
					return fmt.Errorf("store flags: %w", err)
				}
				res.Reflagged++
			} else {
				res.Unchanged++
			}
			w.take(box, imap.UID(uid))
			m.ModSeq = msg.ModSeq
			if err := record(m); err != nil {
				return err
			}
			continue
		}
		body, err := a.BlobBytes(ctx, msg.Blob)
		if err != nil {
			return err
		}
		it := Item{Mailbox: box, Blob: msg.Blob, Size: msg.Size, ReceivedAt: msg.ReceivedAt, Keywords: msg.Keywords}
		if idx == nil {
			if idx, err = indexMailbox(w.c, sd.NumMessages); err != nil {
				return fmt.Errorf("list %q: %w", box, err)
			}
		}
		found, err := idx.find(w, it, body)
		if err != nil {
			return err
		}
		created := mapped // an intent of a killed run: the copy found is the export's own
		if found == 0 {
			created = true
			if err := record(archive.Mapping{Kind: kind, ArchiveID: msg.ID, Created: true}); err != nil {
				return err
			}
			found, err = w.append(ctx, it, body)
			if err != nil {
				return err
			}
			res.Appended++
			res.Bytes += int64(len(body))
		} else {
			res.Matched++
		}
		w.take(box, found)
		if err := record(archive.Mapping{Kind: kind, ArchiveID: msg.ID, RemoteID: validity + "/" + uidKey(found), Created: created, ModSeq: msg.ModSeq}); err != nil {
			return err
		}
		if opts.Progress != nil {
			opts.Progress(res.Appended+res.Matched+res.Unchanged+res.Reflagged, 0)
		}
	}
	return nil
}

// append writes one message into the selected mailbox and returns its
// UID (from APPENDUID, else a search for it).
func (w *writer) append(ctx context.Context, it Item, body []byte) (imap.UID, error) {
	if err := w.throttle.WaitMessage(ctx); err != nil {
		return 0, err
	}
	if err := w.throttle.WaitBytes(ctx, int64(len(body))); err != nil {
		return 0, err
	}
	cmd := w.c.Append(it.Mailbox, int64(len(body)), &imap.AppendOptions{Flags: Flags(it.Keywords), Time: it.ReceivedAt})
	if _, err := cmd.Write(body); err != nil {
		cmd.Close()
		return 0, fmt.Errorf("append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("append: %w", err)
	}
	if data != nil && data.UID != 0 {
		return data.UID, nil
	}
	// No UIDPLUS: the copy just appended is the one not taken yet.
	if err := w.c.Noop().Wait(); err != nil {
		return 0, err
	}
	uid, err := w.find(it, body)
	if err == nil && uid == 0 {
		err = errors.New("append: the server does not find the message it took")
	}
	return uid, err
}

// splitRemote parses "<UIDVALIDITY>/<UID>".
func splitRemote(s string) (string, uint32) {
	v, u, ok := strings.Cut(s, "/")
	if !ok {
		return "", 0
	}
	n, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return "", 0
	}
	return v, uint32(n)
}

// mailboxIndex is what the selected mailbox held when the export came to
// it, by Message-ID and by size: one FETCH per mailbox instead of one
// SEARCH per message (a header SEARCH is not indexed on Cyrus).
type mailboxIndex struct {
	byID   map[string][]imap.UID
	bySize map[int64][]imap.UID
	size   map[imap.UID]int64
}

func indexMailbox(c *imapclient.Client, n uint32) (*mailboxIndex, error) {
	idx := &mailboxIndex{byID: map[string][]imap.UID{}, bySize: map[int64][]imap.UID{}, size: map[imap.UID]int64{}}
	if n == 0 {
		return idx, nil
	}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		idx.size[m.UID] = m.RFC822Size
		idx.bySize[m.RFC822Size] = append(idx.bySize[m.RFC822Size], m.UID)
		if mid := messageID(m.FindBodySection(sec)); mid != "" {
			idx.byID[mid] = append(idx.byID[mid], m.UID)
		}
	}
	return idx, nil
}

// find is writer.find over the index: the candidates with the message's
// Message-ID (else its size) and size that this run has not taken, then
// their bytes decide.
func (idx *mailboxIndex) find(w *writer, it Item, body []byte) (imap.UID, error) {
	cands := idx.bySize[int64(len(body))]
	if mid := messageID(body); mid != "" {
		cands = idx.byID[mid]
	}
	want := sha256.Sum256(body)
	sec := &imap.FetchItemBodySection{Peek: true}
	for _, u := range cands {
		if idx.size[u] != int64(len(body)) || w.taken[it.Mailbox][u] {
			continue
		}
		got, err := w.c.Fetch(imap.UIDSetNum(u), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			return 0, fmt.Errorf("fetch %q UID %d: %w", it.Mailbox, u, err)
		}
		if len(got) == 1 && sha256.Sum256(got[0].FindBodySection(sec)) == want {
			return u, nil
		}
	}
	return 0, nil
}
