package jmap

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"net/textproto"
	"strings"

	"github.com/emersion/go-message/charset"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// SafeName replaces the characters that servers commonly refuse in a
// mailbox name (Cyrus: / % ; \ " tab and controls; RFC 8621 2 forbids
// control characters) with "_". It is used only after the server refused
// the original name.
func SafeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteByte('_')
		case strings.ContainsRune(`/%;\"`, r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	if s == "" {
		s = "_"
	}
	return s
}

// validKeyword reports whether kw is a JMAP keyword (RFC 8621 4.1.1: the
// IMAP flag-keyword atom, ASCII without ( ) { ] % * " \ and space).
func validKeyword(kw string) bool {
	if kw == "" || len(kw) > 255 {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){]%*"\`, c) >= 0 {
			return false
		}
	}
	return true
}

// header is the part of a message header the exporter needs.
type header struct {
	MessageID string
	Subject   string
}

// peekHeader reads at most 256 KiB of a blob's header and returns its
// Message-ID (without angle brackets, lower-cased domain untouched) and
// decoded Subject.
func peekHeader(ctx context.Context, a *archive.Archive, hash string) header {
	r, _, err := a.Blob(ctx, hash)
	if err != nil {
		return header{}
	}
	defer r.Close()
	return parseHeader(io.LimitReader(r, 256<<10))
}

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows (windows-1252, ISO-8859-*, KOI8-R, Shift_JIS …); the standard
// library's decoder alone knows only UTF-8, US-ASCII and ISO-8859-1 and
// leaves the others encoded.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

func parseHeader(r io.Reader) header {
	br := bufio.NewReader(r)
	var buf bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		buf.Write(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 || err != nil {
			break
		}
	}
	buf.WriteString("\r\n")
	mh, _ := textproto.NewReader(bufio.NewReader(&buf)).ReadMIMEHeader()
	var h header
	h.MessageID = normMessageID(mh.Get("Message-Id"))
	if s, err := wordDecoder.DecodeHeader(mh.Get("Subject")); err == nil {
		h.Subject = s
	} else {
		h.Subject = mh.Get("Subject")
	}
	return h
}

// normMessageID strips white space and angle brackets; JMAP's messageId
// property has neither (RFC 8621 4.1.2.3).
func normMessageID(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	return strings.TrimSpace(s)
}

// itemName names a message for a user: subject, Message-ID and size.
func itemName(h header, id int64, size int64) string {
	var parts []string
	if h.Subject != "" {
		parts = append(parts, "“"+h.Subject+"”")
	}
	if h.MessageID != "" {
		parts = append(parts, "<"+h.MessageID+">")
	}
	parts = append(parts, "archive id "+itoa(id), humanBytes(size))
	return strings.Join(parts, " ")
}
