// Package uidl keeps POP3 UIDLs across a migration (issue 15).
//
// A POP3 client that leaves mail on the server (fetchmail keep, "leave a
// copy on the server") remembers the UIDL of every message it has
// downloaded. The target numbers the migrated messages with UIDLs of its
// own, so without help the client downloads them all again. The cut-over
// builds a map, target UIDL → source UIDL, that the proxy's POP3 front
// answers UIDL through (proxy/pop3). The map is made from what the archive
// and the two servers already know, without downloading any message:
//
//   - source side: the archive's INBOX copies. An archive imported over
//     POP3 keeps each copy's UIDL as its key; one imported over IMAP keeps
//     the UID, and the mailbox's cursor the UIDVALIDITY, from which the
//     source server derives its POP3 UIDL by a format (Dovecot's
//     pop3_uidl_format, see Format). The formats of Candidates are tried
//     against the source's real UIDL list (one UIDL command) and the one
//     that explains the most wins; a UIDL the source does not list is
//     never mapped.
//   - target side: the target's POP3 UIDL list, and each message's header
//     section (TOP n 0) reduced to a key (HeaderKey). The same key is
//     computed from the archive's bytes, so the two sides meet without the
//     export having to know the target's POP3 numbering.
//
// Setting UIDLs at the target instead would need an API for it: neither
// JMAP nor Cyrus's or Stalwart's POP3 has one, so the proxy translates.
package uidl

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// Format is a parsed POP3 UIDL format in Dovecot's pop3_uidl_format
// syntax, limited to the variables an archive can reproduce: %u (the IMAP
// UID) and %v (the mailbox's UIDVALIDITY), each with an optional 0 flag,
// width and X (hex, which Dovecot prints in lower case) ("%08Xu%08Xv", Dovecot's
// default since 1.1; "%v.%u", Cyrus's and UW's form; "%u"). %m (MD5 of the
// header), %f (Maildir file name) and %g (GUID) are not handled: ParseFormat
// refuses them, and accounts whose source uses them get new UIDLs after
// the cut-over (their POP3 clients download once more, nothing is lost).
type Format struct {
	text  string
	parts []part
}

type part struct {
	lit   string
	vr    byte // 'u' or 'v'; 0 for a literal
	width int
	zero  bool
	hex   byte // 'X', 'x' or 0 for decimal
}

// Candidates are the formats tried when the source's is not known, most
// common first.
var Candidates = []string{"%08Xu%08Xv", "%v.%u", "%u", "%08Xv%08Xu", "%u.%v", "%Xu%Xv"}

// ParseFormat parses a pop3_uidl_format value.
func ParseFormat(s string) (Format, error) {
	f := Format{text: s}
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		i++
		if i < len(s) && s[i] == '%' {
			lit.WriteByte('%')
			continue
		}
		var p part
		if i < len(s) && s[i] == '0' {
			p.zero = true
			i++
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			p.width = p.width*10 + int(s[i]-'0')
			i++
			if p.width > 20 {
				return Format{}, fmt.Errorf("uidl format %q: width too large", s)
			}
		}
		if i < len(s) && (s[i] == 'X' || s[i] == 'x') {
			p.hex = s[i]
			i++
		}
		if i >= len(s) {
			return Format{}, fmt.Errorf("uidl format %q: ends inside a variable", s)
		}
		switch s[i] {
		case 'u', 'v':
			p.vr = s[i]
		default:
			return Format{}, fmt.Errorf("uidl format %q: %%%c is not handled (only %%u and %%v)", s, s[i])
		}
		if lit.Len() > 0 {
			f.parts = append(f.parts, part{lit: lit.String()})
			lit.Reset()
		}
		f.parts = append(f.parts, p)
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, part{lit: lit.String()})
	}
	if len(f.parts) == 0 {
		return Format{}, errors.New("uidl format is empty")
	}
	return f, nil
}

// String returns the format as written.
func (f Format) String() string { return f.text }

// UIDL returns the UIDL of the message with uid in a mailbox of
// uidvalidity.
func (f Format) UIDL(uid, uidvalidity uint32) string {
	var b strings.Builder
	for _, p := range f.parts {
		if p.vr == 0 {
			b.WriteString(p.lit)
			continue
		}
		n := uint64(uid)
		if p.vr == 'v' {
			n = uint64(uidvalidity)
		}
		var s string
		switch p.hex {
		case 'X', 'x':
			// Dovecot's X modifier prints lower-case hex: its default
			// gives 000000016b1628b2 (UID 1, UIDVALIDITY 0x6b1628b2).
			s = strconv.FormatUint(n, 16)
		default:
			s = strconv.FormatUint(n, 10)
		}
		pad := " "
		if p.zero {
			pad = "0"
		}
		if len(s) < p.width {
			s = strings.Repeat(pad, p.width-len(s)) + s
		}
		b.WriteString(s)
	}
	return b.String()
}

// HeaderKey reads a message's header section (up to the first empty line,
// or the end) and returns a key for it: SHA-256 over the header lines
// without their line endings. It is the same for the raw bytes in the
// archive and for the un-dot-stuffed answer to TOP n 0.
func HeaderKey(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 16*1024)
	h := sha256.New()
	for {
		line, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			h.Write(line)
			line, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			break
		}
		h.Write(line)
		h.Write([]byte{'\n'})
		if err != nil {
			break
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SourceMessage is an archive message in the source's INBOX with the
// UIDL(s) the source's POP3 may show for it.
type SourceMessage struct {
	// ArchiveID is the archive message.
	ArchiveID int64
	// Key is HeaderKey of its bytes.
	Key string
	// Size is its size in bytes.
	Size int64
	// Key of the copy at the source: the POP3 UIDL, or the IMAP UID.
	CopyKey string
}

// Inbox is what the archive knows of the source's INBOX.
type Inbox struct {
	// Kind is the archive's source kind (imap, pop3, ...).
	Kind string
	// UIDValidity is the INBOX's UIDVALIDITY (IMAP sources).
	UIDValidity uint32
	Messages    []SourceMessage
}

// ReadInbox reads the INBOX messages of the archive with their header
// keys. An archive without an INBOX has none.
func ReadInbox(ctx context.Context, a *archive.Archive) (*Inbox, error) {
	src, err := a.Source(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the archive's source: %w", err)
	}
	in := &Inbox{Kind: src.Kind}
	mbs, err := a.Mailboxes(ctx, nil)
	if err != nil {
		return nil, err
	}
	var inbox *archive.Mailbox
	for _, m := range mbs {
		if m.Role == archive.RoleInbox || (inbox == nil && strings.EqualFold(m.Path, "INBOX")) {
			inbox = m
		}
	}
	if inbox == nil {
		return in, nil
	}
	cs, err := a.Cursors(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		if c.ID == inbox.ID {
			in.UIDValidity = uint32(c.Cursor.Validity)
		}
	}
	var ids []int64
	byID := map[int64]*SourceMessage{}
	for m, err := range a.Messages(ctx, &archive.MessageFilter{MailboxID: inbox.ID}) {
		if err != nil {
			return nil, err
		}
		rc, _, err := a.Blob(ctx, m.Blob)
		if err != nil {
			return nil, err
		}
		key, err := HeaderKey(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read message %d: %w", m.ID, err)
		}
		in.Messages = append(in.Messages, SourceMessage{ArchiveID: m.ID, Key: key, Size: m.Size})
		ids = append(ids, m.ID)
	}
	// byID points into in.Messages, which is complete now.
	for i := range in.Messages {
		byID[in.Messages[i].ArchiveID] = &in.Messages[i]
	}
	copies, err := a.Copies(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, c := range copies {
		if c.MailboxID != inbox.ID {
			continue
		}
		if sm := byID[c.MessageID]; sm != nil && sm.CopyKey == "" {
			sm.CopyKey = c.Key
		}
	}
	return in, nil
}

// SourceUIDLs gives each INBOX message the UIDL the source's POP3 shows
// for it, checked against that list (live, from the source's UIDL
// command): a POP3 source's keys as they are; an IMAP source's UIDs in the
// format of Candidates (or formats, when given) that matches the most of
// them. It returns the archive id → UIDL and the format used ("" for a
// POP3 source or when none matched).
func SourceUIDLs(in *Inbox, live map[string]bool, formats []string) (map[int64]string, string) {
	out := map[int64]string{}
	switch in.Kind {
	case "pop3":
		for _, m := range in.Messages {
			if live[m.CopyKey] {
				out[m.ArchiveID] = m.CopyKey
			}
		}
		return out, ""
	case "imap":
	default:
		return out, ""
	}
	if len(formats) == 0 {
		formats = Candidates
	}
	best, bestN := "", 0
	for _, fs := range formats {
		f, err := ParseFormat(fs)
		if err != nil {
			continue
		}
		n := 0
		for _, m := range in.Messages {
			if uid, err := strconv.ParseUint(m.CopyKey, 10, 32); err == nil && live[f.UIDL(uint32(uid), in.UIDValidity)] {
				n++
			}
		}
		if n > bestN {
			best, bestN = fs, n
		}
	}
	if best == "" {
		return out, ""
	}
	f, _ := ParseFormat(best)
	for _, m := range in.Messages {
		if uid, err := strconv.ParseUint(m.CopyKey, 10, 32); err == nil {
			if id := f.UIDL(uint32(uid), in.UIDValidity); live[id] {
				out[m.ArchiveID] = id
			}
		}
	}
	return out, best
}

// TargetMessage is one message of the target's maildrop.
type TargetMessage struct {
	UIDL string
	Size int64
	Key  string // HeaderKey of TOP n 0
}

// Match pairs target messages with source UIDLs by header key, preferring
// equal sizes; identical messages pair in order. It returns target UIDL →
// source UIDL.
func Match(in *Inbox, srcUIDLs map[int64]string, target []TargetMessage) map[string]string {
	type cand struct {
		uidl string
		size int64
	}
	byKey := map[string][]cand{}
	for _, m := range in.Messages {
		if u, ok := srcUIDLs[m.ArchiveID]; ok {
			byKey[m.Key] = append(byKey[m.Key], cand{u, m.Size})
		}
	}
	out := map[string]string{}
	for _, t := range target {
		cs := byKey[t.Key]
		if len(cs) == 0 {
			continue
		}
		pick := 0
		for i, c := range cs {
			if c.size == t.Size {
				pick = i
				break
			}
		}
		out[t.UIDL] = cs[pick].uidl
		byKey[t.Key] = append(cs[:pick:pick], cs[pick+1:]...)
	}
	return out
}
