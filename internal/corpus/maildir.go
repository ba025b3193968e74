package corpus

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf16"
)

// WriteMaildir writes the corpus as a Maildir++ tree in dir, the layout
// Dovecot uses with its default settings: INBOX in dir itself, folder "A/B"
// in dir/.A.B (names in modified UTF-7), flags in the file names, keywords
// in each folder's dovecot-keywords file, subscriptions in dir/subscriptions
// and the internal date as each file's modification time.
func (c *Corpus) WriteMaildir(dir string) error {
	paths := map[string]string{}
	keywords := map[string][]string{}
	for _, f := range c.Folders {
		p := dir
		if f.Name != "INBOX" {
			p = filepath.Join(dir, "."+strings.ReplaceAll(EncodeMUTF7(f.Name), "/", "."))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(p, sub), 0o755); err != nil {
				return fmt.Errorf("write Maildir: %w", err)
			}
		}
		paths[f.Name] = p
	}
	for _, m := range c.Messages {
		p := paths[m.Folder]
		var sys []byte
		for _, f := range m.Flags {
			switch f {
			case `\Draft`:
				sys = append(sys, 'D')
			case `\Flagged`:
				sys = append(sys, 'F')
			case `\Answered`:
				sys = append(sys, 'R')
			case `\Seen`:
				sys = append(sys, 'S')
			case `\Deleted`:
				sys = append(sys, 'T')
			default:
				kws := keywords[m.Folder]
				i := slices.Index(kws, f)
				if i < 0 {
					if len(kws) >= 26 {
						return fmt.Errorf("write Maildir: folder %q has more than 26 keywords", m.Folder)
					}
					kws = append(kws, f)
					keywords[m.Folder] = kws
					i = len(kws) - 1
				}
				sys = append(sys, byte('a'+i))
			}
		}
		slices.Sort(sys)
		name := fmt.Sprintf("%d.M%dP%d.corpus,S=%d:2,%s", m.InternalDate.Unix(), m.Index, c.Options.Seed, m.Size, sys)
		path := filepath.Join(p, "cur", name)
		if err := os.WriteFile(path, m.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write Maildir: %w", err)
		}
		if err := os.Chtimes(path, m.InternalDate, m.InternalDate); err != nil {
			return fmt.Errorf("write Maildir: %w", err)
		}
	}
	for folder, kws := range keywords {
		var b strings.Builder
		for i, k := range kws {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
		if err := os.WriteFile(filepath.Join(paths[folder], "dovecot-keywords"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write Maildir: %w", err)
		}
	}
	var subs strings.Builder
	for _, f := range c.Folders {
		if f.Subscribed {
			subs.WriteString(f.Name + "\n")
		}
	}
	return os.WriteFile(filepath.Join(dir, "subscriptions"), []byte(subs.String()), 0o644)
}

// EncodeMUTF7 encodes a mailbox name in IMAP's modified UTF-7 (RFC 3501 §5.1.3).
func EncodeMUTF7(s string) string {
	var b strings.Builder
	var pending []rune
	flush := func() {
		if len(pending) == 0 {
			return
		}
		u := utf16.Encode(pending)
		raw := make([]byte, 0, 2*len(u))
		for _, v := range u {
			raw = append(raw, byte(v>>8), byte(v))
		}
		b.WriteByte('&')
		b.WriteString(strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(raw), "/", ","))
		b.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		pending = append(pending, r)
	}
	flush()
	return b.String()
}
