package corpus

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset"
)

func TestDeterministic(t *testing.T) {
	tests := []struct {
		name string
		a, b Options
		same bool
	}{
		{"same seed", Options{Seed: 3, Messages: 150}, Options{Seed: 3, Messages: 150}, true},
		{"other seed", Options{Seed: 3, Messages: 150}, Options{Seed: 4, Messages: 150}, false},
		{"same seed with huge", Options{Seed: 5, Messages: 40, HugeSize: 3 << 20}, Options{Seed: 5, Messages: 40, HugeSize: 3 << 20}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Generate(tt.a), Generate(tt.b)
			if got := fingerprint(a) == fingerprint(b); got != tt.same {
				t.Errorf("corpora equal = %v, want %v", got, tt.same)
			}
		})
	}
}

// fingerprint covers everything a corpus promises: folders, placement,
// flags, dates and bytes.
func fingerprint(c *Corpus) string {
	h := sha256.New()
	for _, f := range c.Folders {
		io.WriteString(h, f.Name+f.SpecialUse)
		if f.Subscribed {
			h.Write([]byte{1})
		}
	}
	for _, m := range c.Messages {
		io.WriteString(h, m.Folder+strings.Join(m.Flags, " ")+m.InternalDate.String())
		h.Write(m.SHA256[:])
	}
	return string(h.Sum(nil))
}

func TestBytesMatchSizeAndHash(t *testing.T) {
	c := Generate(Options{Seed: 9, Messages: 200})
	for _, m := range c.Messages {
		b := m.Bytes()
		if int64(len(b)) != m.Size || sha256.Sum256(b) != m.SHA256 {
			t.Fatalf("message %d: %d bytes (Size %d) or hash differ on a second read", m.Index, len(b), m.Size)
		}
		if !bytes.Equal(b, m.Bytes()) {
			t.Fatalf("message %d: two reads differ", m.Index)
		}
		if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("message %d has a bare LF", m.Index)
		}
		for _, line := range bytes.Split(b, []byte("\r\n")) {
			if len(line) > 998 {
				t.Fatalf("message %d has a line of %d bytes", m.Index, len(line))
			}
		}
	}
}

// TestParse reads every part of every message with go-message (charsets
// included), as a migration tool would.
func TestParse(t *testing.T) {
	c := Generate(Options{Seed: 11, Messages: 300})
	for _, m := range c.Messages {
		e, err := message.Read(m.Open())
		if err != nil && !message.IsUnknownCharset(err) {
			t.Fatalf("message %d: %v", m.Index, err)
		}
		if err := e.Walk(func(path []int, part *message.Entity, err error) error {
			if err != nil {
				return err
			}
			if part.MultipartReader() != nil {
				return nil // a container: Walk reads its parts
			}
			_, err = io.Copy(io.Discard, part.Body)
			return err
		}); err != nil {
			t.Fatalf("message %d (%s): %v", m.Index, m.Kind, err)
		}
		if subj := e.Header.Get("Subject"); subj == "" {
			t.Errorf("message %d has no Subject", m.Index)
		}
	}
}

func TestVariety(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Generate(Options{Seed: 1, Messages: 600, Folders: 16, MaxSize: 1 << 20, HugeSize: 3 << 20, Now: now})
	all := make([][]byte, len(c.Messages))
	for i, m := range c.Messages {
		if m.Kind != Huge {
			all[i] = m.Bytes()
		}
	}
	count := func(f func(m *Message, b []byte) bool) int {
		n := 0
		for i, m := range c.Messages {
			if f(m, all[i]) {
				n++
			}
		}
		return n
	}
	has := func(s string) func(*Message, []byte) bool {
		return func(_ *Message, b []byte) bool { return bytes.Contains(b, []byte(s)) }
	}
	eightBitHeader := regexp.MustCompile(`(?m)^Subject: [^\r\n]*[\x80-\xff]`)
	folders := map[string]Folder{}
	for _, f := range c.Folders {
		folders[f.Name] = f
	}
	tests := []struct {
		name string
		got  int
		min  int
	}{
		{"plain", count(func(m *Message, _ []byte) bool { return m.Kind == Plain }), 100},
		{"alternative", count(func(m *Message, _ []byte) bool { return m.Kind == Alternative }), 50},
		{"mixed", count(func(m *Message, _ []byte) bool { return m.Kind == Mixed }), 100},
		{"forward (message/rfc822)", count(has("Content-Type: message/rfc822")), 10},
		{"huge", count(func(m *Message, _ []byte) bool { return m.Kind == Huge && m.Size > 3<<20*99/100 }), 1},
		{"under 4 KiB", count(func(m *Message, _ []byte) bool { return m.Size < 4<<10 }), 150},
		{"over 256 KiB", count(func(m *Message, _ []byte) bool { return m.Size > 256<<10 }), 10},
		{"smallest about 1 KB", count(func(m *Message, _ []byte) bool { return m.Size < 900 }), 0},
		{"RFC 2047 B words", count(has("=?UTF-8?b?")), 50},
		{"RFC 2047 Q words", count(has("=?UTF-8?q?")), 50},
		{"ISO-8859-1 words", count(has("=?ISO-8859-1?Q?")), 30},
		{"8-bit header", count(func(_ *Message, b []byte) bool { return eightBitHeader.Match(b) }), 10},
		{"8-bit body", count(has("Content-Transfer-Encoding: 8bit")), 50},
		{"base64 text", count(has("Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64")), 10},
		{"RFC 2231 file name", count(has("filename*=utf-8''")), 10},
		{"threads", count(has("In-Reply-To: <")), 60},
		{"duplicates", count(func(m *Message, _ []byte) bool { return m.DuplicateOf >= 0 }), 3},
		{"\\Seen", count(func(m *Message, _ []byte) bool { return m.HasFlag(`\Seen`) }), 300},
		{"\\Answered", count(func(m *Message, _ []byte) bool { return m.HasFlag(`\Answered`) }), 20},
		{"\\Flagged", count(func(m *Message, _ []byte) bool { return m.HasFlag(`\Flagged`) }), 20},
		{"\\Draft", count(func(m *Message, _ []byte) bool { return m.HasFlag(`\Draft`) }), 5},
		{"$Forwarded", count(func(m *Message, _ []byte) bool { return m.HasFlag("$Forwarded") }), 5},
		{"custom keyword", count(func(m *Message, _ []byte) bool {
			for _, f := range m.Flags {
				if !strings.HasPrefix(f, `\`) && f != "$Forwarded" {
					return true
				}
			}
			return false
		}), 30},
	}
	for _, tt := range tests {
		if tt.min == 0 && tt.got != 0 || tt.got < tt.min {
			t.Errorf("%s: %d messages, want at least %d", tt.name, tt.got, tt.min)
		}
	}
	for _, name := range []string{"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Проекты", "日本語のフォルダ", "Work/Reports 2024", "Kunden/Müller GmbH"} {
		if _, ok := folders[name]; !ok {
			t.Errorf("folder %q missing", name)
		}
	}
	if _, ok := folders["Work"]; ok {
		t.Errorf("folder Work should exist only as a prefix")
	}
	unsub := 0
	for _, f := range c.Folders {
		if !f.Subscribed {
			unsub++
		}
	}
	if unsub == 0 {
		t.Errorf("no unsubscribed folder")
	}
	kws := map[string]map[string]bool{}
	atom := regexp.MustCompile(`^\\?[!#$&'+\-.0-9:<=>?@A-Z^_` + "`" + `a-z|}~]+$`)
	for _, m := range c.Messages {
		if !m.InternalDate.Before(now) {
			t.Errorf("message %d: internal date %v not before %v", m.Index, m.InternalDate, now)
		}
		if m.DuplicateOf >= 0 && c.Messages[m.DuplicateOf].Folder == m.Folder {
			t.Errorf("message %d duplicates %d in the same folder", m.Index, m.DuplicateOf)
		}
		for _, f := range m.Flags {
			if !atom.MatchString(f) {
				t.Errorf("message %d: flag %q is not an ASCII atom", m.Index, f)
			}
			if !strings.HasPrefix(f, `\`) {
				if kws[m.Folder] == nil {
					kws[m.Folder] = map[string]bool{}
				}
				kws[m.Folder][f] = true
			}
		}
	}
	for f, k := range kws {
		if len(k) > 20 {
			t.Errorf("folder %q has %d keywords, want at most 20", f, len(k))
		}
	}
	t.Log(c.Summary())
}

func TestHugeStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 25 MiB")
	}
	c := Generate(Options{Seed: 2, Messages: 3, HugeSize: 25 << 20})
	var huge *Message
	for _, m := range c.Messages {
		if m.Kind == Huge {
			huge = m
		}
	}
	if huge == nil || huge.Size < 25<<20*99/100 || huge.Size > 25<<20*101/100 {
		t.Fatalf("no message of about 25 MiB: %+v", huge)
	}
	h := sha256.New()
	if n, err := io.Copy(h, huge.Open()); err != nil || n != huge.Size || !bytes.Equal(h.Sum(nil), huge.SHA256[:]) {
		t.Fatalf("streamed %d bytes (%v), want %d with the same hash", n, err, huge.Size)
	}
}

func TestEncodeMUTF7(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"Family & Friends", "Family &- Friends"},
		{"日本語", "&ZeVnLIqe-"},
		{"Проекты", "&BB8EQAQ+BDUEOgRCBEs-"},
		{"Newsletters 📬", "Newsletters &2D3c7A-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
	}
	for _, tt := range tests {
		if got := EncodeMUTF7(tt.in); got != tt.want {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriteMaildir(t *testing.T) {
	c := Generate(Options{Seed: 4, Messages: 120})
	dir := t.TempDir()
	if err := c.WriteMaildir(dir); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range c.Folders {
		p := dir
		if f.Name != "INBOX" {
			p = filepath.Join(dir, "."+strings.ReplaceAll(EncodeMUTF7(f.Name), "/", "."))
		}
		files, err := os.ReadDir(filepath.Join(p, "cur"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != len(c.InFolder(f.Name)) {
			t.Errorf("%s: %d files, want %d", f.Name, len(files), len(c.InFolder(f.Name)))
		}
		n += len(files)
	}
	if n != len(c.Messages) {
		t.Errorf("%d files, want %d", n, len(c.Messages))
	}
	m := c.Messages[0]
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "cur", "*.M0P4.*"))
	matches2, _ := filepath.Glob(filepath.Join(dir, "cur", "*.M0P4.*"))
	matches = append(matches, matches2...)
	if len(matches) != 1 {
		t.Fatalf("message 0: files %v", matches)
	}
	fi, err := os.Stat(matches[0])
	if err != nil || !fi.ModTime().Equal(m.InternalDate) || fi.Size() != m.Size {
		t.Errorf("message 0 file: %v %v size %d; want mtime %v size %d", err, fi.ModTime(), fi.Size(), m.InternalDate, m.Size)
	}
}
