package takeout

import (
	"bytes"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	"github.com/mailmig/mailmig/vandelay/archive"
)

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// ParseLabels parses an X-Gmail-Labels header value: comma-separated
// values in CSV quoting ("a, b" keeps its comma; "" is a quote), each
// possibly RFC 2047 encoded. Folding white space is removed. Empty labels
// are dropped.
func ParseLabels(v string) []string {
	v = strings.NewReplacer("\r\n ", " ", "\r\n\t", " ", "\n ", " ", "\n\t", " ").Replace(v)
	var out []string
	var cur strings.Builder
	inQuote, quoted := false, false
	flush := func() {
		s := cur.String()
		if !quoted {
			s = strings.TrimSpace(s)
		}
		cur.Reset()
		quoted = false
		if strings.Contains(s, "=?") {
			if d, err := wordDecoder.DecodeHeader(s); err == nil {
				s = d
			}
		}
		s = strings.ToValidUTF8(s, "\uFFFD")
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case inQuote && c == '"' && i+1 < len(v) && v[i+1] == '"':
			cur.WriteByte('"')
			i++
		case inQuote && c == '"':
			inQuote = false
		case !inQuote && c == '"' && strings.TrimSpace(cur.String()) == "":
			cur.Reset()
			inQuote, quoted = true, true
		case !inQuote && c == ',':
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

// Mapping is where a message goes according to its labels.
type Mapping struct {
	// Mailboxes are archive paths ("/"-separated), at least one.
	Mailboxes []string
	// Keywords are JMAP keywords.
	Keywords []string
}

// System mailboxes: Gmail label → archive path and role.
var systemMailboxes = map[string]struct{ path, role string }{
	"inbox":    {"INBOX", archive.RoleInbox},
	"sent":     {"Sent", archive.RoleSent},
	"drafts":   {"Drafts", archive.RoleDrafts},
	"draft":    {"Drafts", archive.RoleDrafts},
	"trash":    {"Trash", archive.RoleTrash},
	"spam":     {"Junk", archive.RoleJunk},
	"archived": {"Archive", archive.RoleArchive},
}

// roleOf returns the role of a system mailbox path.
func roleOf(path string) string {
	for _, m := range systemMailboxes {
		if m.path == path {
			return m.role
		}
	}
	return ""
}

// MapLabels applies the Takeout label mapping: Inbox, Sent, Drafts, Trash,
// Spam (→ Junk) and Archived (→ Archive) are role mailboxes; Starred is
// $flagged, Important $important, Opened $seen (Unread: not seen; neither:
// seen); IMAP_<kw> is the keyword <kw> (IMAP_$Forwarded → $forwarded);
// "Category …" labels are dropped; every other label is a user mailbox,
// nested at "/". A message with no mailbox label goes to Archive (Gmail's
// "archived" state).
func MapLabels(labels []string) Mapping {
	var m Mapping
	seen, unread := false, false
	have := map[string]bool{}
	add := func(p string) {
		if !have[p] {
			have[p] = true
			m.Mailboxes = append(m.Mailboxes, p)
		}
	}
	for _, l := range labels {
		low := strings.ToLower(strings.TrimSpace(l))
		if sm, ok := systemMailboxes[low]; ok {
			add(sm.path)
			continue
		}
		switch {
		case low == "starred":
			m.Keywords = append(m.Keywords, archive.KeywordFlagged)
		case low == "important":
			m.Keywords = append(m.Keywords, archive.KeywordImportant)
		case low == "opened":
			seen = true
		case low == "unread":
			unread = true
		case strings.HasPrefix(low, "category "), low == "category":
		case strings.HasPrefix(l, "IMAP_"):
			if k, _ := archive.KeywordFromFlag(strings.TrimPrefix(l, "IMAP_")); k != "" && utf8.ValidString(k) && !strings.ContainsAny(k, " (){%*\"\\]") {
				m.Keywords = append(m.Keywords, k)
			}
		default:
			add(cleanPath(l))
		}
	}
	if seen || !unread {
		m.Keywords = append(m.Keywords, archive.KeywordSeen)
	}
	if len(m.Mailboxes) == 0 {
		add("Archive")
	}
	m.Keywords = archive.NormalizeKeywords(m.Keywords)
	return m
}

// cleanPath trims each level of a nested label and drops empty levels.
func cleanPath(l string) string {
	var parts []string
	for _, p := range strings.Split(l, "/") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return "Archive"
	}
	return strings.Join(parts, "/")
}

// headerValue returns the unfolded raw value of the first header field
// name in a message (the header ends at the first empty line).
func headerValue(msg []byte, name string) (string, error) {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	r := textproto.NewReader(bufioReader(append(msg[:end:end], "\r\n\r\n"...)))
	h, err := r.ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return "", fmt.Errorf("read header: %w", err)
	}
	return h.Get(name), nil
}

// takeoutHeaders are the header fields Google Takeout adds to each message;
// Gmail's IMAP does not serve them.
var takeoutHeaders = []string{"x-gm-thrid", "x-gmail-labels"}

// StripTakeoutHeaders removes the X-GM-THRID and X-Gmail-Labels fields
// (with their continuation lines) from a message's header and leaves every
// other byte as it is. The result is the message as Gmail serves it over
// IMAP, and its hash does not change when only the labels changed, so a
// newer Takeout turns a re-labelled message into a membership change.
func StripTakeoutHeaders(msg []byte) []byte {
	var out []byte
	skipping := false
	rest := msg
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest
		if i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 { // end of header
			if out == nil {
				out = make([]byte, 0, len(msg))
			}
			out = append(out, line...)
			out = append(out, rest...)
			return out
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skipping {
				out = append(out, line...)
			}
			continue
		}
		skipping = false
		if name, _, ok := bytes.Cut(line, []byte(":")); ok {
			n := strings.ToLower(string(bytes.TrimSpace(name)))
			for _, h := range takeoutHeaders {
				if n == h {
					skipping = true
				}
			}
		}
		if !skipping {
			out = append(out, line...)
		}
	}
	return out
}
