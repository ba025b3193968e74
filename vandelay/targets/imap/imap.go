package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailmig/mailmig/vandelay"
	"github.com/mailmig/mailmig/vandelay/archive"
)

// Options configure [CopyBack]. A nil *Options means the defaults.
type Options struct {
	// Logger receives progress and diagnostics. Default: discard.
	Logger *slog.Logger
	// Progress, when set, is called after each message with the number
	// done and the total.
	Progress func(done, total int)
	// Throttle limits the messages and bytes per second written, as the
	// backend's limits block limits an import; nil means unlimited.
	Throttle *vandelay.Throttle
}

// Result reports what [CopyBack] did.
type Result struct {
	// Appended messages were written with APPEND; Matched ones were on
	// the server already (an earlier run that died before recording
	// them, or mail that got there another way) and only recorded.
	Appended, Matched int
	// MailboxesCreated counts folders created on the server.
	MailboxesCreated int
	// Bytes is the size of what was appended.
	Bytes int64
}

// Item is one message to put into one mailbox of the server.
type Item struct {
	// Mailbox is the full path with the server's separator.
	Mailbox string
	// Blob is the content hash in the archive; Size its length.
	Blob string
	Size int64
	// ReceivedAt becomes the internal date; Keywords (JMAP) the flags.
	ReceivedAt time.Time
	Keywords   []string
}

// CopyBack writes the archive's pending Returns of target (see
// archive.Return) onto the IMAP server c is logged in to: each into its
// mailbox, created (and subscribed) when missing, with its flags and
// internal date, and marks it copied. It is convergent: a message the
// mailbox already holds — same Message-ID (or none) and size, then the
// same SHA-256 of its bytes — is recorded, not appended again, so a run
// killed between an APPEND and its record duplicates nothing on the next.
// It never deletes or changes anything on the server.
func CopyBack(ctx context.Context, a *archive.Archive, c *imapclient.Client, target string, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	rs, err := a.Returns(ctx, target, true)
	if err != nil {
		return nil, err
	}
	// One SELECT per mailbox; the order of arrival inside each.
	slices.SortStableFunc(rs, func(x, y archive.Return) int { return strings.Compare(x.Mailbox, y.Mailbox) })
	w := newWriter(a, c, opts.Logger)
	w.throttle = opts.Throttle
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for i, r := range rs {
		key, err := w.put(ctx, Item{Mailbox: r.Mailbox, Blob: r.Blob, Size: r.Size, ReceivedAt: r.ReceivedAt, Keywords: r.Keywords})
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return &w.res, fmt.Errorf("copy back to %s: %w", r.Mailbox, err)
		}
		if err := a.MarkReturned(ctx, r.ID, key); err != nil {
			return &w.res, err
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(rs))
		}
	}
	return &w.res, nil
}

// writer puts messages on one connection.
type writer struct {
	a        *archive.Archive
	c        *imapclient.Client
	log      *slog.Logger
	res      Result
	boxes    map[string]bool // existing mailboxes, nil until listed
	selected string
	taken    map[string]map[imap.UID]bool // per mailbox: matched or appended in this run
	refused  map[string]bool              // names the server would not create
	throttle *vandelay.Throttle
}

func newWriter(a *archive.Archive, c *imapclient.Client, log *slog.Logger) *writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &writer{a: a, c: c, log: log.With("proto", "imap"), taken: map[string]map[imap.UID]bool{}}
}

// put makes sure the mailbox holds the item once and returns its UID
// there ("" when the server does not say).
func (w *writer) put(ctx context.Context, it Item) (string, error) {
	box, err := w.ensureMailbox(it.Mailbox)
	if err != nil {
		return "", err
	}
	it.Mailbox = box
	if w.selected != it.Mailbox {
		if _, err := w.c.Select(it.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return "", fmt.Errorf("examine %q: %w", it.Mailbox, err)
		}
		w.selected = it.Mailbox
	}
	body, err := w.a.BlobBytes(ctx, it.Blob)
	if err != nil {
		return "", err
	}
	uid, err := w.find(it, body)
	if err != nil {
		return "", err
	}
	if uid != 0 {
		w.res.Matched++
		w.take(it.Mailbox, uid)
		return uidKey(uid), nil
	}
	if err := w.throttle.WaitMessage(ctx); err != nil {
		return "", err
	}
	if err := w.throttle.WaitBytes(ctx, int64(len(body))); err != nil {
		return "", err
	}
	cmd := w.c.Append(it.Mailbox, int64(len(body)), &imap.AppendOptions{Flags: Flags(it.Keywords), Time: it.ReceivedAt})
	if _, err := cmd.Write(body); err != nil {
		cmd.Close()
		return "", fmt.Errorf("append: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return "", fmt.Errorf("append: %w", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return "", fmt.Errorf("append: %w", err)
	}
	w.res.Appended++
	w.res.Bytes += int64(len(body))
	if data == nil || data.UID == 0 {
		return "", nil
	}
	w.take(it.Mailbox, data.UID)
	return uidKey(data.UID), nil
}

func (w *writer) take(mailbox string, uid imap.UID) {
	if w.taken[mailbox] == nil {
		w.taken[mailbox] = map[imap.UID]bool{}
	}
	w.taken[mailbox][uid] = true
}

func uidKey(u imap.UID) string { return strconv.FormatUint(uint64(u), 10) }

// ensureMailbox creates the mailbox (and, by RFC 9051 6.3.4, its
// parents) when the server lacks it, and subscribes it so that the user's
// client shows it. It returns the mailbox to write into: INBOX when the
// server refuses the name (a folder made on a JMAP target may hold a
// character the source does not allow, e.g. "." in Dovecot's Maildir++
// layout), so that the mail still reaches the user.
func (w *writer) ensureMailbox(path string) (string, error) {
	if w.boxes == nil {
		list, err := w.c.List("", "*", nil).Collect()
		if err != nil {
			return "", fmt.Errorf("list mailboxes: %w", err)
		}
		w.boxes = map[string]bool{}
		for _, l := range list {
			if !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) && !slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
				w.boxes[l.Mailbox] = true
			}
		}
	}
	if w.refused[path] {
		return "INBOX", nil
	}
	if w.boxes[path] || strings.EqualFold(path, "INBOX") {
		return path, nil
	}
	if err := w.c.Create(path, nil).Wait(); err != nil {
		var ie *imap.Error
		switch {
		case errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists:
		case errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo:
			w.log.Warn("mailbox name refused; copying into INBOX", "mailbox", path, "err", err)
			if w.refused == nil {
				w.refused = map[string]bool{}
			}
			w.refused[path] = true
			return "INBOX", nil
		default:
			return "", fmt.Errorf("create mailbox %q: %w", path, err)
		}
	} else {
		w.res.MailboxesCreated++
	}
	if err := w.c.Subscribe(path).Wait(); err != nil {
		w.log.Warn("subscribe refused", "mailbox", path, "err", err)
	}
	w.boxes[path] = true
	return path, nil
}

// find returns the UID of a message in the selected mailbox with the
// same bytes that this run has not matched or appended yet, or 0.
// Candidates come from the server's search (the Message-ID, else the
// size), and their bytes decide.
func (w *writer) find(it Item, body []byte) (imap.UID, error) {
	crit := &imap.SearchCriteria{}
	if mid := messageID(body); mid != "" {
		crit.Header = []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: mid}}
	} else {
		crit.Larger, crit.Smaller = int64(len(body))-1, int64(len(body))+1
	}
	sd, err := w.c.UIDSearch(crit, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search %q: %w", it.Mailbox, err)
	}
	var cands imap.UIDSet
	for _, u := range sd.AllUIDs() {
		if !w.taken[it.Mailbox][u] {
			cands.AddNum(u)
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	sizes, err := w.c.Fetch(cands, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return 0, fmt.Errorf("fetch sizes in %q: %w", it.Mailbox, err)
	}
	want := sha256.Sum256(body)
	sec := &imap.FetchItemBodySection{Peek: true}
	for _, m := range sizes {
		if m.RFC822Size != int64(len(body)) || w.taken[it.Mailbox][m.UID] {
			continue
		}
		got, err := w.c.Fetch(imap.UIDSetNum(m.UID), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
		if err != nil {
			return 0, fmt.Errorf("fetch %q UID %d: %w", it.Mailbox, m.UID, err)
		}
		if len(got) == 1 && sha256.Sum256(got[0].FindBodySection(sec)) == want {
			return m.UID, nil
		}
	}
	return 0, nil
}

// Flags maps JMAP keywords to the IMAP flags of an APPEND (see
// archive.FlagFromKeyword), leaving out what IMAP cannot carry: keywords
// a server sets by itself and ones that are not atoms (RFC 9051 9:
// flag-keyword; non-ASCII keywords are refused by Dovecot and Cyrus).
func Flags(kws []string) []imap.Flag {
	var out []imap.Flag
	for _, k := range kws {
		f := archive.FlagFromKeyword(k)
		if f == "" || (!strings.HasPrefix(f, `\`) && !isAtom(f)) {
			continue
		}
		out = append(out, imap.Flag(f))
	}
	return out
}

// isAtom reports whether s is an IMAP atom: printable ASCII without
// atom-specials.
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`(){%*"\]`, b) >= 0 {
			return false
		}
	}
	return true
}

// maxHeader bounds how much of a message is read for its Message-ID.
const maxHeader = 256 << 10

// messageID returns the message's Message-ID without angle brackets and
// white space, or "".
func messageID(body []byte) string {
	br := bufio.NewReader(io.LimitReader(bytes.NewReader(body), maxHeader))
	var buf bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		buf.Write(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 || err != nil {
			break
		}
	}
	buf.WriteString("\r\n")
	h, _ := textproto.NewReader(bufio.NewReader(&buf)).ReadMIMEHeader()
	return strings.Trim(strings.Join(strings.Fields(h.Get("Message-Id")), ""), "<>")
}

// KeywordChange is a change of one archive message's keywords to carry
// to every copy the source holds (see targets/jmap.KeywordChange).
type KeywordChange struct {
	ArchiveID   int64
	Add, Remove []string
}

// Reflag sets keyword changes made on a target after the cut-over on the
// source's copies of the messages: UID STORE +FLAGS / -FLAGS in every
// mailbox the archive says holds one (its locations, keyed by UID). A
// mailbox whose UIDVALIDITY no longer matches the archive's cursor is
// skipped (its UIDs mean other messages now); the next import reads what
// the source has. Setting a flag that is already set changes nothing, so
// a repeated run is harmless. It returns the number of copies changed.
func Reflag(ctx context.Context, a *archive.Archive, c *imapclient.Client, changes []KeywordChange, opts *Options) (int, error) {
	if len(changes) == 0 {
		return 0, nil
	}
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	byID := map[int64]KeywordChange{}
	ids := make([]int64, 0, len(changes))
	for _, ch := range changes {
		byID[ch.ArchiveID] = ch
		ids = append(ids, ch.ArchiveID)
	}
	copies, err := a.Copies(ctx, ids)
	if err != nil {
		return 0, err
	}
	curs, err := a.Cursors(ctx)
	if err != nil {
		return 0, err
	}
	boxes := map[int64]archive.MailboxCursor{}
	for _, cu := range curs {
		boxes[cu.ID] = cu
	}
	perBox := map[int64][]archive.Copy{}
	for _, cp := range copies {
		perBox[cp.MailboxID] = append(perBox[cp.MailboxID], cp)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	n := 0
	for box, cps := range perBox {
		mb, ok := boxes[box]
		if !ok {
			continue
		}
		sd, err := c.Select(mb.Path, nil).Wait()
		if err != nil {
			log.Warn("cannot select mailbox to copy flags back", "mailbox", mb.Path, "err", err)
			continue
		}
		if mb.Cursor.Validity != 0 && uint64(sd.UIDValidity) != mb.Cursor.Validity {
			log.Warn("UIDVALIDITY changed; flags not copied back", "mailbox", mb.Path)
			continue
		}
		for _, cp := range cps {
			u, err := strconv.ParseUint(cp.Key, 10, 32)
			if err != nil {
				continue // not an IMAP UID
			}
			ch := byID[cp.MessageID]
			set := imap.UIDSetNum(imap.UID(u))
			for op, kws := range map[imap.StoreFlagsOp][]string{imap.StoreFlagsAdd: ch.Add, imap.StoreFlagsDel: ch.Remove} {
				flags := Flags(kws)
				if len(flags) == 0 {
					continue
				}
				if err := c.Store(set, &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
					if ctx.Err() != nil {
						return n, ctx.Err()
					}
					return n, fmt.Errorf("store flags in %q: %w", mb.Path, err)
				}
			}
			n++
		}
	}
	return n, nil
}
