package maildir

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"

	"github.com/mailmig/mailmig/vandelay/archive"
)

// ParseFilename splits a Maildir file name into its unique part (before
// the ":" that starts the info) and the info's flag letters (after ":2,").
// ok is false for names that are not message files (dot files, empty).
// A name without info (a message in new/) has no flags.
func ParseFilename(name string) (unique, flags string, ok bool) {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\x00") {
		return "", "", false
	}
	i := strings.IndexByte(name, ':')
	if i < 0 {
		return name, "", true
	}
	if i == 0 {
		return "", "", false
	}
	unique, info := name[:i], name[i+1:]
	if f, found := strings.CutPrefix(info, "2,"); found {
		flags = f
	}
	return unique, flags, true
}

// KeywordsFromFlags maps Maildir flag letters to JMAP keywords: S $seen,
// R $answered, F $flagged, D $draft, P $forwarded ("passed"); T is
// \Deleted (reported by deleted); the lower-case letters a–z are
// Dovecot's custom keywords, indexed into the folder's dovecot-keywords
// file (names[0] is "a").
func KeywordsFromFlags(flags string, names []string) (kws []string, deleted bool) {
	for _, c := range flags {
		switch {
		case c == 'S':
			kws = append(kws, archive.KeywordSeen)
		case c == 'R':
			kws = append(kws, archive.KeywordAnswered)
		case c == 'F':
			kws = append(kws, archive.KeywordFlagged)
		case c == 'D':
			kws = append(kws, archive.KeywordDraft)
		case c == 'P':
			kws = append(kws, archive.KeywordForwarded)
		case c == 'T':
			deleted = true
		case c >= 'a' && c <= 'z':
			if i := int(c - 'a'); i < len(names) && names[i] != "" {
				k, _ := archive.KeywordFromFlag(names[i])
				if k != "" {
					kws = append(kws, k)
				}
			}
		}
	}
	return archive.NormalizeKeywords(kws), deleted
}

// ParseKeywords reads a dovecot-keywords file: lines "<index> <name>".
func ParseKeywords(data []byte) []string {
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		idx, name, ok := strings.Cut(strings.TrimRight(line, "\r"), " ")
		if !ok || name == "" {
			continue
		}
		n := 0
		bad := idx == ""
		for _, c := range idx {
			if c < '0' || c > '9' || n > 25 {
				bad = true
				break
			}
			n = n*10 + int(c-'0')
		}
		if bad || n > 25 {
			continue
		}
		for len(names) <= n {
			names = append(names, "")
		}
		names[n] = name
	}
	return names
}

var errUTF7 = errors.New("invalid modified UTF-7")

// DecodeMUTF7 decodes an IMAP modified UTF-7 name (RFC 3501 5.1.3), as
// Dovecot writes folder names on disk.
func DecodeMUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '&' {
			if c < 0x20 || c > 0x7e {
				return "", errUTF7
			}
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errUTF7
		}
		enc := s[i+1 : i+1+j]
		i += j + 1
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := base64.RawStdEncoding.DecodeString(strings.ReplaceAll(enc, ",", "/"))
		if err != nil || len(raw)%2 != 0 {
			return "", errUTF7
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(u)))
	}
	return b.String(), nil
}

// ToCRLF turns every bare LF into CRLF, which is what Dovecot does when it
// serves a Maildir file stored with LF line ends (mail_save_crlf = no): the
// archive then holds exactly the bytes IMAP would have served. Files that
// already use CRLF are returned unchanged (same slice).
func ToCRLF(b []byte) []byte {
	bare := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+bare)
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(out, b...)
		}
		if i > 0 && b[i-1] == '\r' {
			out = append(out, b[:i+1]...)
		} else {
			out = append(out, b[:i]...)
			out = append(out, '\r', '\n')
		}
		b = b[i+1:]
	}
}
